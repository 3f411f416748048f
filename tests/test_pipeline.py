"""Renderer, tokenizer, presets, HF policy, batched resumable collection and SFT (test preset)."""

from __future__ import annotations

import json

import pytest
import torch

from agentprm.experts import make_expert
from agentprm.models.presets import build_model
from agentprm.models.tokenizer import train_tokenizer
from agentprm.policies.hf import HFPolicy
from agentprm.policy import SamplingParams
from agentprm.prompts import (
    OK_REPLY,
    fit_drop,
    fit_messages,
    instruction,
    render_messages,
    to_text,
    training_segments,
)
from agentprm.recipes import collect as collect_recipe
from agentprm.recipes import sft as sft_recipe
from agentprm.rollout import collect, run_episode
from agentprm.types import State, read_trajectories

from .test_openai_server import start_stub, stop


def test_render_golden():
    messages = render_messages("babyai", State("o0", ("a0", "a1"), ("o1", "o2")))
    assert messages == [
        {"role": "user", "content": instruction("babyai")},
        {"role": "assistant", "content": OK_REPLY},
        {"role": "user", "content": "o0"},
        {"role": "assistant", "content": "a0"},
        {"role": "user", "content": "o1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "o2"},
    ]


def test_left_truncation_keeps_instruction_goal_and_current_observation():
    count = lambda messages: sum(len(m["content"]) for m in messages)  # noqa: E731  (chars as tokens)
    responses, observations = ["a" * 10] * 5, [f"o{i}" * 5 for i in range(1, 6)]
    base = count(render_messages("babyai", State("GOAL")))
    messages = fit_messages(
        "babyai", State("GOAL", tuple(responses), tuple(observations)), count, budget=base + 25
    )
    assert messages[0]["content"] == instruction("babyai") and messages[2]["content"] == "GOAL"
    assert messages[-1]["content"] == observations[-1]
    assert count(messages) <= base + 25
    assert (
        fit_drop("babyai", State("GOAL", tuple(responses), tuple(observations)), count, budget=base + 25) == 4
    )
    assert fit_drop("babyai", State("GOAL", tuple(responses), tuple(observations)), count, budget=None) == 0
    # even an impossible budget keeps the last turn
    assert (
        fit_messages("babyai", State("GOAL", tuple(responses), tuple(observations)), count, budget=1)[-1][
            "content"
        ]
        == "o5" * 5
    )


def test_chat_template_golden(tokenizer):
    text = to_text(tokenizer, [{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_deterministic_and_prefix_property(expert_data, tokenizer):
    texts = [instruction("babyai")]
    for t in read_trajectories(expert_data):
        texts += [t.initial_observation] + [x for s in t.steps for x in (s.response, s.observation)]
    again = train_tokenizer(texts, vocab_size=1024)
    assert again.get_vocab() == tokenizer.get_vocab()
    traj = max(read_trajectories(expert_data), key=lambda t: t.num_steps)
    a = tokenizer(to_text(tokenizer, render_messages("babyai", traj.state(2))))["input_ids"]
    b = tokenizer(to_text(tokenizer, render_messages("babyai", traj.state(3))))["input_ids"]
    assert b[: len(a)] == a


@pytest.mark.parametrize("budget", [None, 900])
def test_training_segments_mask_exactly_the_responses(expert_data, tokenizer, budget):
    traj = max(read_trajectories(expert_data), key=lambda t: t.num_steps)
    segments = training_segments("babyai", traj, tokenizer, budget)
    trained = []
    for seg in segments:
        ids, mask = seg.ids, seg.mask
        assert len(ids) == len(mask)
        assert all(ids[k] == tokenizer.eos_token_id and mask[k] == 1 for k in seg.step_ends)
        assert seg.state_end == -1 or tokenizer.decode(ids[: seg.state_end + 1]).endswith(
            traj.initial_observation + "<|im_end|>"
        )
        trained.append(tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]))
    want = "".join(s.response + "<|im_end|>" for s in traj.steps)
    assert "".join(trained) == want
    if budget is None:
        assert len(segments) == 1
    else:  # every segment is exactly what the policy sees at its last step, plus that response
        for mask in (seg.mask for seg in segments):
            end = len(mask) - mask[::-1].index(1)  # just after the last trained token
            start = end - mask[:end][::-1].index(0)  # first token of the last response
            assert start <= budget
        assert len(segments) > 1


def test_rejected_responses_are_never_trained(tokenizer):
    from agentprm.envs import rejected

    traj = next(
        t
        for t in (run_episode("babyai", k, make_expert("babyai", mistakes=0.5)) for k in range(400, 440))
        if any(rejected("babyai", s.observation) for s in t.steps)
    )
    (seg,) = training_segments("babyai", traj, tokenizer, None)
    wrong = [s.response for s in traj.steps if rejected("babyai", s.observation)]
    never = [i for i, m in zip(seg.ids, seg.mask, strict=True) if m == -1]
    assert tokenizer.decode(never) == "".join(w + "<|im_end|>" for w in wrong)
    # neither the response loss nor the prompt loss depends on the predictions of those tokens
    ids = torch.tensor([seg.ids])
    mask = torch.tensor([seg.mask])
    logits = torch.randn(1, len(seg.ids), len(tokenizer))
    before = [x.item() for x in sft_recipe.sft_loss(logits, ids, torch.ones_like(ids), mask, 1.0)]
    at = (mask[0, 1:] == -1).nonzero().flatten()  # logits at t predict token t + 1
    logits[0, at] += 5 * torch.randn(len(at), len(tokenizer))
    after = [x.item() for x in sft_recipe.sft_loss(logits, ids, torch.ones_like(ids), mask, 1.0)]
    assert after == pytest.approx(before, abs=1e-6)


def test_preset_deterministic_and_hf_round_trip(tokenizer, tmp_path):
    a, b = build_model("test", tokenizer, seed=3), build_model("test", tokenizer, seed=3)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    a.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    from agentprm.models.loading import load_policy_model

    model, tok = load_policy_model(tmp_path, device="cpu")
    text = "Thought:\nMy goal is to go to the red ball.\n\nAction:\ngo to red ball 1"
    assert tok(text)["input_ids"] == tokenizer(text)["input_ids"]  # not re-split by Qwen2Tokenizer
    assert to_text(tok, [{"role": "user", "content": "x"}]) == to_text(
        tokenizer, [{"role": "user", "content": "x"}]
    )
    ids = torch.tensor([tokenizer("Action: turn left")["input_ids"]])
    assert torch.allclose(model(ids).logits, a(ids).logits, atol=1e-6)
    assert tok.get_vocab() == tokenizer.get_vocab()


def test_hf_policy_generates_n_per_state(tokenizer):
    policy = HFPolicy(build_model("test", tokenizer), tokenizer, batch_size=2)
    states = [render_messages("babyai", State(f"Your goal: go to the red ball {i}")) for i in range(3)]
    outs = policy.generate(states, SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=0))
    assert [len(o) for o in outs] == [2, 2, 2]
    assert all(1 <= g.completion_tokens <= 8 and g.prompt_tokens > 0 for o in outs for g in o)
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=8)
    assert policy.generate(states, greedy) == policy.generate(states, greedy)


