"""Run directories: every run leaves runs/<name>/ with args.json, metrics.jsonl and its artifacts."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path


class TimeGuardError(RuntimeError):
    """A training stage ran past its --time-guard-minutes: its results are not comparable (budgets
    are optimizer steps; the guard only catches a run that overruns, and says so)."""


def jsonable(value):
    """Paths, dataclasses, tuples -> JSON types; NaN (a metric that was not measured) -> None,
    so that every file we write is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value):
        return {k: jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def prepare(run_dir: str | os.PathLike, args) -> Path:
    """Create the run directory and (over)write args.json with the run's Args dataclass."""
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "args.json.tmp"
    tmp.write_text(json.dumps(jsonable(args), indent=2) + "\n")
    os.replace(tmp, path / "args.json")
    return path


def log_metrics(run_dir: str | os.PathLike, metrics: dict) -> None:
    """Append one line of metrics (with a wall-clock timestamp) to metrics.jsonl."""
    record = {"time": round(time.time(), 3), **jsonable(metrics)}
    with open(Path(run_dir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file aside and rename it: readers never see a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(obj, path: str | os.PathLike) -> None:
    """torch.save written aside, then renamed: a kill never leaves a half-written checkpoint."""
    import torch  # only the training recipes need it; keep `agentprm envs` & co. light

    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_model(model, tokenizer, out: str | os.PathLike) -> Path:
    """save_pretrained of model and tokenizer into `out`, written aside (out.tmp) and renamed."""
    out = Path(out)
    tmp = out.with_suffix(".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def read_records(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """The JSON objects of a JSONL file written one fsync'ed line at a time (e.g. mc_labels.jsonl).

    Blank lines are ignored. A last line without its newline was torn by a kill mid-write: it is
    dropped with a warning (and, with repair=True, cut from the file, so that the next append starts
    a fresh line and the resumed run redoes that record). Any other bad line raises
    ValueError("<path>:<lineno>: ...; fix or delete that line"). A missing file gives [].

    Example: read_records("runs/mc/mc_labels.jsonl") -> [{"task": 3, "sample": 0, ...}, ...]
    """
    import warnings

    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    records, offset = [], 0
    for lineno, raw in enumerate(data.splitlines(keepends=True), start=1):
        start, offset = offset, offset + len(raw)
        if not raw.strip():
            continue
        torn = not raw.endswith(b"\n")
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if not torn:
                raise ValueError(f"{path}:{lineno}: bad record ({e}); fix or delete that line") from None
            warnings.warn(
                f"{path}:{lineno}: dropping a torn last line (no trailing newline): {e}", stacklevel=2
            )
            if repair:
                with open(path, "r+b") as f:
                    f.truncate(start)
            break
        records.append(rec)
        if torn and repair:
            with open(path, "ab") as f:
                f.write(b"\n")
    return records
