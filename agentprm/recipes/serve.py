"""`agentprm serve`: one trained PRM behind HTTP, for search and evaluation on other machines.

    agentprm serve --prm runs/prm-td --port 8000
    agentprm evaluate ... --reward-models agentprm=http://127.0.0.1:8000

The server (agentprm.serving.prm_server) answers vLLM's /pooling (token_classify) and agentprm's
/score_steps, which renders with the PRM's training budget and applies the readout rule; clients
use agentprm.prm.remote.RemotePRMScorer. Concurrent requests share forward passes on one model
thread; sizes and concurrency are bounded (413 / 429).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from agentprm import validate as V
from agentprm.prm.value import reward_model_folder, train_prm_run_args


@dataclasses.dataclass
class Args:
    prm: Path = Path("runs/prm-td")
    """the reward model: a train-prm run dir (its model/ and --max-prompt-tokens are used) or an HF folder"""
    host: str = "127.0.0.1"
    """interface to listen on (0.0.0.0: every interface; the server has no authentication)"""
    port: int = 8000
    """TCP port"""
    name: str | None = None
    """model id in /v1/models and /pooling (default: the --prm path, as vLLM names a served model)"""
    max_prompt_tokens: int = 512
    """renderer budget for an HF folder without train-prm args (a run dir's own budget wins)"""
    max_batch: int = 32
    """sequences per merged forward batch"""
    window_ms: float = 2.0
    """how long the model thread waits for more requests after the first, to batch them"""
    max_request_tokens: int = 65536
    """tokens one request may make the model process (more: HTTP 413)"""
    max_inflight: int = 64
    """requests handled at once (more: HTTP 429, clients retry)"""
    threads: int | None = None
    """torch CPU threads"""
    device: str | None = None
    """cuda or cpu (default: cuda when available)"""

    def __post_init__(self) -> None:
        V.at_least(self, 1, "max_prompt_tokens", "max_batch", "max_request_tokens", "max_inflight", "threads")
        V.at_least(self, 0, "window_ms")
        V.within(self, "port", 1, 65535)


def resolve(prm: Path, default_budget: int) -> tuple[Path, int]:
    """(HF folder, renderer budget) for --prm: a train-prm run dir's model/ and its max_prompt_tokens,
    or the folder itself with `default_budget`."""
    prm = Path(prm)
    folder = reward_model_folder(prm)
    if not (folder / "config.json").exists():
        raise ValueError(f"--prm {prm}: neither a train-prm run dir (args.json + model/) nor an HF folder")
    trained = train_prm_run_args(prm)  # a train-prm run dir: the budget it trained with
    return folder, (trained or {}).get("max_prompt_tokens", default_budget)


def main(args: Args) -> None:
    import uvicorn

    from agentprm.serving.prm_server import make_app

    if args.threads:
        torch.set_num_threads(args.threads)
    folder, budget = resolve(args.prm, args.max_prompt_tokens)
    app = make_app(
        folder,
        budget=budget,
        max_batch=args.max_batch,
        window_ms=args.window_ms,
        max_request_tokens=args.max_request_tokens,
        max_inflight=args.max_inflight,
        name=args.name or str(args.prm),
        device=args.device,
    )
    print(
        f"serving {folder} (budget {budget} tokens) at http://{args.host}:{args.port}; "
        f"use it with --reward-models NAME=http://{args.host}:{args.port}"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
