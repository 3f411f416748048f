"""The value model and PRM training: one pass == per-step passes, overfitting, the recipe end to end."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForTokenClassification

from agentprm.experts import make_expert
from agentprm.models.tokenizer import env_tokenizer, train_tokenizer
from agentprm.prm.batch import collate, encode, pad, row_values, step_values
from agentprm.prm.losses import prm_loss
from agentprm.prm.value import build_value_model, token_values
from agentprm.prompts import render_messages, to_text
from agentprm.recipes import train_prm
from agentprm.rollout import run_episode
from agentprm.types import Trajectory, write_trajectories


@pytest.fixture(scope="module")
def trajs():
    out = [run_episode("babyai", t, make_expert("babyai")) for t in (400, 405, 411, 416, 420, 425)]
    # make outcomes differ: a failed copy of each, cut after its first step
    out += [
        Trajectory(**{**t.__dict__, "sample": 1, "steps": t.steps[:1], "reward": 0.0, "success": False})
        for t in out
    ]
    return out


@pytest.fixture(scope="module")
def tok(trajs):
    return env_tokenizer("babyai", trajs, vocab_size=800)  # the embedded models' recipe, smaller


def test_one_pass_equals_per_step_passes(trajs, tok):
    model = build_value_model("test", tok, seed=1).eval()
    traj = max(trajs, key=lambda t: t.num_steps)
    (enc,) = encode("babyai", [traj], tok, budget=None)
    with torch.no_grad():
        (one_pass,), _ = step_values(model, [enc], tok.pad_token_id)
        per_step = []
        for t in range(traj.num_steps):
            msgs = render_messages("babyai", traj.state(t)) + [
                {"role": "assistant", "content": traj.steps[t].response}
            ]
            text = to_text(tok, msgs, add_generation_prompt=False).rstrip("\n")  # ends with a_t's <|im_end|>
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            per_step.append(token_values(model, ids, torch.ones_like(ids))[0, -1])
    assert traj.num_steps >= 3
    assert torch.allclose(one_pass, torch.stack(per_step), atol=1e-5)


def test_row_values_padded_equals_grouped(trajs, tok):
    """One right-padded pass (the CUDA default) and one pass per length (the CPU default) agree."""
    model = build_value_model("test", tok, seed=1).eval()
    rows = [s.ids for e in encode("babyai", trajs, tok, budget=None) for s in e.segments]
    assert len({len(r) for r in rows}) > 1 and len({len(r) for r in rows}) < len(rows)  # mixed and repeated
    with torch.no_grad():
        padded = row_values(model, rows, tok.pad_token_id, pad_together=True)
        grouped = row_values(model, rows, tok.pad_token_id, pad_together=False)
    for r, a, b in zip(rows, padded, grouped, strict=True):
        assert a.shape == b.shape == (len(r),)
        assert torch.allclose(a, b, atol=1e-5)


def test_tiny_model_overfits_one_batch(trajs, tok):
    torch.manual_seed(0)
    model = build_value_model("test", tok, seed=0)
    batch = encode("babyai", trajs[:4], tok, budget=None)  # distinct states (the copies repeat step 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):  # 300, not 200, since the expert's Thoughts restate the goal at every step
        values, _ = step_values(model, batch, tok.pad_token_id)
        v, m = pad(values)
        t, _ = pad([torch.full((e.num_steps,), e.outcome) for e in batch])
        loss, _ = prm_loss(v, t, m, beta=1.0)
        first = first if first is not None else loss.item()
        if loss.item() < 0.01 * first:  # overfit: done (the bound is the same, the time shorter)
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01 * first, (first, loss.item())


def _recipe_args(trajs, tmp_path, **kw) -> train_prm.Args:
    """train-prm on the test preset over `trajs` (written to tmp_path), run dir tmp_path/prm."""
    data = tmp_path / "rollouts.jsonl"
    write_trajectories(data, trajs)
    return train_prm.Args(data=data, model="test", run_dir=tmp_path / "prm", max_prompt_tokens=2048, **kw)


def test_train_prm_recipe_end_to_end(trajs, tmp_path):
    args = _recipe_args(trajs, tmp_path, labels="td", epochs=2, batch_size=4, heldout=0.2, save_every=2)
    summary = train_prm.main(args)
    assert summary["steps"] == summary["total_steps"] > 0
    lines = [json.loads(x) for x in (tmp_path / "prm" / "metrics.jsonl").read_text().splitlines()]
    assert {"train/loss_q", "train/loss_a"} <= set(lines[0])
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path / "prm" / "model")  # loads on its own
    assert loaded.config.num_labels == 1
    split = json.loads((tmp_path / "prm" / "split.json").read_text())
    assert not set(split["train"]) & set(split["heldout"])
    # re-running resumes at the end: no new steps
    assert train_prm.main(args)["steps"] == summary["steps"]


def test_heldout_tasks_of_another_split_are_held_out_exactly(trajs, tmp_path):
    """--heldout-tasks: one held-out set across runs on different data (tasks absent here drop out)."""
    tasks = sorted({t.task for t in trajs})
    given = tmp_path / "split.json"
    given.write_text(json.dumps({"train": [], "heldout": [tasks[-1], 10_000]}))
    args = _recipe_args(trajs, tmp_path, labels="orm", max_steps=1, batch_size=4, heldout_tasks=given)
    train_prm.main(args)
    split = json.loads((tmp_path / "prm" / "split.json").read_text())
    assert split == {"train": tasks[:-1], "heldout": [tasks[-1]]}


def test_heldout_curve_and_best_checkpoint(trajs, tmp_path):
    """--eval-every logs the held-out loss; --keep best saves the weights of its minimum, which a
    separate evaluation of the saved model reproduces."""
    args = _recipe_args(
        trajs,
        tmp_path,
        labels="pvm",
        epochs=6,
        batch_size=2,
        heldout=0.34,
        eval_every=2,
        keep="best",
        lr=3e-3,
    )
    summary = train_prm.main(args)
    lines = [json.loads(x) for x in (tmp_path / "prm" / "metrics.jsonl").read_text().splitlines()]
    curve = {x["step"]: x["heldout/loss"] for x in lines if "heldout/loss" in x}
    assert sorted(curve) == list(range(2, summary["steps"] + 1, 2))
    best = min(curve, key=curve.get)
    assert summary["selected_step"] == summary["best_step"] == best
    assert summary["heldout"]["heldout/loss_q"] == pytest.approx(curve[best], abs=1e-5)  # pvm: beta 0
    if best != summary["steps"]:  # the saved weights are not the last ones
        assert curve[summary["steps"]] != pytest.approx(curve[best], abs=1e-6)
    with pytest.raises(ValueError, match="--eval-every"):
        train_prm.Args(keep="best")


def test_mc_soft_labels_stay_floats(trajs, tmp_path):
    traj = trajs[0]
    mc = tmp_path / "mc.jsonl"
    outcomes = [[0.0, 0.9, 0.0]] * traj.num_steps  # soft estimate 0.3 per step
    mc.write_text(json.dumps({"task": traj.task, "sample": traj.sample, "outcomes": outcomes}) + "\n")
    table = train_prm.load_mc(mc, hard=False)
    args = train_prm.Args(labels="mc")
    (enc,) = encode("babyai", [traj], _tok(trajs), budget=None)
    ((targets, _),) = train_prm.targets_for(args, [enc], [torch.zeros(traj.num_steps)], [traj], table)
    assert targets.dtype == torch.float32 and torch.allclose(targets, torch.full((traj.num_steps,), 0.3))


def _tok(trajs):
    return train_tokenizer(
        [x for t in trajs for s in t.steps for x in (s.response, s.observation)], vocab_size=600
    )


def test_collate_pads_right(tok, trajs):
    # Hand-made rows: each row's tokens start at column 0, pad ids and attention zeros fill the end.
    ids, att = collate([[5, 6, 7], [8], [9, 10]], pad_id=99, device="cpu")
    assert ids.shape == att.shape == (3, 3) and ids.dtype == att.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 99, 99], [9, 10, 99]]
    assert att.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    # Real segments of different lengths: the same layout, row by row.
    rows = [s.ids for e in encode("babyai", trajs[:2], tok, budget=None) for s in e.segments]
    assert len({len(r) for r in rows}) == 2  # the shorter row really is padded
    width = max(len(r) for r in rows)
    ids, att = collate(rows, tok.pad_token_id, "cpu")
    assert ids.shape == att.shape == (len(rows), width)
    for b, r in enumerate(rows):
        assert ids[b].tolist() == r + [tok.pad_token_id] * (width - len(r))
        assert att[b].tolist() == [1] * len(r) + [0] * (width - len(r))


def _ranks(xs: list[float]) -> list[float]:
    """Ranks 0..n-1, tied values sharing their mean rank (what Spearman's rho is defined on)."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and xs[order[end + 1]] == xs[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            out[i] = (start + end) / 2
        start = end + 1
    return out


def _spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho, written out: the Pearson correlation of the two rank lists."""
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var_a, var_b = sum((x - ma) ** 2 for x in ra), sum((y - mb) ** 2 for y in rb)
    return cov / (var_a * var_b) ** 0.5


def test_spearman_helper_on_known_cases():
    assert _spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert _spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert _ranks([3.0, 1.0, 3.0, 2.0]) == [2.5, 0.0, 2.5, 1.0]
    assert _spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)


def _mc_label(reward: float, num_steps: int, k: int) -> float:
    """The soft MC estimate written for step k of a trajectory: progress times outcome."""
    return (k + 1) / num_steps * reward


def _value(reward: float, num_steps: int, k: int) -> float:
    """The value M_k the held-out scoring is made to return: outcome plus a step-dependent wobble, so that
    it agrees with _mc_label only in part (rho strictly between 0 and 1)."""
    return reward + ((7 * k + num_steps) % 5) / 10


def test_heldout_spearman_against_mc_estimates(trajs, tmp_path, monkeypatch):
    """The held-out Spearman pairs each state's value M_k with the MC estimate of the SAME state.

    The MC file gives every state a distinct-ish label; the held-out scoring (spied on) returns known
    values built from the same (outcome, length, step), so the expected rho is computed here, directly,
    from the records: a sign flip, values paired with another trajectory's or another step's label, or
    labels correlated with themselves all give a different number."""
    data, mc = tmp_path / "rollouts.jsonl", tmp_path / "mc.jsonl"
    write_trajectories(data, trajs)
    lines = [
        json.dumps(
            {
                "task": t.task,
                "sample": t.sample,
                "outcomes": [[_mc_label(t.reward, t.num_steps, k)] for k in range(t.num_steps)],
            }
        )
        for t in trajs
    ]
    mc.write_text("\n".join(lines) + "\n")
    real, calls = train_prm.score_encoded, []

    def scripted(model, enc, num_trajs, pad_id, **kw):
        values = real(model, enc, num_trajs, pad_id, **kw)
        assert all(values[e.index].shape == (e.num_steps,) for e in enc)  # the model really scored them
        calls.append(num_trajs)
        for e in enc:
            values[e.index] = torch.tensor([_value(e.outcome, e.num_steps, k) for k in range(e.num_steps)])
        return values

    monkeypatch.setattr(train_prm, "score_encoded", scripted)
    args = train_prm.Args(
        data=data,
        model="test",
        run_dir=tmp_path / "prm",
        labels="td",
        mc_labels=mc,
        epochs=1,
        batch_size=4,
        heldout=0.5,
        max_prompt_tokens=2048,
    )
    diag = train_prm.main(args)["heldout"]
    held_tasks = set(json.loads((tmp_path / "prm" / "split.json").read_text())["heldout"])
    held = [t for t in trajs if t.task in held_tasks]
    assert len(held_tasks) == 3 and calls == [len(held)]  # one held-out scoring, of the held-out records
    states = [(t.reward, t.num_steps, k) for t in held for k in range(t.num_steps)]
    expected = _spearman([_value(*s) for s in states], [_mc_label(*s) for s in states])
    assert 0.2 < expected < 0.95  # far from 0 (a sign flip shows) and from 1 (labels against labels show)
    assert diag["heldout/mc_states"] == len(states)
    assert diag["heldout/mc_spearman"] == pytest.approx(expected, abs=1e-9)
