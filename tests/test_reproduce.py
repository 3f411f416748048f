"""`agentprm reproduce` at toy scale (the test preset): every stage of the protocol runs (MC labels and
five reward models included), the report has the protocol and the training curves, a finished
stage is skipped on a re-run and refused when its arguments changed."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agentprm import rundir
from agentprm.recipes import reproduce


def _args(run_dir, **kw):
    return reproduce.toy(run_dir, **kw)


def test_reproduce_runs_the_protocol_and_resumes(tmp_path, capsys):
    run = tmp_path / "study"
    args = _args(run)
    reproduce.main(args)
    stages = sorted(p.name for p in (run / ".done").iterdir())
    assert stages == sorted(
        ["expert", "sft", "rollouts", "mc", "evaluate"] + [f"prm-{n}" for n in reproduce.REWARD_MODELS]
    )
    results = json.loads((run / "evaluate" / "results.json").read_text())
    assert results["env"] == "babyai-agentgym"  # the paper's setting by default
    rms = results["reward_models"]
    assert set(rms) == set(reproduce.REWARD_MODELS) and {i["steps"] for i in rms.values()} == {2}
    assert rms["mc"]["labels"] == "mc" and rms["agentprm-beta0"]["beta"] == 0.0
    assert results["comparison"]["method"] == "agentprm"
    for name in reproduce.REWARD_MODELS:  # the kept weights are the lowest held-out loss
        summary = json.loads((run / f"prm-{name}" / "summary.json").read_text())
        assert summary["keep"] == "best" and summary["selected_step"] in (1, 2)
    report = (run / "report.md").read_text()
    assert "## Protocol" in report and "babyai-agentgym" in report and "N_mc = 2" in report
    assert "## Training curves" in report and (run / "training_curves.png").exists()
    assert "mc-label" in report and "## Table 3" in report  # the MC labelling cost and what it buys
    assert "| Monte Carlo (mc) |" in report and "| TD(lambda)+GAE (agentprm) |" in report
    # what each model trained on: 2 rollouts per task of the 3 training tasks (4 PRM tasks, 20% held out)
    # for TD; one seed trajectory per task for MC, 16 trajectories drawn per step over 2 steps
    assert "train on 6 rollouts (2 per task of 3), 5.3 epochs in 2 steps" in report
    assert "the MC model on 3 seed trajectories (one per task), 10.7 epochs" in report
    drawn = json.loads((run / "rollouts" / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"{drawn['tasks_mixed']} of 4 tasks with mixed outcomes" in report
    capsys.readouterr()
    reproduce.main(args)
    assert capsys.readouterr().out.count("done before, skipped") == len(stages)
    # a finished stage with other arguments is refused, naming what changed
    with pytest.raises(rundir.RunDirError, match="stage sft .* other arguments \\(max_steps\\)"):
        reproduce.main(dataclasses.replace(args, sft_steps=5))


def test_the_study_warns_when_few_prm_tasks_have_mixed_outcomes(tmp_path):
    """The 650-step TextCraft policy's data (37 of 200 tasks mixed) is flagged; BabyAI's (165) is not."""

    def line(mixed):
        (tmp_path / "rollouts").mkdir(exist_ok=True)
        summary = {
            "trajectories": 3200,
            "tasks": 200,
            "success_rate": 0.1,
            "tasks_mixed": mixed,
            "mean_rounds": 5.0,
        }
        (tmp_path / "rollouts" / "metrics.jsonl").write_text(json.dumps(summary) + "\n")
        return reproduce.rollouts_line(tmp_path)

    assert line(37)[0].startswith("- PRM data as drawn: success 0.100 over 3200 rollouts, 37 of 200")
    assert "WARNING" in line(37)[0] and "WARNING" in line(49)[0]
    assert "WARNING" not in line(50)[0] and "WARNING" not in line(165)[0]
    assert reproduce.rollouts_line(tmp_path / "no-rollouts-yet") == []


def test_reproduce_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="unknown reward models"):
        _args(tmp_path, reward_models=("agentprm", "prm800k"))
    with pytest.raises(ValueError, match="needs the agentprm"):
        _args(tmp_path, reward_models=("pvm", "orm"))
    with pytest.raises(SystemExit, match="--stop-after"):
        reproduce.main(_args(tmp_path / "x", stop_after="nothing"))


@pytest.mark.slow  # ~15 s: kept out of the default suite's 3 minutes; run with -m slow
def test_reproduce_runs_on_webshop(tmp_path):
    """The same protocol on WebShop: its scale (6 rounds, a 1024-token renderer budget) reaches
    every stage, and the report says the embedded catalogue is not comparable to the paper."""
    run = tmp_path / "webshop"
    reproduce.main(_args(run, env="webshop", max_rounds=6))  # the expert needs 5 rounds
    results = json.loads((run / "evaluate" / "results.json").read_text())
    assert results["env"] == "webshop" and results["comparison"]["method"] == "agentprm"
    sft_args = json.loads((run / "sft" / "args.json").read_text())
    assert sft_args["max_prompt_tokens"] == 1024 and sft_args["env"] == "webshop"
    assert "not comparable to the paper" in (run / "report.md").read_text()


@pytest.mark.slow  # ~12 s: run with -m slow
def test_reproduce_runs_on_math(tmp_path):
    """The protocol on math word problems (Section 5.3): steps are lines, the expert writes the
    reference solutions, every stage runs and the report names the env."""
    run = tmp_path / "math"
    reproduce.main(_args(run, env="math", max_rounds=8))  # the reference solutions take 4-5 steps
    results = json.loads((run / "evaluate" / "results.json").read_text())
    assert results["env"] == "math" and results["comparison"]["method"] == "agentprm"
    expert = [json.loads(x) for x in (run / "expert.jsonl").read_text().splitlines()]
    assert expert and all(r["env"] == "math" for r in expert)
    rollouts = (run / "rollouts" / "trajectories.jsonl").read_text().splitlines()
    assert len(rollouts) == 4 * 2  # prm_tasks x n_td
    assert "math" in (run / "report.md").read_text()
