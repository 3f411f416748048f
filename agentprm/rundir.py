"""Run directories: every run leaves runs/<name>/ with args.json, metrics.jsonl and its artifacts."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def prepare(run_dir: str | os.PathLike, args) -> Path:
    """Create the run directory and (over)write args.json with the run's Args dataclass."""
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "args.json.tmp"
    tmp.write_text(json.dumps(_jsonable(args), indent=2) + "\n")
    os.replace(tmp, path / "args.json")
    return path


def log_metrics(run_dir: str | os.PathLike, metrics: dict) -> None:
    """Append one line of metrics (with a wall-clock timestamp) to metrics.jsonl."""
    record = {"time": round(time.time(), 3), **_jsonable(metrics)}
    with open(Path(run_dir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
