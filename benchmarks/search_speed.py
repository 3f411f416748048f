"""Beam-search scoring: M candidate actions scored with the state's prefix encoded once (KV cache,
agentprm.prm.scorers.PRMScorer) vs every candidate re-encoded with its whole history, as a ratio in one
run (issue 5 target: >= 3x at M = 8 with 10-step histories).

    python benchmarks/search_speed.py [--model runs/demo/prm-agentprm/model] [--m 8] [--steps 10]

States are real BabyAI histories (expert episodes padded with "turn left" steps to --steps steps,
see prm_speed.py); candidates are M real responses of different lengths. Without --model a fresh
tiny value model is used (speed does not depend on the weights). Both modes return the same
scores (checked here to 1e-4 and in tests/test_search.py).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch
from prm_speed import fixed_length, value_model

from agentprm.prm.scorers import PRMScorer

CANDIDATES = [
    "Thought:\nI will look around.\n\nAction:\nturn left",
    "Thought:\nI will look around.\n\nAction:\nturn right",
    "Thought:\nThe way ahead looks clear.\n\nAction:\nmove forward",
    "Thought:\nMy goal is to go to the red ball. I see it.\n\nAction:\ngo to red ball 1",
    "Thought:\nI should pick up the key first.\n\nAction:\npick up grey key 1",
    "Thought:\nThe door is closed.\n\nAction:\ntoggle and go through red door 1",
    "Thought:\nI need to find the object.\n\nAction:\ngo through grey door 1",
    "Thought:\nLet me check the other side of the room.\n\nAction:\nturn left",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--states", type=int, default=8)
    parser.add_argument("--m", type=int, default=8)
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    trajs = [fixed_length(400 + i, args.steps + 1) for i in range(args.states)]
    model, tok = value_model(args.model, trajs)
    states = [t.state(args.steps) for t in trajs]
    cands = [[CANDIDATES[k % len(CANDIDATES)] for k in range(args.m)] for _ in states]
    timings, scores = {}, {}
    for share in (True, False):
        scorer = PRMScorer(model, tok, budget=args.budget, share_prefix=share, batch_size=args.m)
        scorer.score("babyai", states[:1], cands[:1])  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            scorer.tokens = 0
            start = time.perf_counter()
            scores[share] = scorer.score("babyai", states, cands)
            best = min(best, time.perf_counter() - start)
        timings[share] = (best, scorer.tokens)
    diff = max(
        abs(a - b)
        for x, y in zip(scores[True], scores[False], strict=True)
        for a, b in zip(x, y, strict=True)
    )
    n = args.states * args.m
    result = {
        "states": args.states,
        "m": args.m,
        "history_steps": args.steps,
        "shared_prefix_candidates_per_s": round(n / timings[True][0], 1),
        "reencode_candidates_per_s": round(n / timings[False][0], 1),
        "speedup": round(timings[False][0] / timings[True][0], 2),
        "prm_tokens_shared": timings[True][1],
        "prm_tokens_reencode": timings[False][1],
        "max_score_difference": diff,
        "threads": torch.get_num_threads(),
    }
    assert diff < 1e-4, diff
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
