"""export-labels: the TRL stepwise dataset holds train-prm's targets, and TRL's tokenization of its
rows gives train-prm's token sequences with each label on the PRM's readout token."""

from __future__ import annotations

import json
import math
from itertools import chain

import pytest
import torch

from agentprm import rundir
from agentprm.experts import make_expert
from agentprm.models.tokenizer import env_tokenizer
from agentprm.prm.batch import encode, step_values
from agentprm.prm.value import build_value_model, load_value_model
from agentprm.prompts import render_messages, to_text, training_segments
from agentprm.recipes import export_labels, train_prm
from agentprm.rollout import run_episode
from agentprm.types import Trajectory, write_trajectories

datasets = pytest.importorskip("datasets")

BUDGET = 400  # small enough that the longer trajectories render as 2-3 training sequences


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Trajectories (expert successes, one expert failure, a failed one-step copy of each), a tiny
    value model saved as an HF folder, and an mc-label file for the sample-0 seeds."""
    root = tmp_path_factory.mktemp("export")
    trajs = [run_episode("babyai", t, make_expert("babyai")) for t in (400, 405, 411, 416, 420, 425)]
    trajs += [
        Trajectory(**{**t.__dict__, "sample": 1, "steps": t.steps[:1], "reward": 0.0, "success": False})
        for t in trajs
    ]
    write_trajectories(root / "trajectories.jsonl", trajs)
    tok = env_tokenizer("babyai", trajs)
    rundir.save_model(build_value_model("test", tok, seed=3), tok, root / "prm")
    # mc-label records: outcomes of rollouts after each step, the seed's own outcome last
    with open(root / "mc_labels.jsonl", "w") as f:
        for t in trajs:
            if t.sample == 0:
                outcomes = [[0.0, 1.0 if k % 2 else 0.0] for k in range(t.num_steps - 1)] + [[t.reward]]
                f.write(json.dumps({"task": t.task, "sample": 0, "outcomes": outcomes}) + "\n")
    assert max(len(e.segments) for e in encode("babyai", trajs, tok, BUDGET)) >= 2
    return root, trajs


def _export(root, labels: str, **kw):
    """Export `labels` of the fixture's data (budget BUDGET unless kw says otherwise) and load it."""
    mc = root / "mc_labels.jsonl" if labels == "mc" else None
    kw = {"max_prompt_tokens": BUDGET, "out": root / f"out-{labels}", "mc_labels": mc, **kw}
    args = export_labels.Args(data=root / "trajectories.jsonl", labels=labels, model=str(root / "prm"), **kw)
    export_labels.main(args)
    return datasets.load_from_disk(str(args.out))


def _train_prm_targets(root, trajs, labels: str) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
    """(task, sample) -> (Qhat, mask) as train-prm's training loop builds them: its functions, a
    training-mode pass and target_values (not the exporter's eval-mode score_encoded)."""
    args = train_prm.Args(
        data=root / "trajectories.jsonl",
        labels=labels,
        mc_labels=root / "mc_labels.jsonl" if labels == "mc" else None,
        model=str(root / "prm"),
        max_prompt_tokens=BUDGET,
    )
    mc_table = train_prm.load_mc(args.mc_labels, args.mc_hard) if labels == "mc" else None
    if mc_table is not None:
        trajs = [t for t in trajs if (t.task, t.sample) in mc_table]
    model, tok = load_value_model(args.model, device="cpu")
    enc = encode("babyai", trajs, tok, args.max_prompt_tokens)
    model.train()
    values, q_prev = step_values(model, enc, tok.pad_token_id)
    tv, tp = train_prm.target_values(model, enc, tok.pad_token_id, values, q_prev)
    tgt = train_prm.targets_for(args, enc, tv, trajs, mc_table, tp)
    return {(trajs[e.index].task, trajs[e.index].sample): (t, m) for e, (t, m) in zip(enc, tgt, strict=True)}


def _trl_tokenize(row, tok, sep: str) -> tuple[list[int], list[int]]:
    """TRL's PRMTrainer.tokenize_row (trl <= 1.13): prompt ids, then each completion's ids followed by
    the separator's, the step's label on the separator's last token (-100 elsewhere)."""
    completions = [
        tok(c, add_special_tokens=False)["input_ids"] + tok.encode(sep, add_special_tokens=False)
        for c in row["completions"]
    ]
    labels = [[-100] * (len(c) - 1) + [int(x)] for c, x in zip(completions, row["labels"], strict=True)]
    prompt = tok(row["prompt"], add_special_tokens=False)["input_ids"]
    if tok.bos_token_id is not None:
        prompt = [tok.bos_token_id] + prompt
    return prompt + list(chain(*completions)), [-100] * len(prompt) + list(chain(*labels))


