"""Keep the long studies' finished stages in git, so that a session on a new machine resumes them.

A study (runs/reproduce-<env>, a ppo-compare run dir) lives outside git: a session handed a new
machine starts with an empty runs/ and would redo hours of SFT, rollouts and reward-model training.
`save` copies what a resumed study needs into snapshots/<run>/ (committed with the session's work);
`restore` copies it back into runs/<run>/ where that run dir does not exist. The files are copied as they are
(git compresses and de-duplicates them: a stage saved twice costs nothing the second time).

What is saved, per run dir: its top-level files (args.json, metrics.jsonl, report.md, the .done/
stage markers) and every FINISHED stage (a marker in .done/): the directory of that name or the
file <name>.jsonl, without optimizer checkpoints (checkpoint*.pt: a finished stage never resumes).
A stage that took under --min-seconds (default 300, e.g. expert data: a minute) is left out with
its marker: the restored study redoes it (every stage is deterministic) instead of git storing it.
With --partial, also the newest checkpoint of each unfinished stage's directory (what the recipe
resumes from), for a session that ends mid-stage; it is large (weights and Adam moments). A later
plain save keeps it until that stage finishes (then only the finished outputs stay).

    python scripts/snapshot.py save runs/reproduce-textcraft runs/reproduce-webshop [--partial]
    python scripts/snapshot.py restore            # every run dir in snapshots/
    python scripts/snapshot.py status             # what is saved, and its size

stdlib only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import math
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "snapshots"
RUNS = ROOT / "runs"


def _copy(src: Path, dst: Path) -> bool:
    """Copy one file unless dst already holds the same bytes; True when it copied."""
    if dst.exists() and filecmp.cmp(src, dst, shallow=False):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    return True


def _seconds(marker: Path) -> float:
    """What a finished stage took (its .done marker's "seconds"); unknown counts as expensive."""
    try:
        return float(json.loads(marker.read_text()).get("seconds") or math.inf)
    except (ValueError, AttributeError):
        return math.inf


def _files(run: Path, partial: bool, min_seconds: float = 0) -> list[Path]:
    """The files of `run` that a resumed study needs (see the module docstring). A finished stage
    that took under `min_seconds` is left out, marker and outputs, so a restored study redoes it."""
    markers = {p.name: p for p in (run / ".done").glob("*")}
    keep = {name for name, m in markers.items() if _seconds(m) >= min_seconds}
    cheap = set(markers) - keep
    out = [p for p in run.iterdir() if p.is_file() and p.stem not in cheap]  # <stage>.jsonl: its stage's
    out += [markers[name] for name in sorted(keep)]
    for stage in sorted(keep):
        if (run / stage).is_dir():
            out += [
                p for p in (run / stage).rglob("*") if p.is_file() and not p.name.startswith("checkpoint")
            ]
    if partial:
        for d in sorted(
            p for p in run.iterdir() if p.is_dir() and p.name not in markers and p.name != ".done"
        ):
            files = [p for p in d.rglob("*") if p.is_file()]
            ckpts = sorted(
                (p for p in files if p.name.startswith("checkpoint")), key=lambda p: p.stat().st_mtime
            )
            # the newest checkpoint and everything but checkpoints (metrics, split, data drawn so far)
            out += [p for p in files if not p.name.startswith("checkpoint")] + ckpts[-1:]
    # a run dir's lock belongs to the process that ran it (a restored one would only be taken over)
    return [p for p in out if p.name != ".lock"]


def save(runs: list[Path], partial: bool, snapshots: Path = SNAPSHOTS, min_seconds: float = 300) -> None:
    for run in runs:
        run = run.resolve()
        if not (run / ".done").is_dir():
            sys.exit(
                f"{run}: no .done/ stage markers; give a study's run dir (e.g. runs/reproduce-textcraft)"
            )
        dest = snapshots / run.name
        keep = set()
        copied = 0
        for f in _files(run, partial, min_seconds):
            rel = f.relative_to(run)
            keep.add(rel)
            copied += _copy(f, dest / rel)
        # A file saved before but no longer wanted goes: with --partial any (an unfinished stage's
        # older checkpoint); without, only inside finished stages (the checkpoint a session-end save
        # left there), so a plain save never drops the checkpoint an unfinished stage resumes from.
        finished = {p.name for p in (run / ".done").glob("*")}
        for old in [p for p in dest.rglob("*") if p.is_file() and p.relative_to(dest) not in keep]:
            if partial or old.relative_to(dest).parts[0] in finished:
                old.unlink()
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        print(f"{run.name}: {len(keep)} files ({copied} new or changed), {size / 2**20:.1f} MiB -> {dest}")


def restore(snapshots: Path = SNAPSHOTS, runs: Path = RUNS) -> None:
    """Copy each saved run dir into `runs` where that run dir does not exist (a new machine). One
    that exists is this machine's own, at least as far along: merging into it could bring back a
    stage marker someone deleted to redo the stage, so it is left alone."""
    for dest in sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []:
        run = runs / dest.name
        if run.exists():
            print(f"{dest.name}: {run} exists, left as it is")
            continue
        copied = sum(_copy(f, run / f.relative_to(dest)) for f in dest.rglob("*") if f.is_file())
        print(f"{dest.name}: {copied} files restored into {run}")


def status() -> None:
    for dest in sorted(p for p in SNAPSHOTS.iterdir() if p.is_dir()) if SNAPSHOTS.is_dir() else []:
        stages = sorted(p.name for p in (dest / ".done").glob("*"))
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        print(f"{dest.name}: {size / 2**20:.1f} MiB, finished stages: {', '.join(stages) or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["save", "restore", "status"])
    ap.add_argument("runs", nargs="*", type=Path, help="run dirs to save")
    ap.add_argument("--partial", action="store_true", help="also the newest checkpoint of unfinished stages")
    ap.add_argument(
        "--min-seconds",
        type=float,
        default=300,
        help="finished stages quicker than this are redone, not saved",
    )
    a = ap.parse_args()
    if a.command == "save":
        if not a.runs:
            ap.error("save: name the run dirs, e.g. runs/reproduce-textcraft")
        save(a.runs, a.partial, min_seconds=a.min_seconds)
    elif a.command == "restore":
        restore()
    else:
        status()


if __name__ == "__main__":
    main()