def test_collect_batches_rounds_and_resumes(tokenizer, tmp_path):
    policy = HFPolicy(build_model("test", tokenizer), tokenizer, batch_size=16, max_prompt_tokens=300)
    calls = []
    generate = policy.generate
    policy.generate = lambda states, params, seeds=None: calls.append(len(states)) or generate(states, params)
    done = []
    ledger = collect(
        "babyai",
        [(t, s) for t in range(3) for s in range(2)],
        policy,
        SamplingParams(temperature=1.0, max_new_tokens=6, seed=0),
        on_done=done.append,
        max_rounds=3,
        max_active=8,
    )
    assert len(done) == 6 and calls == [6, 6, 6]  # one generate call per round for all episodes
    assert ledger.env_steps == 18 == sum(t.num_steps for t in done)
    assert ledger.policy_tokens == sum(t.response_tokens for t in done)


def _tiny_sft(expert_data, run_dir, **kw):
    args = sft_recipe.Args(
        data=expert_data,
        model="test",
        run_dir=run_dir,
        epochs=1,
        batch_size=4,
        max_prompt_tokens=512,
        vocab_size=1024,
        **{"save_every": 2, **kw},
    )
    return sft_recipe.main(args)


def test_sft_trains_saves_and_resumes(expert_data, tmp_path):
    first = _tiny_sft(expert_data, tmp_path / "sft")
    assert (tmp_path / "sft" / "model" / "config.json").exists()
    lines = [json.loads(x) for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 10 and "train/loss" in lines[0]
    # The loss falls: the run logs every 10th step and the last (10, 20, 28 here; seed 0, deterministic
    # on CPU); each later loss is below the first, the last one clearly (0.33 lower when written).
    steps, losses = zip(*[(x["step"], x["train/loss"]) for x in lines if "train/loss" in x], strict=True)
    assert steps == (10, 20, 28) and steps[-1] == first["total_steps"]
    assert max(losses[1:]) < losses[0] and losses[-1] < losses[0] - 0.15, losses
    again = _tiny_sft(expert_data, tmp_path / "sft")  # resumes at the end: no new steps
    assert again["steps"] == first["steps"] == first["total_steps"]


def test_sigusr1_asks_sft_for_a_checkpoint_and_it_goes_on(expert_data, tmp_path, monkeypatch, capsys):
    """kill -USR1 (a session or a SLURM job about to end) after step 10 of a run that checkpoints
    every 100 steps: step 10 is saved, the run is not killed, and the checkpoint is what a kill
    after step 20 leaves to resume from (resuming is exact: the test below)."""
    import os
    import signal
    import threading

    from agentprm import rundir

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers live in the main thread only")
    log = rundir.log_metrics

    def signal_then_kill(run, metrics):
        log(run, metrics)
        if metrics.get("step") == 10:
            os.kill(os.getpid(), signal.SIGUSR1)
        if metrics.get("step") == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "log_metrics", signal_then_kill)
    with pytest.raises(KeyboardInterrupt):
        _tiny_sft(expert_data, tmp_path / "sft", save_every=100)
    assert "sft: checkpoint at step 10/28 (asked by SIGUSR1)" in capsys.readouterr().out
    assert torch.load(tmp_path / "sft" / "checkpoint.pt", weights_only=False)["step"] == 10


