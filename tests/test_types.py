"""Trajectory records and the JSONL store: round trips, validation, crash safety, resume keys."""

from __future__ import annotations

import json
import math
import re
import warnings

import pytest

from agentprm.types import (
    CorruptLineError,
    Step,
    Trajectory,
    TrajectoryFileWarning,
    TrajectoryWriter,
    completed_keys,
    iter_trajectories,
    read_trajectories,
    write_trajectories,
)


def make_traj(task: int = 0, sample: int = 0, reward: float = 0.4375, **kw) -> Trajectory:
    fields = dict(
        env="babyai",
        task=task,
        sample=sample,
        initial_observation="You see a red ball 1 step forward.",
        steps=(
            Step("Thought:\nGo.\n\nAction:\nmove forward", "move forward", "You moved.", 0.0, 12),
            Step("Action: a\nAction: b", None, "Error: only one", 0.0, 7, {"score": 0.5}),
        ),
        reward=reward,
        success=reward > 0,
        terminated=True,
        truncated=False,
        policy="expert:babyai-bot",
        prompt_tokens=100,
        response_tokens=19,
        meta={"temperature": 0.7, "level": "BabyAI-GoToObj-v0"},
    )
    fields.update(kw)
    return Trajectory(**fields)


# -- records -----------------------------------------------------------------------------


@pytest.mark.parametrize("reward", [0.4375, 0.1, 1 / 3, 1e-300, 0.9999999999999999, 0.0, 1.0])
def test_roundtrip_keeps_float_rewards_exact(tmp_path, reward):
    traj = make_traj(reward=reward)
    assert Trajectory.from_dict(json.loads(json.dumps(traj.to_dict()))) == traj
    path = tmp_path / "t.jsonl"
    write_trajectories(path, [traj])
    (back,) = read_trajectories(path)
    assert back == traj
    assert type(back.reward) is float and back.reward == reward


def test_roundtrip_unicode_and_empty_steps(tmp_path):
    odd = 'Ünïcødé › 日本語 🙂 \u2028 line sep \x85 nel \r\n crlf "quoted" \\ backslash'
    traj = make_traj(initial_observation=odd, steps=(), policy=odd)
    path = tmp_path / "t.jsonl"
    write_trajectories(path, [traj, traj])
    assert read_trajectories(path) == [traj, traj]
    # Exactly one record per physical line, whatever the strings hold.
    assert path.read_bytes().count(b"\n") == 2
    assert read_trajectories(path)[0].num_steps == 0


def test_properties():
    traj = make_traj(task=5, sample=2)
    assert traj.num_steps == traj.env_steps == 2
    assert traj.actions == ["move forward", None]
    assert traj.key == ("babyai", 5, 2)


def test_from_dict_accepts_lists_and_defaults():
    d = make_traj().to_dict()
    for key in ("sample", "prompt_tokens", "response_tokens", "meta"):
        del d[key]
    for step in d["steps"]:
        del step["reward"], step["response_tokens"], step["extra"]
    traj = Trajectory.from_dict(d)
    assert isinstance(traj.steps, tuple) and traj.sample == 0 and traj.meta == {}
    assert traj.steps[1] == Step("Action: a\nAction: b", None, "Error: only one")
    # Constructing from a list also stores a tuple (the record stays immutable and hashable).
    assert isinstance(Trajectory(**{**make_traj().__dict__, "steps": list(traj.steps)}).steps, tuple)
    hash(traj)


def test_nan_reward_is_stored_as_null(tmp_path):
    traj = make_traj(reward=math.nan, success=False)
    assert traj.to_dict()["reward"] is None
    path = tmp_path / "t.jsonl"
    write_trajectories(path, [traj])
    assert "NaN" not in path.read_text(encoding="utf-8")
    assert math.isnan(read_trajectories(path)[0].reward)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.pop("env"), "'env'"),
        (lambda d: d.pop("reward"), "'reward'"),
        (lambda d: d.pop("steps"), "'steps'"),
        (lambda d: d.update(task="3"), "'task'"),
        (lambda d: d.update(task=True), "'task'"),
        (lambda d: d.update(success=1), "'success'"),
        (lambda d: d.update(reward="high"), "'reward'"),
        (lambda d: d.update(steps="none"), "'steps'"),
        (lambda d: d.update(meta=[]), "'meta'"),
        (lambda d: d.update(sampel=1), "'sampel'"),
        (lambda d: d["steps"][1].pop("observation"), "'steps[1].observation'"),
        (lambda d: d["steps"][0].update(action=3), "'steps[0].action'"),
        (lambda d: d["steps"][0].update(response_tokens=1.5), "'steps[0].response_tokens'"),
    ],
)
def test_from_dict_errors_name_the_field(mutate, field):
    d = make_traj().to_dict()
    mutate(d)
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Trajectory.from_dict(d)


