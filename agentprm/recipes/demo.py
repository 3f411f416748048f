"""`agentprm demo`: the toolkit's main job, end to end on the embedded default, on CPU.

Today (foundation stage) it runs what exists end to end: the expert on the pinned test split of
BabyAI and TextCraft, written to runs/<name>/ as trajectories with success rates. The paper's loop
(SFT policy -> rollouts -> TD/GAE labels -> PRM training -> Best-of-N / beam search -> report) is
added stage by stage; this docstring and the README say what the demo covers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agentprm import rundir
from agentprm.recipes import expert


@dataclasses.dataclass
class Args:
    run_dir: Path = Path("runs/demo")
    """where everything goes (re-running skips finished work)"""
    envs: tuple[str, ...] = ("babyai", "textcraft")
    """environments to run"""
    tasks: str = "test"
    """task split or range for every environment"""


def main(args: Args) -> list[dict]:
    run = rundir.prepare(args.run_dir, args)
    summaries = []
    # 1. Expert trajectories on each env's test split (resumable: finished tasks are skipped).
    for env in args.envs:
        summary = expert.main(expert.Args(env=env, tasks=args.tasks, out=run / f"expert_{env}.jsonl"))
        rundir.log_metrics(run, {"stage": "expert", **summary})
        summaries.append(summary)
    print(f"\ndemo (foundation stage: expert data only) finished -> {run}")
    for s in summaries:
        print(
            f"  {s['env']:10s} expert success rate {s['success_rate']:.3f}  mean reward {s['mean_reward']:.3f}"
        )
    return summaries
