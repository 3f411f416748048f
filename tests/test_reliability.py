"""Nothing lost, nothing silently wrong: run-dir locks and argument checks (as real processes), a
resumed train-prm equal to an uninterrupted one, reports that survive a torn metrics line, and a CLI
that answers expected errors in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from agentprm import jsonl, rundir
from agentprm.cli import main as cli_main
from agentprm.experts import make_expert
from agentprm.recipes import collect as collect_recipe
from agentprm.recipes import train_prm
from agentprm.report import load_runs
from agentprm.rollout import run_episode
from agentprm.types import Trajectory, write_trajectories


def agentprm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentprm.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "c"
    run.mkdir()
    rundir.lock(run)  # this test process holds the run dir, as a running collect would
    proc = agentprm(
        "collect", "--policy", str(tmp_path / "no-model"), "--tasks", "0:2", "--run-dir", str(run)
    )
    assert proc.returncode == 2, proc.stderr
    assert "is in use by pid" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (run / ".lock").write_text(f"pid {dead.stdout.strip()} on host h since then\n")
    with pytest.warns(UserWarning, match="no longer running"):
        rundir.prepare(run, collect_recipe.Args(run_dir=run))


@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_changed_arguments_are_refused_unless_overwrite(tmp_path):
    run = str(tmp_path / "c")
    first = agentprm("collect", "--policy", "A", "--tasks", "0:2", "--run-dir", run)
    assert (
        first.returncode != 0 and (tmp_path / "c" / "args.json").exists()
    )  # "A" is no model: it fails later
    second = agentprm("collect", "--policy", "B", "--temperature", "0.5", "--tasks", "0:2", "--run-dir", run)
    assert second.returncode == 2
    assert "other arguments (policy: 'A' -> 'B', temperature: 1.0 -> 0.5)" in second.stderr
    # output-neutral and extending arguments may change; --overwrite starts afresh
    assert (
        "other arguments"
        not in agentprm(
            "collect", "--policy", "A", "--tasks", "0:4", "--threads", "1", "--run-dir", run
        ).stderr
    )
    (tmp_path / "c" / "stale.txt").write_text("x")
    third = agentprm("collect", "--policy", "B", "--tasks", "0:2", "--run-dir", run, "--overwrite")
    assert "other arguments" not in third.stderr and not (tmp_path / "c" / "stale.txt").exists()
    assert json.loads((tmp_path / "c" / "args.json").read_text())["policy"] == "B"


def test_a_finished_stage_is_skipped_when_only_neutral_arguments_change(tmp_path):
    """reproduce / demo resumed with other --threads skip their finished stages; a changed seed is
    refused, naming it."""
    import dataclasses

    @dataclasses.dataclass
    class StageArgs:
        seed: int = 0
        threads: int | None = 2

    calls = []
    rundir.run_stage(tmp_path, "sft", StageArgs(), calls.append, "t")
    rundir.run_stage(tmp_path, "sft", StageArgs(threads=1), calls.append, "t")
    assert len(calls) == 1
    with pytest.raises(rundir.RunDirError, match=r"other arguments \(seed\)"):
        rundir.run_stage(tmp_path, "sft", StageArgs(seed=1), calls.append, "t")


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory):
    trajs = [run_episode("babyai", t, make_expert("babyai")) for t in (400, 405, 411, 416, 420)]
    trajs += [
        Trajectory(**{**t.__dict__, "sample": 1, "steps": t.steps[:1], "reward": 0.0, "success": False})
        for t in trajs
    ]
    path = tmp_path_factory.mktemp("data") / "rollouts.jsonl"
    write_trajectories(path, trajs)
    return path


def _prm_args(rollouts, run_dir, **kw):  # head dropout on: a resumed run must also restore the RNG state
    return train_prm.Args(
        data=rollouts,
        model="test",
        run_dir=run_dir,
        labels="td",
        epochs=3,
        batch_size=2,
        heldout=0.2,
        head_dropout=0.3,
        max_prompt_tokens=2048,
        **{"save_every": 2, **kw},
    )


def _kill_and_resume(rollouts, tmp_path, monkeypatch, at_step: int, **kw) -> None:
    """Train runs/whole uninterrupted; train runs/resumed until a kill (KeyboardInterrupt) right
    after step `at_step` is logged, then resume it as a new process would."""
    train_prm.main(_prm_args(rollouts, tmp_path / "whole", **kw))
    log = rundir.log_metrics

    def crash(run, metrics):
        log(run, metrics)
        if metrics.get("step") == at_step:
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "log_metrics", crash)
    with pytest.raises(KeyboardInterrupt):
        train_prm.main(_prm_args(rollouts, tmp_path / "resumed", **kw))
    monkeypatch.setattr(rundir, "log_metrics", log)
    for f in rundir._LOCKS.values():  # a new process would hold no lock
        f.close()
    rundir._LOCKS.clear()


def _same_run(tmp_path) -> None:
    """runs/resumed ended with the weights and the logged steps of runs/whole."""
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["model"]
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)

    def steps(name):
        return [
            (m["step"], "heldout/loss" in m)
            for m in jsonl.read(tmp_path / name / "metrics.jsonl")
            if "step" in m
        ]

    assert steps("resumed") == steps("whole")


def test_resumed_train_prm_equals_an_uninterrupted_one(rollouts, tmp_path, monkeypatch):
    _kill_and_resume(rollouts, tmp_path, monkeypatch, at_step=3)  # the last checkpoint is step 2's
    # step 3 ran twice; its first record was dropped on resume, so the logs list the same steps
    train_prm.main(_prm_args(rollouts, tmp_path / "resumed"))
    _same_run(tmp_path)


def test_sigusr1_asks_train_prm_for_a_checkpoint_it_resumes_from(rollouts, tmp_path, monkeypatch, capsys):
    """kill -USR1 after step 2 (checkpoints every 100 steps): the run saves step 2 and goes on; a
    kill after step 3 then resumes from step 2 to the uninterrupted run's weights and log."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers live in the main thread only")
    log = rundir.log_metrics

    def signal_at_step_2(run, metrics):
        log(run, metrics)
        if metrics.get("step") == 2 and "train/loss" in metrics:
            os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(rundir, "log_metrics", signal_at_step_2)
    _kill_and_resume(rollouts, tmp_path, monkeypatch, at_step=3, save_every=100)
    assert "checkpoint at step 2/" in capsys.readouterr().out
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["step"] == 2
    train_prm.main(_prm_args(rollouts, tmp_path / "resumed", save_every=100))
    _same_run(tmp_path)


