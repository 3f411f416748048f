"""Does a BabyAI policy copy its goal? Greedy first responses on validation tasks.

A small model trained from scratch first learns the data's most frequent goal ("go to the red
ball") and writes it whatever the mission says; copying the goal from the prompt comes later, if at
all. This measures the share of first Thoughts "My goal is to <goal>." whose <goal> is exactly the
mission, on tasks that are neither train (400-4399) nor test (0-89): a cheap early signal of an SFT
run's quality (about a minute on 2 cores for 200 tasks).

    python benchmarks/goal_copy.py --policy runs/sft-babyai-3/model --tasks 90:290
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections import Counter
from pathlib import Path

import tyro

from agentprm.recipes import collect
from agentprm.types import read_trajectories

_THOUGHT_GOAL = re.compile(r"My goal is to (.*?)\.")


@dataclasses.dataclass
class Args:
    policy: str = "runs/sft/model"
    tasks: str = "90:290"
    """validation task indices (neither train nor test)"""
    threads: int | None = None


def copy_rate(trajs) -> tuple[float, Counter]:
    """Share of trajectories whose first Thought states the mission exactly, and the wrong goals written."""
    ok, wrong = 0, Counter()
    for t in trajs:
        goal = t.meta["goal"]  # the mission, as in the "Your goal: ..." line of o_0
        m = _THOUGHT_GOAL.search(t.steps[0].response) if t.steps else None
        written = m.group(1) if m else "<none>"
        ok += written == goal
        if written != goal:
            wrong[written] += 1
    return ok / max(1, len(trajs)), wrong


def main(args: Args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        collect.main(
            collect.Args(
                policy=args.policy,
                tasks=args.tasks,
                n=1,
                temperature=0.0,
                max_rounds=1,
                run_dir=Path(tmp),
                threads=args.threads,
            )
        )
        trajs = list(read_trajectories(Path(tmp) / "trajectories.jsonl"))
    rate, wrong = copy_rate(trajs)
    print(f"goal copied in the first Thought: {rate:.3f} ({len(trajs)} tasks)")
    print("most frequent wrong goals:", wrong.most_common(5))


if __name__ == "__main__":
    main(tyro.cli(Args))
