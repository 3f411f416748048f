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
            Step(
                "Thought:\nGo.\n\nAction:\nmove forward",
                "move forward",
                "You moved.",
                0.0,
                12,
            ),
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
    other = make_traj(sample=1, initial_observation=odd, steps=(), policy=odd)
    path = tmp_path / "t.jsonl"
    write_trajectories(path, [traj, other])
    assert read_trajectories(path) == [traj, other]
    # Exactly one record per physical line, whatever the strings hold.
    assert path.read_bytes().count(b"\n") == 2
    assert read_trajectories(path)[0].num_steps == 0


def test_properties():
    # A hand-built record of four rounds: two parsed commands and the same unparseable reply twice.
    turns = [
        ("Action:\nget 1 oak logs", "get 1 oak logs", "Got 1 oak logs"),
        ("I am not sure.", None, "Could not execute "),
        ("I am not sure.", None, "Could not execute "),
        (
            "Action:\ncraft 4 oak planks using 1 oak logs",
            "craft 4 oak planks using 1 oak logs",
            "Crafted 4 minecraft:oak_planks",
        ),
    ]
    traj = make_traj(env="textcraft", task=7, sample=3, steps=tuple(Step(r, a, o) for r, a, o in turns))
    rounds = len(turns)
    parsed = sum(1 for _, a, _ in turns if a is not None)
    assert (rounds, parsed) == (4, 2)
    assert traj.num_steps == rounds  # every response costs a round, unparseable (and repeated) ones too
    assert traj.actions == [a for _, a, _ in turns] == ["get 1 oak logs", None, None, turns[3][1]]
    assert traj.key == ("textcraft", 7, 3)
    empty = make_traj(env="textcraft", task=7, sample=4, steps=())
    assert (empty.num_steps, empty.actions, empty.key) == (0, [], ("textcraft", 7, 4))


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
        (
            lambda d: d["steps"][0].update(response_tokens=1.5),
            "'steps[0].response_tokens'",
        ),
        (lambda d: d.update(reward=7.5), "'reward': reward 7.5 outside [0, 1]"),
        (lambda d: d.update(reward=-0.1), "reward -0.1 outside [0, 1]"),
        (lambda d: d.update(reward=math.inf), "reward inf outside [0, 1]"),
        (
            lambda d: d.update(task=-1),
            "'task': -1 is out of range: use 0 <= task < 400000 for babyai",
        ),
        (
            lambda d: d.update(env="textcraft", task=544),
            "'task': 544 is out of range: use 0 <= task < 544",
        ),
        (
            lambda d: d.update(env="webshop", task=-3),
            "'task': -3 is out of range: use task >= 0",
        ),
        (lambda d: d.update(sample=-1), "'sample': -1 is negative"),
    ],
)
def test_from_dict_errors_name_the_field(mutate, field):
    d = make_traj().to_dict()
    mutate(d)
    with pytest.raises(ValueError, match=re.escape(field)):
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
        CorruptLineError,
        match=rf"^{re.escape(str(path))}:2: not valid JSON .*; fix or delete that line$",
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
    line, other = (json.dumps(make_traj(sample=s).to_dict()) for s in (0, 1))
    path.write_text(f"\n{line}\n   \n\n{other}\n\n", encoding="utf-8")
    assert len(read_trajectories(path)) == 2


def test_completed_keys(tmp_path):
    path = tmp_path / "t.jsonl"
    assert completed_keys(path) == set()
    write_trajectories(path, [make_traj(1, 0), make_traj(1, 1), make_traj(2, 0)])
    write_trajectories(path, [make_traj(3, 0, env="textcraft")])
    assert completed_keys(path) == {
        ("babyai", 1, 0),
        ("babyai", 1, 1),
        ("babyai", 2, 0),
        ("textcraft", 3, 0),
    }


# -- validation of stored records ----------------------------------------------------------------


def _write_lines(path, dicts, newline_at_end: bool = True) -> None:
    text = "\n".join(json.dumps(d) for d in dicts)
    path.write_text(text + ("\n" if newline_at_end else ""), encoding="utf-8")


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"reward": 7.5}, "field 'reward': reward 7.5 outside [0, 1]"),
        ({"reward": -1}, "field 'reward': reward -1.0 outside [0, 1]"),
        (
            {"task": -2},
            "field 'task': -2 is out of range: use 0 <= task < 400000 for babyai",
        ),
        (
            {"env": "textcraft", "task": 600},
            "field 'task': 600 is out of range: use 0 <= task < 544 for textcraft",
        ),
    ],
)
def test_readers_reject_out_of_range_records_with_path_and_line(tmp_path, change, reason):
    path = tmp_path / "t.jsonl"
    _write_lines(
        path,
        [
            make_traj(0).to_dict(),
            {**make_traj(1).to_dict(), **change},
            make_traj(2).to_dict(),
        ],
    )
    expected = f"{path}:2: {reason}; fix or delete that line"
    for read in (
        read_trajectories,
        completed_keys,
        lambda p: list(iter_trajectories(p)),
    ):
        with pytest.raises(CorruptLineError) as info:
            read(path)
        assert str(info.value) == expected and info.value.lineno == 2
    with pytest.warns(TrajectoryFileWarning, match=r":2: skipping bad line"):
        assert [t.task for t in read_trajectories(path, strict=False)] == [0, 2]