def test_report_survives_a_torn_metrics_line_and_names_a_corrupt_results_file(tmp_path):
    run = tmp_path / "collect"
    run.mkdir()
    good = {"ledger": {"episodes": 1, "policy_tokens": 5, "prompt_tokens": 9, "env_steps": 1, "seconds": 1.0}}
    (run / "metrics.jsonl").write_text(json.dumps(good) + "\n" + '{"ledger": {"episo')  # a kill mid-write
    with pytest.warns(UserWarning, match="torn"):
        assert load_runs([run])["cost"][0][2] == good
    ev = tmp_path / "evaluate"
    ev.mkdir()
    (ev / "results.json").write_text(json.dumps({"env": "babyai"}))
    with pytest.raises(ValueError, match="results.json lacks tasks, pool"):
        load_runs([ev])


def test_cli_answers_expected_errors_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["report", "--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("agentprm report: error:") and len(err.strip().splitlines()) == 1
    # a bug (here: a KeyError from a broken run folder object) prints its traceback and asks for a report
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text(
        json.dumps(
            dict.fromkeys(("env", "tasks", "pool", "policy", "greedy", "sample", "oracle", "bon", "beam"), {})
        )
    )
    with pytest.raises(SystemExit) as exit_:
        cli_main(["report", "--runs", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" in err and "please report it" in err
    with pytest.raises((IndexError, KeyError, TypeError)):  # --debug re-raises the bug itself
        cli_main(["--debug", "report", "--runs", str(bad), "--out", str(tmp_path / "o")])


def test_a_full_disk_names_the_path_and_keeps_the_last_checkpoint(rollouts, tmp_path, monkeypatch):
    import errno

    from agentprm.cli import expected_error

    args = train_prm.Args(
        data=rollouts,
        model="test",
        run_dir=tmp_path / "p",
        labels="td",
        epochs=2,
        batch_size=2,
        heldout=0.2,
        save_every=2,
        max_prompt_tokens=2048,
    )
    real, saves = torch.save, []

    def disk_fills_up(obj, f, *a, **kw):  # the second checkpoint finds the disk full
        saves.append(f)
        if len(saves) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    with pytest.raises(OSError) as exc:
        train_prm.main(args)
    monkeypatch.setattr(torch, "save", real)
    assert torch.load(tmp_path / "p" / "checkpoint.pt", weights_only=False)["step"] == 2  # the last good one
    message = expected_error(exc.value)
    assert "checkpoint.tmp: No space left on device (free some space" in message


@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_beam_search_ledger_adds_up_after_a_kill(tmp_path, monkeypatch):
    from agentprm.recipes import evaluate
    from tests.test_pipeline import _tiny_sft

    data = tmp_path / "expert.jsonl"
    write_trajectories(data, [run_episode("babyai", t, make_expert("babyai")) for t in range(400, 420)])
    _tiny_sft(data, tmp_path / "sft")
    policy = str(tmp_path / "sft" / "model")
    train_prm.main(
        train_prm.Args(
            data=data,
            model=policy,
            run_dir=tmp_path / "orm",
            labels="orm",
            epochs=1,
            batch_size=8,
            heldout=0.2,
            max_prompt_tokens=512,
        )
    )
    args = evaluate.Args(
        policy=policy,
        reward_models=(f"orm={tmp_path / 'orm'}",),
        tasks="0:3",
        pool=2,
        beams=("2x2",),
        max_rounds=2,
        max_new_tokens=8,
        run_dir=tmp_path / "eval",
        chunk=1,
    )
    real, calls = evaluate.beam_search, []

    def killed_in_the_second_chunk(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(evaluate, "beam_search", killed_in_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main(args)
    monkeypatch.setattr(evaluate, "beam_search", real)
    results = evaluate.main(args)
    assert results.beam["orm"]["2x2"].ledger["episodes"] == 3  # the killed run's chunk counts too


def test_metrics_mirror_to_tensorboard_and_a_resume_hides_the_redone_steps(tmp_path):
    """metrics.jsonl is the record; TensorBoard (installed by the dev extra) gets every numeric
    metric of a stepped record, and a resumed run's rewind hides what the killed run logged after
    its checkpoint in both."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A killed run: steps 1..4 logged, its last checkpoint at step 2 (a separate process, as a real
    # kill leaves the first writer's event file behind).
    code = (
        "from agentprm import rundir\n"
        "for s in range(1, 5):\n"
        f"    rundir.log_metrics({str(tmp_path)!r}, {{'step': s, 'train/loss': 10.0 * s, 'note': 'x'}})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    # TensorBoard reads a run's event files in name order, and a name holds its writer's start time
    # in whole seconds (then the pid): a resume within the same second as the kill could sort first.
    time.sleep(1.1)
    assert rundir.rewind_metrics(tmp_path, "step", 2) == 2
    for s in (3, 4, 5):  # the resumed run redoes 3 and 4 with other numbers
        rundir.log_metrics(tmp_path, {"step": s, "train/loss": float(s), "heldout": {"loss": 0.5}})
    rundir.log_metrics(tmp_path, {"stage": "done"})  # no step: the jsonl only
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("step") for r in lines] == [1, 2, 3, 4, 5, None]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (1, 10.0), (2, 20.0), (3, 3.0), (4, 4.0), (5, 5.0)
    ]  # fmt: skip
    assert [e.step for e in events.Scalars("heldout/loss")] == [3, 4, 5]
    assert "note" not in events.Tags()["scalars"]