@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_killed_sft_resumes_to_the_same_weights_and_log(expert_data, tmp_path, monkeypatch):
    """A kill after step 20 (last checkpoint: step 18) and a resume give the weights and the metrics
    steps of an uninterrupted run: step 20's record from the killed run is rewound, not doubled."""
    from agentprm import jsonl, rundir

    _tiny_sft(expert_data, tmp_path / "whole")
    log = rundir.log_metrics

    def crash_at_step_20(run, metrics):
        log(run, metrics)
        if metrics.get("step") == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "log_metrics", crash_at_step_20)
    with pytest.raises(KeyboardInterrupt):
        _tiny_sft(expert_data, tmp_path / "resumed")
    monkeypatch.setattr(rundir, "log_metrics", log)
    for f in rundir._LOCKS.values():  # a new process would hold no lock
        f.close()
    rundir._LOCKS.clear()
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["step"] == 18
    _tiny_sft(expert_data, tmp_path / "resumed")
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["model"]
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)

    def logged(name):
        return [
            (m["step"], round(m["train/loss"], 6))
            for m in jsonl.read(tmp_path / name / "metrics.jsonl")
            if "train/loss" in m
        ]

    assert logged("resumed") == logged("whole") and [s for s, _ in logged("whole")] == [10, 20, 28]


