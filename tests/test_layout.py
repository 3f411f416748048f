"""Imports point downward only (architecture.md): types -> envs -> prompts -> models/policy -> rollout
-> labels/losses -> search -> recipes -> cli. Checked by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "agentprm"
# Lower number = lower layer. A module may import only from its own layer or below.
LAYERS = {
    "types": 0, "envs": 1, "experts": 2, "agentgym": 2, "prompts": 2, "models": 3, "policy": 3,
    "policies": 3, "rollout": 4, "labels": 5, "losses": 5, "prm_batch": 5, "mc": 5, "diagnostics": 6,
    "search": 6, "scorers": 6, "evaluation": 5, "rundir": 0, "validate": 0, "report": 7,
    "recipes": 8, "cli": 9,
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if parts[0] == "agentprm" and len(parts) > 1 else None


def test_imports_point_downward():
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        own = _layer(".".join(rel.parts))
        if own is None:
            continue
        for name in _imports(path):
            other = _layer(name)
            if other is not None and other > own:
                bad.append(f"{rel}: imports {name}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_envs_do_not_import_torch():
    for path in (ROOT / "envs").rglob("*.py"):
        assert not any(n.split(".")[0] in ("torch", "transformers") for n in _imports(path)), path
