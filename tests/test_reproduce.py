"""`agentprm reproduce` at toy scale (the test preset): every stage of the protocol runs (MC labels and
five reward models included), the report has the protocol and the training curves, a finished
stage is skipped on a re-run and refused when its arguments changed."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agentprm import rundir
from agentprm.recipes import reproduce
from agentprm.types import read_trajectories


def _args(run_dir, **kw):
    return reproduce.toy(run_dir, **kw)


@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_reproduce_runs_the_protocol_and_resumes(tmp_path, capsys):
    run = tmp_path / "study"
    args = _args(run)
    reproduce.main(args)
    stages = sorted(p.name for p in (run / ".done").iterdir())
    assert stages == sorted(
        ["expert", "sft", "rollouts", "mc", "agreement", "evaluate"]
        + [f"prm-{n}" for n in reproduce.REWARD_MODELS]
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
    # every model against the MC estimates, on held-out and training PRM tasks
    agreement = json.loads((run / "agreement" / "mc_agreement.json").read_text())
    assert set(agreement) == {"heldout", "train"}
    rows = agreement["train"]["rows"]
    assert [r["name"] for r in rows] == ["MC, first half vs second half", *reproduce.REWARD_MODELS]
    assert "## Reward models against Monte-Carlo estimates" in report and "| agentprm-beta0 |" in report
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


@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_prm_capacity_retrains_a_studys_reward_models_on_another_preset(tmp_path, capsys, monkeypatch):
    """benchmarks/prm_capacity.py: the study's SFT and PRM arguments on another preset, the study's
    pool reused and its models evaluated beside the new ones from their cached work; then the same
    with more PRM tasks instead (the study's draw extended, its held-out tasks held out)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "prm_capacity.py"
    spec = importlib.util.spec_from_file_location("prm_capacity", path)
    capacity = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "prm_capacity", capacity)  # dataclasses look their module up
    spec.loader.exec_module(capacity)
    study = tmp_path / "study"
    reproduce.main(_args(study))
    capacity.main(capacity.Args(study=study, preset="test"))
    out = study / "capacity-test"
    assert json.loads((out / "sft" / "args.json").read_text())["max_steps"] == 4  # the study's SFT budget
    for name in ("agentprm", "orm"):
        mine, theirs = (json.loads((d / f"prm-{name}" / "args.json").read_text()) for d in (out, study))
        assert mine["model"] == str(out / "sft" / "model")
        differ = ("model", "run_dir", "threads", "time_guard_minutes", "heldout_tasks")
        assert {k: v for k, v in mine.items() if k not in differ} == {
            k: v for k, v in theirs.items() if k not in differ
        }
        split_mine, split_theirs = (
            json.loads((d / f"prm-{name}" / "split.json").read_text()) for d in (out, study)
        )
        assert split_mine == split_theirs
    run = out / "evaluate"
    assert (run / "pool.jsonl").read_bytes() == (study / "evaluate" / "pool.jsonl").read_bytes()
    # the greedy run, the pool and the tiny models' scores and beams were reused, not played again
    assert (run / "beam_agentprm-study_1x2.jsonl").read_bytes() == (
        study / "evaluate" / "beam_agentprm_1x2.jsonl"
    ).read_bytes()
    spent = json.loads((run / "ledgers.json").read_text())
    # greedy and pool: no generate call here; their cost is read from the copied episodes
    theirs = json.loads((study / "evaluate" / "ledgers.json").read_text())
    for k in ("greedy", "pool"):
        assert spent[k]["generate_calls"] == 0 and spent[k]["policy_tokens"] == theirs[k]["policy_tokens"] > 0
    reused = ["score pool: agentprm-study", "beam orm-study @1x2"]
    assert all(spent[k]["policy_tokens"] == spent[k]["prm_tokens"] == 0 for k in reused)
    assert spent["beam agentprm @1x2"]["prm_tokens"] > 0  # the new models did search
    results = json.loads((run / "results.json").read_text())
    assert set(results["reward_models"]) == {"agentprm", "orm", "agentprm-study", "orm-study"}
    assert results["reward_models"]["agentprm"]["labels"] == "td"
    tiny = json.loads((study / "evaluate" / "results.json").read_text())
    assert results["bon"]["agentprm-study"] == tiny["bon"]["agentprm"]  # same pool, same scores
    # both backbones against the MC estimates in one table; the tiny rows are the study's own
    agreement = json.loads((out / "agreement" / "mc_agreement.json").read_text())
    names = [r["name"] for r in agreement["train"]["rows"]]
    assert names == ["MC, first half vs second half", "agentprm", "orm", "agentprm-study", "orm-study"]
    study_rows = json.loads((study / "agreement" / "mc_agreement.json").read_text())["train"]["rows"]
    assert (
        agreement["train"]["rows"][3]["promise"]
        == next(r for r in study_rows if r["name"] == "agentprm")["promise"]
    )
    capsys.readouterr()
    capacity.main(capacity.Args(study=study, preset="test"))  # everything finished is skipped
    assert capsys.readouterr().out.count("done before, skipped") == 5

    # the data axis: the study's own policy, 2 more PRM tasks, the steps scaled with the training tasks
    capacity.main(capacity.Args(study=study, preset="none", extra_tasks=2, reward_models=("agentprm",)))
    out = study / "data6"
    assert not (out / "sft").exists()
    trajs = read_trajectories(out / "rollouts" / "trajectories.jsonl")
    theirs = read_trajectories(study / "rollouts" / "trajectories.jsonl")
    assert trajs[: len(theirs)] == theirs and len(trajs) == len(theirs) + 2 * 2  # n_td = 2 per new task
    mine = json.loads((out / "prm-agentprm" / "args.json").read_text())
    assert mine["model"] == str(study / "sft" / "model") and mine["max_steps"] == round(2 * (3 + 2) / 3)
    split = json.loads((out / "prm-agentprm" / "split.json").read_text())
    study_split = json.loads((study / "prm-agentprm" / "split.json").read_text())
    assert split["heldout"] == study_split["heldout"] and len(split["train"]) == len(study_split["train"]) + 2
    with pytest.raises(ValueError, match="nothing changes"):
        capacity.main(capacity.Args(study=study, preset="none"))
    with pytest.raises(
        ValueError, match=r"16 of them are in the SFT data \(1280 tasks outside it\).*--allow-sft-tasks"
    ):
        capacity.main(capacity.Args(study=study, preset="none", extra_tasks=1296))