def test_collect_recipe_is_resumable(expert_data, tmp_path):
    _tiny_sft(expert_data, tmp_path / "sft")
    args = collect_recipe.Args(
        policy=str(tmp_path / "sft" / "model"),
        tasks="0:3",
        n=2,
        run_dir=tmp_path / "c",
        max_new_tokens=8,
        max_rounds=2,
        max_prompt_tokens=512,
    )
    collect_recipe.main(args)
    out = tmp_path / "c" / "trajectories.jsonl"
    lines = out.read_text().splitlines()
    # simulate a kill mid-run: the last trajectory is lost and the line before it torn in half
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    with pytest.warns(UserWarning):
        summary = collect_recipe.main(args)
    keys = [t.key for t in read_trajectories(out)]
    assert len(keys) == len(set(keys)) == 6 and summary["trajectories"] == 6


def test_collect_against_an_openai_compatible_server(tmp_path):
    proc, base_url = start_stub()
    try:
        args = collect_recipe.Args(
            policy=f"openai:stub-model@{base_url}", tasks="0:2", n=2, run_dir=tmp_path / "c", max_rounds=3
        )
        summary = collect_recipe.main(args)
    finally:
        stop(proc)
    trajs = read_trajectories(tmp_path / "c" / "trajectories.jsonl")
    assert summary["trajectories"] == 4 and all(t.num_steps == 3 for t in trajs)
    assert trajs[0].steps[0].action == "turn left" and trajs[0].response_tokens > 0


@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_killed_collect_resumes_without_loss_or_duplicates(expert_data, tmp_path):
    """A real SIGKILL mid-run: re-running keeps every finished trajectory and adds each job once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _tiny_sft(expert_data, tmp_path / "sft")
    cmd = [
        sys.executable,
        "-m",
        "agentprm.cli",
        "collect",
        "--policy",
        str(tmp_path / "sft" / "model"),
        "--tasks",
        "0:6",
        "--n",
        "4",
        "--run-dir",
        str(tmp_path / "c"),
        "--max-new-tokens",
        "8",
        "--max-rounds",
        "3",
        "--max-active",
        "2",
        "--batch-size",
        "2",
        "--threads",
        "1",
    ]
    out = tmp_path / "c" / "trajectories.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.key: t for t in read_trajectories(out, strict=False)}
    assert 3 <= len(before) < 24, len(before)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = read_trajectories(out)
    keys = [t.key for t in after]
    assert len(keys) == len(set(keys)) == 24
    assert all(before[k] == t for t in after if (k := t.key) in before)  # finished ones kept as they were
    # the ledger adds up over the killed run and the resumed one: every stored trajectory's cost
    ledger = [json.loads(x) for x in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()][-1][
        "ledger"
    ]
    assert ledger["episodes"] == 24 and ledger["policy_tokens"] == sum(t.response_tokens for t in after)
    assert ledger["env_steps"] == sum(t.num_steps for t in after)
    # and it drew what an uninterrupted run draws: each request samples from its own seeded stream
    clean = [str(tmp_path / "clean") if x == str(tmp_path / "c") else x for x in cmd]
    subprocess.run(clean, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uninterrupted = {
        t.key: [s.response for s in t.steps]
        for t in read_trajectories(tmp_path / "clean" / "trajectories.jsonl")
    }
    assert uninterrupted == {t.key: [s.response for s in t.steps] for t in after}


def test_extending_a_collection_draws_new_samples(tokenizer):
    """Samples 2..3 collected after 0..1 (same seed) must not replay 0..1's random draws."""
    model = build_model("test", tokenizer, seed=0)
    policy = HFPolicy(model, tokenizer, batch_size=8)
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=0)
    runs = []
    for samples in ((0, 1), (2, 3)):
        done = []
        collect(
            "babyai",
            [(t, s) for t in (400, 401) for s in samples],
            policy,
            params,
            on_done=done.append,
            max_rounds=2,
        )
        runs.append(sorted([s.response for s in t.steps] for t in done))
    assert runs[0] != runs[1]


def test_sft_budget_is_steps_and_the_time_guard_fails_loudly(expert_data, tmp_path):
    from agentprm.rundir import TimeGuardError

    assert _tiny_sft(expert_data, tmp_path / "a", max_steps=3)["steps"] == 3
    with pytest.raises(TimeGuardError, match="not comparable"):
        _tiny_sft(expert_data, tmp_path / "b", time_guard_minutes=1e-9)
