"""Batched collection vs one episode at a time, same tasks and model, as a ratio in one run.

Target: >= 4x on a 2-core CPU. Runs:
- batched: all episodes stepped together, one generate call per round, with prefix caching
  (HFPolicy(prefix_cache=True), as `agentprm collect`: each round prefills only the tokens its
  episode added, then HFPolicy's own decode loop);
- batching alone: the same without prefix caching (transformers' generate, dynamic cache), once;
- one at a time: one episode after another, batch 1, no prefix caching (the baseline).
Batched and one-at-a-time alternate `--repeat` times after a warm-up, and the ratio is taken of
their median seconds per env step: this machine's speed drifts by ~10% between minutes, and
alternating exposes both to the same drift. Also reports policy tokens/s and env steps/s.

    python benchmarks/rollout_speed.py --model runs/demo-2/sft/model [--tasks 0:32] [--max-rounds 6]

Without --model, a fresh `tiny` preset (tokenizer trained on expert text) is used: it writes
junk, which makes every episode last the full round cap — the worst case for the batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

from agentprm.envs.splits import parse_tasks
from agentprm.experts import make_expert
from agentprm.models.loading import load_policy_model
from agentprm.models.presets import build_model
from agentprm.models.tokenizer import env_tokenizer
from agentprm.policies.hf import HFPolicy
from agentprm.policy import SamplingParams
from agentprm.rollout import collect, run_episode


def _fresh_tiny(env: str):
    trajs = [run_episode(env, t, make_expert(env)) for t in range(400, 440)]
    tok = env_tokenizer(env, trajs)
    return build_model("tiny", tok), tok


def run(policy, env, jobs, params, max_active, max_rounds) -> dict:
    start = time.perf_counter()
    ledger = collect(
        env, jobs, policy, params, on_done=lambda _: None, max_active=max_active, max_rounds=max_rounds
    )
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "env_steps": ledger.env_steps,
        "policy_tokens": ledger.policy_tokens,
        "generate_calls": ledger.generate_calls,
        "policy_tokens_per_second": round(ledger.policy_tokens / seconds, 1),
        "env_steps_per_second": round(ledger.env_steps / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--env", default="babyai")
    parser.add_argument("--tasks", default="0:32")
    parser.add_argument("--max-rounds", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-prompt-tokens", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    model, tok = load_policy_model(args.model, device="cpu") if args.model else _fresh_tiny(args.env)
    jobs = [(t, 0) for t in parse_tasks(args.env, args.tasks)]
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    n = len(jobs)

    def policy(batch: int, cache: bool) -> HFPolicy:
        return HFPolicy(
            model, tok, batch_size=batch, max_prompt_tokens=args.max_prompt_tokens, prefix_cache=cache
        )

    configs = {"batched": (n, True), "one_at_a_time": (1, False)}
    # Warm-up (first calls pay for allocator and kernel set-up), not timed.
    for batch, cache in configs.values():
        run(policy(batch, cache), args.env, jobs[:2], params, batch, 1)
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for _ in range(args.repeat):
        for name, (batch, cache) in configs.items():
            runs[name].append(run(policy(batch, cache), args.env, jobs, params, batch, args.max_rounds))
    alone = run(policy(n, False), args.env, jobs, params, n, args.max_rounds)
    # Episodes differ in length between runs (sampling), so compare per env step.
    per_step = {
        k: statistics.median(r["seconds"] / max(r["env_steps"], 1) for r in v) for k, v in runs.items()
    }
    alone_per_step = alone["seconds"] / max(alone["env_steps"], 1)
    pairs = [
        (o["seconds"] / max(o["env_steps"], 1)) / (b["seconds"] / max(b["env_steps"], 1))
        for b, o in zip(runs["batched"], runs["one_at_a_time"], strict=True)
    ]
    results = {
        **runs,
        "batching_alone": alone,
        "speedup_per_env_step": round(per_step["one_at_a_time"] / per_step["batched"], 2),
        "speedup_each_repeat": [round(p, 2) for p in pairs],
        "speedup_batching_alone": round(per_step["one_at_a_time"] / alone_per_step, 2),
        "model": args.model or "fresh tiny preset",
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
