"""How well each reward model ranks the test pool of an `agentprm evaluate` run: per task with both
successes and failures among its samples, the AUC of the trajectory score (final step, min, mean
over steps) at putting successes above failures, averaged over those tasks. A diagnostic read after
the study (the test tasks choose nothing), beside the held-out sibling accuracy of
prm-*/diagnostics.json, which asks the same at single steps.

    python benchmarks/pool_ranking.py runs/reproduce-babyai/evaluate
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from agentprm.evaluation import aggregate, ranking_auc
from agentprm.types import iter_trajectories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("evaluate_dir", type=Path)
    args = parser.parse_args()
    pool = [
        (f"{t.task}:{t.sample}", t.task, t.success)
        for t in iter_trajectories(args.evaluate_dir / "pool.jsonl")
    ]
    print("| reward model | tasks ranked | AUC, final step | AUC, min | AUC, mean |")
    print("|---|---|---|---|---|")
    for path in sorted(args.evaluate_dir.glob("scores_*.json")):
        scores = json.loads(path.read_text())
        by_task = defaultdict(list)
        for key, task, success in pool:
            by_task[task].append((scores[key], success))
        cells = []
        for how in ("last", "min", "mean"):
            aucs = [
                ranking_auc([aggregate(s, how) for s, _ in rows], [ok for _, ok in rows])
                for rows in by_task.values()
            ]
            aucs = [a for a in aucs if a is not None]
            cells.append(f"{sum(aucs) / len(aucs):.3f}")
        print(f"| {path.stem.removeprefix('scores_')} | {len(aucs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