def test_from_dict_rejects_non_object():
    with pytest.raises(ValueError, match="JSON object"):
        Trajectory.from_dict([1, 2])  # type: ignore[arg-type]


# -- JSONL store -------------------------------------------------------------------------


def test_writer_appends_and_creates_parents(tmp_path):
    path = tmp_path / "run" / "sub" / "t.jsonl"
    with TrajectoryWriter(path) as writer:
        writer.write(make_traj(0))
    with TrajectoryWriter(path) as writer:
        writer.write(make_traj(1))
    assert [t.task for t in read_trajectories(path)] == [0, 1]
    with pytest.raises(ValueError, match="closed"):
        writer.write(make_traj(2))


def test_writer_rejects_invalid_trajectory_before_touching_the_file(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as writer:
        writer.write(make_traj(0))
        with pytest.raises(ValueError, match="'task'"):
            writer.write(make_traj(task="1"))  # type: ignore[arg-type]
    assert len(read_trajectories(path)) == 1


def test_kill_mid_write_is_repaired_on_reopen(tmp_path):
    path = tmp_path / "t.jsonl"
    write_trajectories(path, [make_traj(i) for i in range(3)])
    full = json.dumps(make_traj(3).to_dict())
    with open(path, "a", encoding="utf-8") as f:
        f.write(full[: len(full) // 2])  # what a kill during write() leaves behind

    # The readers skip the torn line with a warning, before any repair.
    with pytest.warns(TrajectoryFileWarning, match=r"t\.jsonl:4: skipping torn last line"):
        assert [t.task for t in read_trajectories(path)] == [0, 1, 2]

    with pytest.warns(TrajectoryFileWarning, match=r"t\.jsonl:4: torn last line"):
        writer = TrajectoryWriter(path)
    with writer:
        writer.write(make_traj(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [t.task for t in read_trajectories(path)] == [0, 1, 2, 4]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    # Only the newline was lost (or the file was written by hand): the record itself is whole.
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(make_traj(0).to_dict()), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [t.task for t in read_trajectories(path)] == [0]
        write_trajectories(path, [make_traj(1)])
    assert [t.task for t in read_trajectories(path)] == [0, 1]


def test_corrupt_middle_line_raises_with_path_and_lineno(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [json.dumps(make_traj(i).to_dict()) for i in range(3)]
    lines[1] = lines[1][:40]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(
        CorruptLineError, match=rf"^{re.escape(str(path))}:2: not valid JSON .*; fix or delete that line$"
    ):
        read_trajectories(path)
    with pytest.raises(CorruptLineError) as info:
        completed_keys(path)
    assert info.value.lineno == 2 and isinstance(info.value, ValueError)

    with pytest.warns(TrajectoryFileWarning, match=rf"{re.escape(str(path))}:2: skipping bad line"):
        assert [t.task for t in read_trajectories(path, strict=False)] == [0, 2]


def test_invalid_trajectory_line_names_the_field(tmp_path):
    path = tmp_path / "t.jsonl"
    d = make_traj().to_dict()
    del d["policy"]
    path.write_text("\n" + json.dumps(d) + "\n", encoding="utf-8")
    with pytest.raises(CorruptLineError, match=r":2: missing required field 'policy'; fix or delete"):
        list(iter_trajectories(path))


def test_blank_lines_are_ignored(tmp_path):
    path = tmp_path / "t.jsonl"
    line = json.dumps(make_traj().to_dict())
    path.write_text(f"\n{line}\n   \n\n{line}\n\n", encoding="utf-8")
    assert len(read_trajectories(path)) == 2


def test_completed_keys(tmp_path):
    path = tmp_path / "t.jsonl"
    assert completed_keys(path) == set()
    write_trajectories(path, [make_traj(1, 0), make_traj(1, 1), make_traj(2, 0), make_traj(1, 0)])
    write_trajectories(path, [make_traj(3, 0, env="textcraft")])
    assert completed_keys(path) == {("babyai", 1, 0), ("babyai", 1, 1), ("babyai", 2, 0), ("textcraft", 3, 0)}