def test_an_mc_model_on_fewer_tasks_holds_out_the_first_models_held_out_tasks(tmp_path):
    """TextCraft labels 64 of its 200 PRM tasks: its MC model must not train on tasks the others
    hold out, so it takes their held-out list (where MC covers every PRM task the splits agree anyway)."""
    plan = {name: a for name, a, _ in reproduce.stages(_args(tmp_path, mc_tasks=2), tmp_path)}
    assert plan["prm-mc"].heldout_tasks == tmp_path / "prm-agentprm" / "split.json"
    assert all(plan[f"prm-{n}"].heldout_tasks is None for n in reproduce.REWARD_MODELS if n != "mc")
    everywhere = {name: a for name, a, _ in reproduce.stages(_args(tmp_path), tmp_path)}
    assert everywhere["prm-mc"].heldout_tasks is None  # BabyAI's finished study keeps its arguments


@pytest.mark.slow  # ~2 min: run with -m slow
def test_textcraft_study_and_its_ppo_comparison_run_end_to_end(tmp_path):
    """TextCraft's protocol, MC labels on fewer tasks than the PRM data as at its CPU scale (the
    MC model then holds out the first model's held-out goals), through agreement and evaluation,
    and Figure 5's comparison from it: the stages its study has not reached on the real scale."""
    from agentprm.recipes import ppo_compare

    study = tmp_path / "study"
    reproduce.main(_args(study, env="textcraft", max_rounds=4, prm_tasks=10, mc_tasks=9))
    assert json.loads((study / "evaluate" / "results.json").read_text())["env"] == "textcraft"
    assert (study / "agreement" / "mc_agreement.json").exists()
    curves = ppo_compare.main(
        ppo_compare.Args(
            study=study, iterations=1, tasks_per_iter=2, samples=2, eval_every=1, eval_tasks="0,1",
            run_dir=tmp_path / "cmp", threads=1,
        )
    )  # fmt: skip
    assert set(curves) == {"env", "orm", "pvm", "agentprm"}
    assert (tmp_path / "cmp" / "figure5_textcraft.png").exists()
