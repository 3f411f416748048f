"""scripts/snapshot.py: a study's finished stages survive a new machine through git, without the
optimizer checkpoints of finished stages; an unfinished stage's newest checkpoint only with --partial."""

import importlib.util
import os
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "snapshot.py"


def _module():
    spec = importlib.util.spec_from_file_location("snapshot", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _study(root: Path) -> Path:
    run = root / "reproduce-x"
    for rel, text in {
        "args.json": "{}",
        ".lock": "123 host",
        "sft/.lock": "123 host",
        "expert.jsonl": '{"a": 1}\n',
        ".done/expert": '{"seconds": 60}',
        ".done/sft": '{"seconds": 5000}',
        "sft/model/model.safetensors": "weights",
        "sft/checkpoint.pt": "adam",
        "prm-a/metrics.jsonl": '{"step": 25}\n',
        "prm-a/checkpoint-25.pt": "old",
        "prm-a/checkpoint-50.pt": "new",
    }.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(text)
    os.utime(run / "prm-a" / "checkpoint-25.pt", (1, 1))  # older than checkpoint-50
    return run


def _tree(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def test_save_keeps_finished_stages_without_checkpoints_and_restore_fills_an_empty_runs(tmp_path):
    """sft (5000 s) is kept without its optimizer checkpoint; expert (60 s) is left out, marker and
    file, so the restored study redoes it."""
    snap = _module()
    run = _study(tmp_path / "runs")
    snap.save([run], partial=False, snapshots=tmp_path / "snapshots")
    saved = tmp_path / "snapshots" / "reproduce-x"
    assert _tree(saved) == {"args.json", ".done/sft", "sft/model/model.safetensors"}

    fresh = tmp_path / "new-machine-runs"
    snap.restore(snapshots=tmp_path / "snapshots", runs=fresh)
    assert _tree(fresh / "reproduce-x") == _tree(saved)
    assert (fresh / "reproduce-x" / "sft/model/model.safetensors").read_text() == "weights"


def test_partial_adds_the_newest_checkpoint_until_its_stage_finishes(tmp_path):
    snap = _module()
    run = _study(tmp_path / "runs")
    out = tmp_path / "snapshots"
    snap.save([run], partial=True, snapshots=out)
    saved = _tree(out / "reproduce-x")
    assert {"prm-a/metrics.jsonl", "prm-a/checkpoint-50.pt"} <= saved
    assert "prm-a/checkpoint-25.pt" not in saved and "sft/checkpoint.pt" not in saved
    snap.save([run], partial=False, snapshots=out)  # prm-a unfinished: its checkpoint stays saved
    assert "prm-a/checkpoint-50.pt" in _tree(out / "reproduce-x")
    (run / ".done" / "prm-a").write_text('{"seconds": 4000}')  # now it finished: its checkpoint goes
    (run / "prm-a" / "model.safetensors").write_text("weights")
    snap.save([run], partial=False, snapshots=out)
    prm = {p for p in _tree(out / "reproduce-x") if p.startswith("prm-a/")}
    assert prm == {"prm-a/metrics.jsonl", "prm-a/model.safetensors"}


def test_restore_never_overwrites_what_a_run_already_has(tmp_path):
    snap = _module()
    run = _study(tmp_path / "runs")
    snap.save([run], partial=False, snapshots=tmp_path / "snapshots", min_seconds=0)
    assert (tmp_path / "snapshots" / "reproduce-x" / "expert.jsonl").exists()  # every stage kept at 0
    (run / "args.json").write_text('{"newer": true}')
    (run / ".done" / "sft").unlink()  # deleted to redo the stage: a restore must not bring it back
    snap.restore(snapshots=tmp_path / "snapshots", runs=tmp_path / "runs")
    assert (run / "args.json").read_text() == '{"newer": true}'
    assert not (run / ".done" / "sft").exists()
