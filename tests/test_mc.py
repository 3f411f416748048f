"""Collection from replayed prefixes and the MC labelling recipe (test preset policy)."""

from __future__ import annotations

import json

import pytest

from agentprm import jsonl
from agentprm.experts import make_expert
from agentprm.policy import Generation
from agentprm.recipes import mc_label
from agentprm.rollout import collect, run_episode
from agentprm.types import write_trajectories


class ScriptedPolicy:
    """A real Policy that answers every state with the same command (deterministic outcomes)."""

    name = "scripted"
    max_prompt_tokens = count_tokens = None

    def __init__(self, command):
        self.command = command

    def generate(self, states, params, seeds=None):
        return [[Generation(f"Thought:\nx\n\nAction:\n{self.command}", 10, 5)] * params.n for _ in states]


def test_collect_continues_after_a_replayed_prefix():
    expert = run_episode("babyai", 11, make_expert("babyai"))  # Open: several steps, success
    prefix = [s.response for s in expert.steps[:-1]]
    done = []
    ledger = collect(
        "babyai", [(11, 0, prefix)], ScriptedPolicy(expert.steps[-1].action), _params(), on_done=done.append
    )
    (traj,) = done
    assert traj.success and traj.meta["prefix_steps"] == len(prefix)
    assert [s.observation for s in traj.steps] == [s.observation for s in expert.steps]
    assert ledger.replay_steps == len(prefix) and ledger.policy_tokens == 5


def _params():
    from agentprm.policy import SamplingParams

    return SamplingParams(temperature=1.0, max_new_tokens=8)


def test_mc_label_recipe(tmp_path, monkeypatch):
    seed = run_episode("babyai", 11, make_expert("babyai"))
    data = tmp_path / "rollouts.jsonl"
    write_trajectories(data, [seed])
    # the continuation policy always turns left: every rollout runs into the round cap and fails
    monkeypatch.setattr(mc_label, "make_policy", lambda *a, **k: ScriptedPolicy("turn left"))
    args = mc_label.Args(data=data, policy="unused", run_dir=tmp_path / "mc", n_mc=3)
    summary = mc_label.main(args)
    (rec,) = [json.loads(x) for x in (tmp_path / "mc" / "mc_labels.jsonl").read_text().splitlines()]
    assert rec["task"] == 11 and len(rec["outcomes"]) == seed.num_steps
    assert all(len(o) == 3 and set(o) == {0.0} for o in rec["outcomes"][:-1])
    assert rec["outcomes"][-1] == [seed.reward]  # the last step's label is the seed's own outcome
    assert summary["rollouts"] == 3 * (seed.num_steps - 1) and rec["policy_tokens"] > 0
    assert mc_label.main(args)["seeds"] == 0  # resumable: nothing left to do


def test_mc_label_records_survive_a_torn_line(tmp_path):
    path = tmp_path / "mc_labels.jsonl"
    path.write_text('{"task": 1, "sample": 0, "outcomes": [[1.0]]}\n{"task": 2, "sam')  # killed mid-write
    with pytest.warns(UserWarning, match=r"mc_labels.jsonl:2: dropping a torn last line"):
        assert [r["task"] for r in jsonl.read(path, repair=True)] == [1]
    assert path.read_text().endswith("]]}\n")  # the torn fragment is gone: the next append is a clean line
    path.write_text('{"task": 1}\nnot json\n{"task": 3}\n')
    with pytest.raises(ValueError, match=r"mc_labels.jsonl:2: bad record .*fix or delete that line"):
        jsonl.read(path)