@pytest.mark.parametrize("labels", ["orm", "pvm", "mc", "td"])
def test_rows_hold_train_prm_targets_and_sequences(setup, labels):
    root, trajs = setup
    ds = _export(root, labels, threshold=0.5)
    assert {"prompt", "completions", "labels", "targets", "steps", "env", "task", "sample", "outcome"} <= set(
        ds.column_names
    )
    expected = _train_prm_targets(root, trajs, labels)
    tok = load_value_model(root / "prm", device="cpu")[1]
    sep = tok.eos_token
    by_key = {t.key[1:]: t for t in trajs}
    covered = {key: [] for key in expected}
    for row in ds:
        key = (row["task"], row["sample"])
        traj, (target, mask) = by_key[key], expected[key]
        # 1. targets: train-prm's, for exactly the labelled steps; labels: the thresholded targets
        assert all(mask[s] == 1 for s in row["steps"])
        assert torch.allclose(torch.tensor(row["targets"]), target[row["steps"]], atol=1e-6)
        assert row["labels"] == [x >= 0.5 for x in row["targets"]]
        assert row["outcome"] == pytest.approx(traj.reward) and row["env"] == "babyai"
        covered[key] += row["steps"]
        # 2. TRL's tokenization of the row is train-prm's training sequence up to the last labelled
        # response's end-of-turn token, each label sitting on that step's readout token
        (seg,) = [s for s in training_segments("babyai", traj, tok, BUDGET) if row["steps"][-1] in s.steps]
        ids, token_labels = _trl_tokenize(row, tok, sep)
        last = seg.step_ends[seg.steps.index(row["steps"][-1])]
        assert ids == seg.ids[: last + 1]
        readouts = [seg.step_ends[seg.steps.index(s)] for s in row["steps"]]
        assert [k for k, x in enumerate(token_labels) if x != -100] == readouts
        assert [token_labels[k] for k in readouts] == [int(x) for x in row["labels"]]
    # every labelled step of every trajectory is exported exactly once, in order
    assert covered == {k: [s for s in range(len(m)) if m[s] == 1] for k, (_, m) in expected.items()}


def test_text_reproduces_the_rendered_trajectory(setup):
    """Without a budget a trajectory is one row: prompt + completions joined by eos is its text."""
    root, trajs = setup
    ds = _export(root, "pvm", max_prompt_tokens=None, out=root / "out-whole")
    tok = load_value_model(root / "prm", device="cpu")[1]
    assert len(ds) == len(trajs)
    for row, traj in zip(ds, trajs, strict=True):
        last = traj.num_steps - 1
        msgs = render_messages("babyai", traj.state(last)) + [
            {"role": "assistant", "content": traj.steps[-1].response}
        ]
        text = to_text(tok, msgs, add_generation_prompt=False)
        assert row["prompt"] == to_text(
            tok, render_messages("babyai", traj.state(0)), add_generation_prompt=True
        )
        assert row["completions"][0] == traj.steps[0].response
        assert text == row["prompt"] + tok.eos_token.join(row["completions"]) + tok.eos_token + "\n"
        assert row["steps"] == list(range(traj.num_steps))


def test_real_trl_reads_rows_like_train_prm(setup, tmp_path):
    """The same check through TRL's own tokenize_row, and two PRMTrainer steps on the dataset, where
    the installed TRL still has PRMTrainer (trl <= 1.13)."""
    prm = pytest.importorskip("trl.experimental.prm", reason="PRMTrainer is in trl <= 1.13 only")
    from transformers import AutoModelForTokenClassification

    root, _ = setup
    ds = _export(root, "td")
    tok = load_value_model(root / "prm", device="cpu")[1]
    for row in ds:
        got = prm.PRMTrainer.tokenize_row(row, tok, tok.eos_token, None, None, False, False)
        assert (got["input_ids"], got["labels"]) == _trl_tokenize(row, tok, tok.eos_token)
    model = AutoModelForTokenClassification.from_pretrained(
        root / "prm", num_labels=2, ignore_mismatched_sizes=True
    )
    config = prm.PRMConfig(
        output_dir=str(tmp_path / "trl"),
        step_separator=tok.eos_token,
        max_steps=2,
        per_device_train_batch_size=4,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
    )
    result = prm.PRMTrainer(model=model, args=config, processing_class=tok, train_dataset=ds).train()
    assert result.global_step == 2 and math.isfinite(result.training_loss)


def test_threshold_binarises_targets(setup):
    root, _ = setup
    ds = _export(root, "td", threshold=0.9, out=root / "out-0.9")
    targets = [x for r in ds for x in r["targets"]]
    assert [x for r in ds for x in r["labels"]] == [x >= 0.9 for x in targets]


def test_errors_say_what_to_change(setup, tmp_path):
    root, _ = setup
    with pytest.raises(ValueError, match="--mc-labels"):
        export_labels.Args(labels="mc")
    with pytest.raises(ValueError, match="not an HF model folder"):
        export_labels.main(
            export_labels.Args(data=root / "trajectories.jsonl", model="test", out=tmp_path / "x")
        )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a dataset folder"):
        export_labels.main(
            export_labels.Args(
                data=root / "trajectories.jsonl", model=str(root / "prm"), out=tmp_path / "taken"
            )
        )
    bad = tmp_path / "mc_labels.jsonl"  # one step short of task 411's seed trajectory
    bad.write_text(json.dumps({"task": 411, "sample": 0, "outcomes": [[1.0]]}) + "\n")
    with pytest.raises(ValueError, match="made from other trajectories"):
        _export(root, "mc", mc_labels=bad, out=tmp_path / "y")
