"""Policy backends: local transformers models and OpenAI-compatible servers; make_policy picks one."""

from __future__ import annotations

import dataclasses

from agentprm import validate as V


@dataclasses.dataclass
class ServerArgs:
    """The arguments of every recipe that samples from a policy, for openai:<model>@<url> policies
    (a recipe's Args subclasses this; its __post_init__ calls super().__post_init__())."""

    request_timeout: float = 120.0
    """openai:<model>@<url> policies: seconds a stalled server gets (to connect, for each read) before a retry"""
    max_retries: int = 5
    """openai:<model>@<url> policies: retries of a failed request (connection error, timeout, HTTP 408/409/429/5xx,
    malformed answer) with exponential backoff, before the run stops with an error"""

    def __post_init__(self) -> None:
        V.positive(self, "request_timeout")
        V.at_least(self, 0, "max_retries")


def make_policy(
    spec: str,
    batch_size: int,
    max_prompt_tokens: int | None,
    prefix_cache: bool = True,
    request_timeout: float = 120.0,
    max_retries: int = 5,
):
    """'openai:<model>@<base_url>' or an HF folder / smollm2 -> a Policy.

    Local models reuse each episode's KV cache across rounds (prefix_cache; they then decode with
    HFPolicy's own loop into preallocated buffers). Without it, generate decodes into a static
    cache on CPU (~2x faster decode steps at batch 64); on CUDA the dynamic cache is kept (the
    static one pays off there only with torch.compile)."""
    if spec.startswith("openai:"):
        from agentprm.policies.openai_server import OpenAIServerPolicy

        model, _, base_url = spec[len("openai:") :].partition("@")
        if not base_url:
            raise SystemExit(
                "give the server as openai:<model>@<base_url>, e.g. openai:Qwen/Qwen2.5-3B-Instruct@http://localhost:8000/v1"
            )
        return OpenAIServerPolicy(
            base_url=base_url, model=model, timeout=request_timeout, max_retries=max_retries
        )
    from agentprm.models.loading import load_policy_model
    from agentprm.policies.hf import HFPolicy

    model, tokenizer = load_policy_model(spec)
    return HFPolicy(
        model,
        tokenizer,
        batch_size=batch_size,
        max_prompt_tokens=max_prompt_tokens,
        name=f"hf:{spec}",
        prefix_cache=prefix_cache,
        static_cache=model.device.type == "cpu",
    )
