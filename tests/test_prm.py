"""The value model and PRM training: one pass == per-step passes, overfitting, the recipe end to end."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForTokenClassification

from agentprm.experts import make_expert
from agentprm.losses import prm_loss
from agentprm.models.tokenizer import train_tokenizer
from agentprm.models.value import build_value_model, token_values
from agentprm.prm_batch import collate, encode, pad, row_values, step_values
from agentprm.prompts import OK_REPLY, ROLE_WORDS, instruction, render_messages, to_text
from agentprm.recipes import train_prm
from agentprm.rollout import run_episode
from agentprm.types import Trajectory, write_trajectories


@pytest.fixture(scope="module")
def trajs():
    out = [run_episode("babyai", t, make_expert("babyai")) for t in (400, 405, 411, 416, 420, 425)]
    # make outcomes differ: a failed copy of each, cut after its first step
    out += [Trajectory(**{**t.__dict__, "sample": 1, "steps": t.steps[:1], "reward": 0.0, "success": False})
            for t in out]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def tok(trajs):
    texts = [instruction("babyai")] + [x for t in trajs for s in t.steps for x in (s.response, s.observation)]
    return train_tokenizer(texts + [t.initial_observation for t in trajs] + ROLE_WORDS, vocab_size=800,
                           whole=[instruction("babyai"), OK_REPLY])  # fmt: skip


def test_one_pass_equals_per_step_passes(trajs, tok):
    model = build_value_model("test", tok, seed=1).eval()
    traj = max(trajs, key=lambda t: t.num_steps)
    (enc,) = encode("babyai", [traj], tok, budget=None)
    with torch.no_grad():
        (one_pass,), _ = step_values(model, [enc], tok.pad_token_id)
        per_step = []
        r, o = [s.response for s in traj.steps], [s.observation for s in traj.steps]
        for t in range(traj.num_steps):
            msgs = render_messages("babyai", traj.initial_observation, r[:t], o[:t]) + [
                {"role": "assistant", "content": r[t]}
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
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01 * first, (first, loss.item())


def test_train_prm_recipe_end_to_end(trajs, tmp_path):
    data = tmp_path / "rollouts.jsonl"
    write_trajectories(data, trajs)
    args = train_prm.Args(data=data, model="test", run_dir=tmp_path / "prm", labels="td", epochs=2, batch_size=4,
                          heldout=0.2, save_every=2, max_prompt_tokens=2048)  # fmt: skip
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


def test_heldout_curve_and_best_checkpoint(trajs, tmp_path):
    """--eval-every logs the held-out loss; --keep best saves the weights of its minimum, which a
    separate evaluation of the saved model reproduces."""
    data = tmp_path / "rollouts.jsonl"
    write_trajectories(data, trajs)
    args = train_prm.Args(data=data, model="test", run_dir=tmp_path / "prm", labels="pvm", epochs=6, batch_size=2,
                          heldout=0.34, eval_every=2, keep="best", lr=3e-3, max_prompt_tokens=2048)  # fmt: skip
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
    enc = encode("babyai", trajs[:2], tok, budget=None)
    ids, att = collate([s.ids for e in enc for s in e.segments], tok.pad_token_id, "cpu")
    assert att.sum(dim=1).tolist() == [len(s.ids) for e in enc for s in e.segments]


def test_heldout_spearman_against_mc_estimates(trajs, tmp_path):
    data, mc = tmp_path / "rollouts.jsonl", tmp_path / "mc.jsonl"
    write_trajectories(data, trajs)
    lines = [json.dumps({"task": t.task, "sample": t.sample, "outcomes": [[t.reward, 0.0]] * t.num_steps})
             for t in trajs]  # fmt: skip
    mc.write_text("\n".join(lines) + "\n")
    args = train_prm.Args(data=data, model="test", run_dir=tmp_path / "prm", labels="td", mc_labels=mc, epochs=1,
                          batch_size=4, heldout=0.5, max_prompt_tokens=2048)  # fmt: skip
    diag = train_prm.main(args)["heldout"]
    assert diag["heldout/mc_states"] > 0 and -1.0 <= diag["heldout/mc_spearman"] <= 1.0
