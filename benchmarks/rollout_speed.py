"""Batched collection vs one episode at a time, same tasks and model, as a ratio in one run.

Target: >= 4x on a 2-core CPU. Four runs: batched with prefix caching (HFPolicy(prefix_cache=True):
each round prefills only the tokens its episode added) decoding into a static KV cache, the same
with transformers' dynamic cache, batched without either, and one episode at a time without
either (the baseline). Also reports policy tokens/s and env steps/s of each.

    python benchmarks/rollout_speed.py --model runs/sft-babyai/model [--tasks 0:32] [--max-rounds 5]

Without --model, a fresh `tiny` preset (tokenizer trained on expert text) is used: it writes
junk, which makes every episode last the full round cap — the worst case for the batch.
"""

from __future__ import annotations

import argparse
import json
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


def run(policy, env, jobs, params, max_active, max_rounds):
    done = []
    start = time.perf_counter()
    ledger = collect(
        env, jobs, policy, params, on_done=done.append, max_active=max_active, max_rounds=max_rounds
    )
    return time.perf_counter() - start, ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--env", default="babyai")
    parser.add_argument("--tasks", default="0:32")
    parser.add_argument("--max-rounds", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-prompt-tokens", type=int, default=1024)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    model, tok = load_policy_model(args.model, device="cpu") if args.model else _fresh_tiny(args.env)
    jobs = [(t, 0) for t in parse_tasks(args.env, args.tasks)]
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    results = {}
    n = len(jobs)
    runs = (("batched_prefix_static_cache", n, n, True, True), ("batched_prefix_cache", n, n, True, False),
            ("batched", n, n, False, False), ("one_at_a_time", 1, 1, False, False))  # fmt: skip
    for name, active, batch, cache, static in runs:
        policy = HFPolicy(model, tok, batch_size=batch, max_prompt_tokens=args.max_prompt_tokens,
                          prefix_cache=cache, static_cache=static)  # fmt: skip
        seconds, ledger = run(policy, args.env, jobs, params, active, args.max_rounds)
        results[name] = {"seconds": round(seconds, 2), "env_steps": ledger.env_steps,
                         "policy_tokens": ledger.policy_tokens, "generate_calls": ledger.generate_calls,
                         "policy_tokens_per_second": round(ledger.policy_tokens / seconds, 1),
                         "env_steps_per_second": round(ledger.env_steps / seconds, 2)}  # fmt: skip
    # Episodes differ in length between runs (sampling), so compare per env step.
    per_step = {k: v["seconds"] / max(v["env_steps"], 1) for k, v in results.items()}
    results["speedup_per_env_step"] = round(
        per_step["one_at_a_time"] / per_step["batched_prefix_static_cache"], 2
    )
    results["speedup_prefix_cache_dynamic"] = round(
        per_step["one_at_a_time"] / per_step["batched_prefix_cache"], 2
    )
    results["speedup_batching_alone"] = round(per_step["one_at_a_time"] / per_step["batched"], 2)
    results["model"] = args.model or "fresh tiny preset"
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
