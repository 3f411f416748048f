"""`agentprm report RUN_DIR...`: report.md and PNG figures from evaluate / train-prm / collect runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agentprm import report


@dataclasses.dataclass
class Args:
    runs: tuple[Path, ...] = ()
    """run folders: evaluate (results.json), train-prm (diagnostics.json), collect or mc-label"""
    out: Path = Path("runs/report")
    """folder for report.md and the figures"""


def main(args: Args) -> Path:
    if not args.runs:
        raise SystemExit(
            "give the run folders to report on: agentprm report --runs runs/evaluate runs/prm-td ..."
        )
    path = report.write(args.runs, args.out)
    print(f"report -> {path}")
    return path