def test_unknown_env_and_infinity_and_nan(tmp_path):
    path = tmp_path / "t.jsonl"
    # Another env's index space is unknown here: only >= 0 is checked.
    write_trajectories(
        path,
        [make_traj(10**7, env="webshop"), make_traj(1, reward=math.nan, success=False)],
    )
    assert [t.task for t in read_trajectories(path)] == [10**7, 1]
    # json.loads reads the non-standard literal Infinity; it is no reward.
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({**make_traj(2).to_dict(), "reward": math.inf}) + "\n")
    with pytest.raises(CorruptLineError, match=r":3: field 'reward': reward inf outside \[0, 1\]"):
        read_trajectories(path)


def test_duplicate_key_names_both_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [make_traj(i, s).to_dict() for i, s in [(1, 0), (3, 0), (3, 1), (4, 0)]]
    rows.insert(3, {**make_traj(3, 0).to_dict(), "reward": 1.0})
    _write_lines(path, [{**make_traj(3, 0, env="textcraft").to_dict()}] + rows)  # another env: no clash
    message = "duplicate (task, sample) (3, 0), first at line 3 (env 'babyai'); fix or delete that line"
    with pytest.raises(CorruptLineError, match=re.escape(f"{path}:5: {message}")):
        completed_keys(path)
    with pytest.raises(CorruptLineError, match=re.escape(f":5: {message}")):
        read_trajectories(path)
    # strict=False keeps the first of the two
    with pytest.warns(TrajectoryFileWarning, match=re.escape(":5: skipping bad line: duplicate")):
        trajs = read_trajectories(path, strict=False)
    assert [(t.env, t.task, t.sample, t.reward) for t in trajs][1:] == [
        ("babyai", 1, 0, 0.4375),
        ("babyai", 3, 0, 0.4375),
        ("babyai", 3, 1, 0.4375),
        ("babyai", 4, 0, 0.4375),
    ]


def test_writer_refuses_a_duplicate_key_before_touching_the_file(tmp_path):
    path = tmp_path / "t.jsonl"
    write_trajectories(path, [make_traj(1), make_traj(2)])
    before = path.read_bytes()
    with TrajectoryWriter(path) as writer:  # a resumed run: keys come from the file
        with pytest.raises(
            ValueError,
            match=r"cannot append \('babyai', 2, 0\): duplicate .* first at line 2",
        ):
            writer.write(make_traj(2, reward=1.0))
        writer.write(make_traj(3))
        with pytest.raises(ValueError, match=r"\('babyai', 3, 0\): duplicate .* first at line 3"):
            writer.write(make_traj(3))  # and within one session
    assert path.read_bytes().startswith(before)
    assert [t.task for t in read_trajectories(path)] == [1, 2, 3]


def test_writer_refuses_to_append_to_a_corrupt_file(tmp_path):
    path = tmp_path / "t.jsonl"
    _write_lines(path, [make_traj(1).to_dict(), make_traj(1).to_dict()])
    before = path.read_bytes()
    with pytest.raises(
        CorruptLineError,
        match=r":2: duplicate \(task, sample\) \(1, 0\), first at line 1",
    ):
        TrajectoryWriter(path)
    assert path.read_bytes() == before


def test_resume_after_a_kill_skips_done_keys(tmp_path):
    """The collect/expert/evaluate pattern: completed_keys, then append only what is missing."""
    path = tmp_path / "t.jsonl"
    jobs = [(t, s) for t in range(3) for s in range(2)]
    write_trajectories(path, [make_traj(t, s) for t, s in jobs[:3]])
    torn = json.dumps(make_traj(*jobs[3]).to_dict())
    with open(path, "a", encoding="utf-8") as f:
        f.write(torn[:50])  # killed while writing the fourth
    with pytest.warns(TrajectoryFileWarning):
        done = completed_keys(path)
    assert done == {("babyai", t, s) for t, s in jobs[:3]}
    with pytest.warns(TrajectoryFileWarning, match="torn last line"):
        writer = TrajectoryWriter(path)
    with writer:
        for t, s in jobs:
            if ("babyai", t, s) not in done:
                writer.write(make_traj(t, s))
        # A caller that forgets to skip a done key is stopped before the file turns unreadable.
        with pytest.raises(ValueError, match=r"cannot append \('babyai', 0, 0\)"):
            writer.write(make_traj(0, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [(t.task, t.sample) for t in read_trajectories(path)] == jobs
        assert completed_keys(path) == {("babyai", t, s) for t, s in jobs}


def test_a_whole_invalid_last_line_is_an_error_not_a_tear(tmp_path):
    # A kill never leaves valid JSON behind, so a newline-less last line that parses is a record,
    # judged like any other: skipping it as torn would hide a reward of 7.5.
    path = tmp_path / "t.jsonl"
    _write_lines(
        path,
        [make_traj(0).to_dict(), make_traj(1, reward=1.0).to_dict() | {"reward": 7.5}],
        False,
    )
    with pytest.raises(CorruptLineError, match=r":2: field 'reward': reward 7.5 outside"):
        read_trajectories(path)
    with pytest.raises(CorruptLineError, match=r":2: field 'reward': reward 7.5 outside"):
        TrajectoryWriter(path)
    with pytest.warns(TrajectoryFileWarning, match=":2: skipping bad line"):
        assert [t.task for t in read_trajectories(path, strict=False)] == [0]
