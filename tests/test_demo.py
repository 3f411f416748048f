"""`agentprm demo` end to end at toy scale (the test preset): every stage runs, the report is written,
a re-run skips every finished stage, and a second run from scratch writes the same results.json."""

from __future__ import annotations

import json

import pytest

from agentprm.recipes import demo


def _args(run_dir):
    return demo.Args(
        run_dir=run_dir,
        model="test",
        expert_tasks=24,
        sft_steps=6,
        rollout_tasks=3,
        samples=2,
        prm_steps=2,
        pool=2,
        test_tasks="0,1",
        max_rounds=2,
        threads=1,
    )


@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_demo_runs_every_stage_skips_them_when_rerun_and_is_deterministic(tmp_path, capsys):
    args = _args(tmp_path / "demo")
    demo.main(args)
    run = tmp_path / "demo"
    stages = sorted(p.name for p in (run / ".done").iterdir())
    assert stages == sorted(
        ["expert", "sft", "rollouts", "evaluate"] + [f"prm-{n}" for n in demo.REWARD_MODELS]
    )
    results = json.loads((run / "evaluate" / "results.json").read_text())
    assert set(results["bon"]) == set(demo.REWARD_MODELS) and results["tasks"] == 2
    # every reward model got exactly the same optimizer budget; ORM and PVM train with L_Q only
    rms = results["reward_models"]
    assert {i["steps"] for i in rms.values()} == {2} and all(i["train_tokens"] > 0 for i in rms.values())
    assert rms["pvm"]["beta"] == rms["orm"]["beta"] == 0.0 and rms["agentprm"]["beta"] == 1.0
    assert results["comparison"]["method"] == "agentprm"
    assert set(results["comparison"]["baselines"]) == {"orm", "pvm", "agentprm-no-LA"}
    report = (run / "report.md").read_text()
    assert "agentprm beam @2x2" in report and (run / "figure3_babyai.png").exists()
    assert "optimizer steps" in report and "agentprm vs pvm:" in report
    out = capsys.readouterr().out
    assert "agentprm vs orm:" in out and "[95% CI]" in out
    demo.main(args)
    assert capsys.readouterr().out.count("done before, skipped") == len(stages)
    # the same arguments from scratch: the same numbers
    demo.main(_args(tmp_path / "again"))
    again = (tmp_path / "again" / "evaluate" / "results.json").read_text().replace("/again/", "/demo/")
    assert again == (run / "evaluate" / "results.json").read_text()
