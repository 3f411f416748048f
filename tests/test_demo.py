"""`agentprm demo` end to end at toy scale (the test preset): every stage runs, the report is written,
and a re-run skips every finished stage."""

from __future__ import annotations

import json

from agentprm.recipes import demo


def test_demo_runs_every_stage_and_skips_them_when_rerun(tmp_path, capsys):
    args = demo.Args(run_dir=tmp_path / "demo", model="test", expert_tasks=24, sft_minutes=0.1, rollout_tasks=3,
                     samples=2, prm_minutes=0.05, pool=2, test_tasks="0,1", max_rounds=2, threads=1)  # fmt: skip
    demo.main(args)
    run = tmp_path / "demo"
    stages = sorted(p.name for p in (run / ".done").iterdir())
    assert stages == sorted(
        ["expert", "sft", "rollouts", "evaluate"] + [f"prm-{n}" for n in demo.REWARD_MODELS]
    )
    results = json.loads((run / "evaluate" / "results.json").read_text())
    assert set(results["bon"]) == set(demo.REWARD_MODELS) and results["tasks"] == 2
    report = (run / "report.md").read_text()
    assert "agentprm beam @2x2" in report and (run / "figure3_babyai.png").exists()
    capsys.readouterr()
    demo.main(args)
    assert capsys.readouterr().out.count("done before, skipped") == len(stages)
