"""Fingerprint of a fixed-seed toy study: run `agentprm reproduce` at toy scale (the `test` preset:
expert data, SFT, collect, MC labels, five reward models, evaluate) and print a SHA-256 per output.
Two commits that should behave the same (a refactor) must print the same lines.

    python benchmarks/toy_identity.py [--out /tmp/toy-identity]   # ~30 s on 2 cores

Fingerprinted: every trajectory file, the MC labels, each reward model's weights and diagnostics,
and evaluate's results.json. Timing fields (seconds, minutes, time) are dropped before hashing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from agentprm.recipes import reproduce

TIMING = {"seconds", "minutes", "time"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def digest(path: Path, root: Path) -> str:
    """SHA-256 of a file; JSON and JSONL with timing fields removed and the run dir's path replaced."""
    data = path.read_bytes()
    if path.suffix in (".json", ".jsonl"):
        text = data.decode().replace(str(root), "<run>")
        docs = (
            [json.loads(text)]
            if path.suffix == ".json"
            else [json.loads(x) for x in text.splitlines() if x.strip()]
        )
        data = "\n".join(json.dumps(_strip(d), sort_keys=True) for d in docs).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/toy-identity"))
    out = parser.parse_args().out
    shutil.rmtree(out, ignore_errors=True)
    reproduce.main(reproduce.toy(out))
    files = [
        "expert.jsonl",
        "rollouts/trajectories.jsonl",
        "mc/mc_labels.jsonl",
        "evaluate/results.json",
        "evaluate/greedy.jsonl",
        "evaluate/pool.jsonl",
    ]
    files += [str(p.relative_to(out)) for p in sorted(out.glob("prm-*/model/*.safetensors"))]
    files += [str(p.relative_to(out)) for p in sorted(out.glob("prm-*/diagnostics.json"))]
    files += [str(p.relative_to(out)) for p in sorted(out.glob("evaluate/beam_*.jsonl"))]
    for name in files:
        print(f"{digest(out / name, out)}  {name}")


if __name__ == "__main__":
    main()
