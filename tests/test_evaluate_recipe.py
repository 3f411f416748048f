"""`agentprm evaluate` and `agentprm report` end to end on the test preset (tiny sizes, real models)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agentprm import report, rundir
from agentprm.evaluation import Results, oracle_at_n
from agentprm.recipes import evaluate, train_prm
from agentprm.types import read_trajectories


@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_evaluate_then_report(expert_data, tiny_policy, tmp_path):
    policy = tiny_policy
    rms = []
    for name, labels, beta in (("orm", "orm", 0.0), ("agentprm", "td", 1.0), ("no-la", "td", 0.0)):
        train_prm.main(
            train_prm.Args(
                data=expert_data,
                model=policy,
                run_dir=tmp_path / name,
                labels=labels,
                beta=beta,
                epochs=1,
                batch_size=8,
                heldout=0.2,
                max_prompt_tokens=512,
            )
        )
        rms.append(f"{name}={tmp_path / name}")
    args = evaluate.Args(
        policy=policy,
        reward_models=tuple(rms),
        tasks="0:3",
        pool=4,
        beams=("2x2",),
        max_rounds=2,
        max_new_tokens=8,
        run_dir=tmp_path / "eval",
        chunk=2,
    )
    results = evaluate.main(args)
    pool = read_trajectories(tmp_path / "eval" / "pool.jsonl")
    assert len(pool) == 12 and results.tasks == 3
    # N = 1 of any reward model is the pool mean; the oracle bounds every curve.
    mean_reward = sum(t.reward for t in pool) / len(pool)
    for name in ("orm", "agentprm", "no-la"):
        curve = results.bon[name]["last"]
        assert abs(curve[1].reward - mean_reward) < 1e-9
        for n in (1, 2, 4):
            assert curve[n].reward <= results.oracle[n].reward + 1e-9
        beam = results.beam[name]["2x2"]
        assert beam.n == 3 and beam.ledger["prm_tokens"] > 0 and beam.ledger["policy_tokens"] > 0
    by_task = {}
    for t in pool:
        by_task.setdefault(t.task, []).append(t.success)
    expected = sum(oracle_at_n([float(s) for s in v], 4) for v in by_task.values()) / 3
    assert abs(results.oracle[4].success - expected) < 1e-9
    assert results.reward_models["no-la"].beta == 0.0

    # Re-running replays nothing: every trajectory file is complete.
    files = [p for p in (tmp_path / "eval").glob("*.jsonl") if p.name != "metrics.jsonl"]
    sizes = {p.name: p.stat().st_size for p in files}
    assert len(files) == 2 + 3  # greedy, pool and one beam file per reward model
    evaluate.main(args)
    assert sizes == {p.name: p.stat().st_size for p in files}
    again = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert again["ledgers"]["pool"] == results.ledgers["pool"] and again["ledgers"]["pool"]["env_steps"] > 0

    path = report.write([tmp_path / "eval", tmp_path / "agentprm", tmp_path / "orm"], tmp_path / "report")
    text = path.read_text()
    assert "| greedy (SFT) |" in text and "agentprm beam @2x2" in text and "oracle pass@4" in text
    assert "Compute efficiency" in text and "held-out diagnostics" in text
    # which env mode produced the numbers, and what they compare with (issue 14)
    assert "Environment `babyai`: corrected BabyAI" in text and "use babyai-agentgym" in text
    assert report.summary_table(Results.from_json(again))[0].startswith(
        "environment babyai: corrected BabyAI"
    )
    assert (tmp_path / "report" / "figure3_babyai.png").stat().st_size > 1000
    assert (tmp_path / "report" / "figure4_babyai.png").exists()  # two td models: the ablation figure
    # the typed results read back to the very bytes evaluate wrote (report reads what was written)
    on_disk = (tmp_path / "eval" / "results.json").read_text()
    assert json.dumps(Results.load(tmp_path / "eval" / "results.json").to_json(), indent=1) == on_disk

    # Other weights under a reward model's name: its scores and beam search are recomputed.
    train_prm.main(
        train_prm.Args(
            data=expert_data,
            model=policy,
            run_dir=tmp_path / "orm2",
            labels="orm",
            epochs=1,
            batch_size=8,
            heldout=0.2,
            max_prompt_tokens=512,
            seed=1,
        )
    )
    beam_file = tmp_path / "eval" / "beam_orm_2x2.jsonl"
    before = beam_file.stat().st_mtime_ns
    evaluate.main(dataclasses.replace(args, reward_models=(f"orm={tmp_path / 'orm2'}",)))
    assert beam_file.stat().st_mtime_ns != before


def test_a_pool_killed_mid_way_keeps_its_finished_episodes_and_resumes_to_the_same_results(
    tiny_policy, tmp_path, monkeypatch
):
    """The pool streams each finished episode to pool.jsonl: a kill after 5 of 12 keeps them, the
    resume plays the tasks still missing samples, and results.json (ledgers included) and the pool
    equal an uninterrupted run's."""

    def args(name):
        return evaluate.Args(
            policy=tiny_policy, tasks="0:3", pool=4, beams=(), max_rounds=2, max_new_tokens=8,
            run_dir=tmp_path / name,
        )  # fmt: skip

    whole = evaluate.main(args("whole"))
    real = evaluate.sample_pool
    played = []

    def killed_after_5(*a, on_done, **kw):
        def counting(traj):
            on_done(traj)
            played.append(traj.key)
            if len(played) == 5:
                raise KeyboardInterrupt

        return real(*a, on_done=counting, **kw)

    monkeypatch.setattr(evaluate, "sample_pool", killed_after_5)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main(args("resumed"))
    assert len(read_trajectories(tmp_path / "resumed" / "pool.jsonl")) == 5
    monkeypatch.setattr(evaluate, "sample_pool", real)
    for f in rundir._LOCKS.values():  # a new process would hold no lock
        f.close()
    rundir._LOCKS.clear()
    resumed = evaluate.main(args("resumed"))
    assert resumed.to_json() == whole.to_json() and resumed.ledgers["pool"]["episodes"] == 12

    def pool(name):
        return sorted(
            (t.key, t.reward, [s.response for s in t.steps])
            for t in read_trajectories(tmp_path / name / "pool.jsonl")
        )

    assert pool("resumed") == pool("whole")
