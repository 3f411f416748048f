"""The one JSONL module: every file the project appends to (trajectories, MC labels, metrics) is
written and read through it.

Writing: one record = one "json\\n" line, flushed and fsync'ed before the call returns, so a kill
leaves at most the last line torn (no trailing newline). Reading: lines split on b"\\n" only (a raw
U+2028 inside a string is not a line break), blank lines ignored, a torn last line dropped with a
warning, any other bad line an error that names path:line and says to fix or delete it.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl")
    >>> append(path, [{"task": 3}, {"task": 4}])
    >>> read(path)
    [{'task': 3}, {'task': 4}]
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


def write_line(f: BinaryIO, line: bytes) -> None:
    """Append one encoded line (ending in b"\\n") to an open binary file, then flush and fsync."""
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


def append(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append each record as one JSON line (flush + fsync per line); creates the file if needed."""
    with open(path, "ab") as f:
        for rec in records:
            write_line(f, (json.dumps(rec) + "\n").encode())


def scan(path: str | os.PathLike) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) for every non-blank line, in order; a raw line without
    a trailing b"\\n" is the last one (torn if it does not parse)."""
    offset = 0
    with open(path, "rb") as f:
        # Iterating a binary file splits on b"\n" only, unlike str.splitlines, which would also
        # split on the U+2028 / U+0085 that ensure_ascii=False leaves raw inside strings.
        for lineno, raw in enumerate(f, start=1):
            start, offset = offset, offset + len(raw)
            if raw.strip():
                yield lineno, start, raw


def read(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """The JSON objects of a JSONL file; a missing file gives [].

    A last line without its newline was torn by a kill mid-write: it is dropped with a warning
    (and, with repair=True, cut from the file, so that the next append starts a fresh line and the
    resumed run redoes that record; a complete last line only gets its newline). Any other bad line
    raises ValueError("<path>:<lineno>: ...; fix or delete that line").

    Example: read("runs/mc/mc_labels.jsonl") -> [{"task": 3, "sample": 0, ...}, ...]
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for lineno, start, raw in scan(path):
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
                write_line(f, b"\n")
    return records


def read_object(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict:
    """The JSON object in a .json file (args.json, results.json, ...), with ValueError naming the file
    (and the missing fields) when it is not valid JSON, not an object, or lacks a required field."""
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-run the command that writes it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object; re-run the command that writes it")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; re-run the command that writes it")
    return data
