"""Imports point downward only (architecture.md): types -> envs -> prompts -> models/policy -> rollout
-> labels/losses -> search -> recipes -> cli. Checked by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "agentprm"
# Lower number = lower layer. A module may import only from its own layer or below. The documented
# order (architecture.md): types -> envs -> prompts -> models/policy -> rollout -> prm (value model,
# batching, readout, scoring, labels, losses; PPO's maths) -> search/diagnostics -> report/serving ->
# recipes/integrations -> cli.
LAYERS = {
    "types": 0, "rundir": 0, "validate": 0, "jsonl": 0,
    "envs": 1,
    "experts": 2, "agentgym": 2, "prompts": 2,
    "models": 3, "policy": 3, "policies": 3,
    "rollout": 4,
    "prm": 5, "evaluation": 5, "ppo": 5,
    "diagnostics": 6, "search": 6,
    "report": 7, "serving": 7,
    "recipes": 8, "integrations": 8,
    "cli": 9,
}  # fmt: skip
# Recipes that compose other recipes (every other recipe imports none).
COMPOSERS = {"demo", "reproduce", "ppo_compare"}


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


def test_every_module_has_a_layer():
    """A new top-level module must be placed in LAYERS (and so in the documented order)."""
    missing = [
        p.name
        for p in ROOT.iterdir()
        if p.name != "__init__.py"
        and p.name != "__pycache__"
        and (p.suffix == ".py" or p.is_dir())
        and p.stem not in LAYERS
    ]
    assert not missing, f"modules without a layer in tests/test_layout.py: {missing}"


def test_recipes_do_not_import_each_other():
    bad = []
    for path in (ROOT / "recipes").glob("*.py"):
        if path.stem in COMPOSERS:
            continue
        for name in _imports(path):
            if name.startswith("agentprm.recipes"):
                bad.append(f"{path.name}: imports {name}")
    assert not bad, "recipes must take shared code from components, not from another recipe:\n" + "\n".join(
        bad
    )
