"""Trajectories and their JSONL store: the data every later stage reads.

The lowest module: it imports nothing from agentprm. A trajectory is one episode of one policy on
one task; the store is a JSONL file with one trajectory per line, written append-only so that a
collection run can be killed at any moment and resumed (completed_keys tells what is done).

Crash safety: each write is one "json\\n" line followed by flush + fsync, so a kill leaves at most
one torn (newline-less) last line. TrajectoryWriter repairs it on open, the readers skip it with a
warning; any other bad line is an error that names path:lineno. A torn line is never valid JSON (a
record's closing brace is the last byte before its newline), so a newline-less last line that IS
valid JSON is a whole record, kept when valid and an error like any other when not.

Validation: every record read or written must be a valid trajectory (Trajectory.from_dict: types,
reward in [0, 1] or unknown, task index valid for its env), and (env, task, sample) is unique within
a file: the readers raise CorruptLineError on a repeated key, and TrajectoryWriter refuses to append
one, so a resumed collection can never write a line that makes its own file unreadable.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "trajectories.jsonl")
    >>> traj = Trajectory(env="babyai", task=7, initial_observation="You see a ball.",
    ...                   steps=(Step("Action: pick up ball 1", "pick up ball 1", "Done."),),
    ...                   reward=0.4375, success=True, terminated=True, truncated=False,
    ...                   policy="expert:babyai-bot")
    >>> with TrajectoryWriter(path) as writer:
    ...     writer.write(traj)
    >>> read_trajectories(path) == [traj], completed_keys(path)
    (True, {('babyai', 7, 0)})
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentprm import jsonl

# -- records -----------------------------------------------------------------------------

# Task index space of each known environment: agentprm.envs enforces the same numbers (envs/splits.py
# reads them from here; this module may not import envs). Records of other envs (an AgentGym import
# of another task) are only checked for a non-negative index.
# The user's GSM8K data (gsm8k) and WebShop's vary with the data, so they are not here.
NUM_TASKS: dict[str, int] = {
    "babyai": 40 * 10_000,
    "babyai-agentgym": 40 * 10_000,
    "textcraft": 544,
    "math": 5000,
    "gsm-symbolic": 2200,
}


def _bad(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"field {name!r}: expected {expected}, got {type(value).__name__} {value!r:.80}")


def _get(d: dict, key: str, prefix: str, default: Any = ...) -> Any:
    if key in d:
        return d[key]
    if default is ...:
        raise ValueError(f"missing required field {prefix + key!r}")
    return default


def _str(d: dict, key: str, prefix: str, default: Any = ..., optional: bool = False) -> str | None:
    value = _get(d, key, prefix, default)
    if (value is None and optional) or isinstance(value, str):
        return value
    raise _bad(prefix + key, "str or null" if optional else "str", value)


def _int(d: dict, key: str, prefix: str, default: Any = ...) -> int:
    value = _get(d, key, prefix, default)
    # bool is an int subclass; True as a task index is a bug upstream, not a number.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _bad(prefix + key, "int", value)


def _float(d: dict, key: str, prefix: str, default: Any = ..., null_is_nan: bool = False) -> float:
    value = _get(d, key, prefix, default)
    if value is None and null_is_nan:
        return math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _bad(prefix + key, "number or null" if null_is_nan else "number", value)


def _bool(d: dict, key: str, prefix: str) -> bool:
    value = _get(d, key, prefix)
    if isinstance(value, bool):
        return value
    raise _bad(prefix + key, "bool", value)


def _dict(d: dict, key: str, prefix: str) -> dict:
    value = _get(d, key, prefix, {})
    if isinstance(value, dict):
        return dict(value)
    raise _bad(prefix + key, "object", value)


def _check_task(env: str, task: int) -> None:
    """A task index must exist in its env: -1 or 600 for TextCraft (544 tasks) is a bug upstream."""
    n = NUM_TASKS.get(env)
    if task < 0 or (n is not None and task >= n):
        valid = f"0 <= task < {n} for {env}" if n is not None else "task >= 0"
        raise ValueError(f"field 'task': {task} is out of range: use {valid}")


def _check_reward(reward: float) -> None:
    """The outcome reward r(u, tau) lies in [0, 1]; NaN (unknown) is allowed, inf is not."""
    if not math.isnan(reward) and not 0.0 <= reward <= 1.0:
        raise ValueError(f"field 'reward': reward {reward!r} outside [0, 1]")


def _check_keys(d: Any, allowed: frozenset[str], what: str, prefix: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(d).__name__}")
    # Unknown keys are rejected: a misspelt optional key ("sampel") would otherwise silently
    # become its default and corrupt the resume key.
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) {[prefix + k for k in unknown]} in {what}")


# A rendered state: chat messages {"role": "system"|"user"|"assistant", "content": str}.
Messages = list[dict[str, str]]


class AgentGaveUp(RuntimeError):
    """Raised by a scripted agent that has no move left: run_episode records the reason and ends the
    episode as a failure (the BabyAI expert's ExpertGaveUp is one)."""


@dataclass(frozen=True)
class State:
    """The agent's state s_t = (o_0, a_0, o_1, ..., a_{t-1}, o_t): what the renderer turns into the
    prompt of step t and what a PRM scores an action in. responses[i] = a_i, observations[i] = o_{i+1}.

    >>> State("You see a red ball.", ("Thought: x\\nAction: go to red ball 1",), ("You reach it.",)).t
    1
    """

    initial_observation: str
    responses: tuple[str, ...] = ()
    observations: tuple[str, ...] = ()

    @property
    def t(self) -> int:
        """Steps taken so far."""
        return len(self.responses)

    @classmethod
    def of(cls, initial_observation: str, steps) -> State:
        """The state after `steps` (Step records) from o_0."""
        return cls(initial_observation, tuple(s.response for s in steps), tuple(s.observation for s in steps))


@dataclass(frozen=True)
class Step:
    """One turn: the model's response, the command parsed from it, and the env's reply.

    action is None when the response could not be parsed (the env then answered with an error
    observation). reward is the env's per-step reward; response_tokens counts generated tokens;
    extra holds per-step env info such as {"score": 0.5}.

    >>> Step.from_dict(Step("Action: go", "go", "ok").to_dict())
    Step(response='Action: go', action='go', observation='ok', reward=0.0, response_tokens=0, extra={})
    """

    response: str
    action: str | None
    observation: str
    reward: float = 0.0
    response_tokens: int = 0
    # hash=False keeps Step hashable although a dict is not.
    extra: dict = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict:
        return {
            "response": self.response,
            "action": self.action,
            "observation": self.observation,
            "reward": self.reward,
            "response_tokens": self.response_tokens,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict, _prefix: str = "") -> Step:
        """Inverse of to_dict; raises ValueError naming the missing or mistyped field."""
        _check_keys(d, _STEP_KEYS, "step", _prefix)
        return cls(
            response=_str(d, "response", _prefix),
            action=_str(d, "action", _prefix, optional=True),
            observation=_str(d, "observation", _prefix),
            reward=_float(d, "reward", _prefix, 0.0),
            response_tokens=_int(d, "response_tokens", _prefix, 0),
            extra=_dict(d, "extra", _prefix),
        )


_STEP_KEYS = frozenset(["response", "action", "observation", "reward", "response_tokens", "extra"])


@dataclass(frozen=True, kw_only=True)
class Trajectory:
    """One episode of `policy` on task `task` of env `env` (keyword-only: there are many fields).

    reward is the outcome reward r(u, tau) in [0, 1] (NaN when unknown, e.g. an AgentGym record
    without an outcome; stored as JSON null). (env, task, sample) is the resume key: sample
    numbers the n samples drawn for the same task.

    >>> t = Trajectory(env="textcraft", task=3, sample=1, initial_observation="Goal: craft stick.",
    ...                steps=[Step("Action: craft 4 stick", "craft 4 stick", "Crafted 4 stick")],
    ...                reward=1.0, success=True, terminated=True, truncated=False, policy="expert")
    >>> t.key, t.num_steps, t.actions
    (('textcraft', 3, 1), 1, ['craft 4 stick'])
    >>> Trajectory.from_dict(t.to_dict()) == t
    True
    """

    env: str
    task: int
    sample: int = 0
    initial_observation: str
    steps: tuple[Step, ...]
    reward: float
    success: bool
    terminated: bool
    truncated: bool
    policy: str
    prompt_tokens: int = 0
    response_tokens: int = 0
    meta: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Accept any sequence of steps but store a tuple, so the frozen record stays immutable.
        if not isinstance(self.steps, tuple):
            object.__setattr__(self, "steps", tuple(self.steps))

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    def state(self, t: int) -> State:
        """s_t: o_0 and the first t (response, observation) pairs (0 <= t <= num_steps).

        The state step t's action was taken in; state(num_steps) is the final one."""
        if not 0 <= t <= len(self.steps):
            raise ValueError(
                f"state({t}) of a trajectory with {len(self.steps)} steps: use 0 <= t <= {len(self.steps)}"
            )
        return State.of(self.initial_observation, self.steps[:t])

    @property
    def actions(self) -> list[str | None]:
        return [step.action for step in self.steps]

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.env, self.task, self.sample)

    def to_dict(self) -> dict:
        """A JSON-ready dict (strict JSON: an unknown reward, NaN, becomes None)."""
        return {
            "env": self.env,
            "task": self.task,
            "sample": self.sample,
            "initial_observation": self.initial_observation,
            "steps": [step.to_dict() for step in self.steps],
            "reward": None if math.isnan(self.reward) else self.reward,
            "success": self.success,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "policy": self.policy,
            "prompt_tokens": self.prompt_tokens,
            "response_tokens": self.response_tokens,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Trajectory:
        """Inverse of to_dict; steps may be lists. Raises ValueError naming the bad field.

        Beyond types: reward in [0, 1] or null (unknown), sample >= 0, and task a valid index of
        its env (0 <= task < NUM_TASKS[env] for a known env, task >= 0 otherwise).

        >>> Trajectory.from_dict({"env": "babyai"})
        Traceback (most recent call last):
        ...
        ValueError: missing required field 'task'
        >>> Trajectory.from_dict({"env": "textcraft", "task": 544})
        Traceback (most recent call last):
        ...
        ValueError: field 'task': 544 is out of range: use 0 <= task < 544 for textcraft
        """
        _check_keys(d, _TRAJECTORY_KEYS, "trajectory", "")
        env = _str(d, "env", "")
        task = _int(d, "task", "")
        _check_task(env, task)
        sample = _int(d, "sample", "", 0)
        if sample < 0:
            raise ValueError(f"field 'sample': {sample} is negative: samples are numbered 0, 1, ...")
        reward = _float(d, "reward", "", null_is_nan=True)
        _check_reward(reward)
        raw_steps = _get(d, "steps", "")
        if not isinstance(raw_steps, (list, tuple)):
            raise _bad("steps", "list", raw_steps)
        steps = tuple(Step.from_dict(s, f"steps[{i}].") for i, s in enumerate(raw_steps))
        return cls(
            env=env,
            task=task,
            sample=sample,
            initial_observation=_str(d, "initial_observation", ""),
            steps=steps,
            reward=reward,
            success=_bool(d, "success", ""),
            terminated=_bool(d, "terminated", ""),
            truncated=_bool(d, "truncated", ""),
            policy=_str(d, "policy", ""),
            prompt_tokens=_int(d, "prompt_tokens", "", 0),
            response_tokens=_int(d, "response_tokens", "", 0),
            meta=_dict(d, "meta", ""),
        )


_TRAJECTORY_KEYS = frozenset(
    [
        "env",
        "task",
        "sample",
        "initial_observation",
        "steps",
        "reward",
        "success",
        "terminated",
        "truncated",
        "policy",
        "prompt_tokens",
        "response_tokens",
        "meta",
    ]
)

# -- JSONL store -------------------------------------------------------------------------


class CorruptLineError(ValueError):
    """A line of a trajectory file is not valid JSON, not a valid trajectory, or repeats the
    (env, task, sample) of an earlier line.

    The message reads "<path>:<lineno>: <what is wrong>; fix or delete that line", e.g.
    "t.jsonl:3: field 'reward': reward 7.5 outside [0, 1]; fix or delete that line".
    """

    def __init__(self, path: str | os.PathLike, lineno: int, reason: str):
        self.path = os.fspath(path)
        self.lineno = lineno
        self.reason = reason
        super().__init__(f"{self.path}:{lineno}: {reason}; fix or delete that line")


class TrajectoryFileWarning(UserWarning):
    """A trajectory file had a torn last line, or a bad line was skipped (strict=False)."""


class _NotJSON(ValueError):
    """Bytes that are not valid UTF-8 JSON: on a newline-less last line, what a kill leaves behind."""


def _decode(raw: bytes) -> Any:
    """One stored line -> its JSON value; _NotJSON (with a short reason) when it is not JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _NotJSON(f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _NotJSON(f"not valid JSON ({e.msg} at column {e.colno})") from None


def _parse_line(raw: bytes) -> Trajectory:
    """One stored line -> Trajectory; ValueError (with a short reason) on anything wrong."""
    return Trajectory.from_dict(_decode(raw))


def _dumps(traj: Trajectory) -> bytes:
    d = traj.to_dict()
    # Validate on the way in, so the file never holds a line its readers would reject (e.g. a
    # numpy int as task): the error surfaces at the write that caused it.
    Trajectory.from_dict(d)
    # ensure_ascii=False keeps observations readable; JSON escapes every newline inside strings,
    # and we split on b"\n" only, so one record is always exactly one line.
    # allow_nan=False: the file stays strict JSON that any reader (jq, pandas) accepts.
    return (json.dumps(d, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _duplicate(key: tuple[str, int, int], first: int) -> str:
    """The reason a repeated resume key gives, e.g. "duplicate (task, sample) (3, 0), first at line 12"."""
    env, task, sample = key
    return f"duplicate (task, sample) ({task}, {sample}), first at line {first} (env {env!r})"


def _count_newlines(f, end: int) -> int:
    f.seek(0)
    count, remaining = 0, end
    while remaining > 0:
        chunk = f.read(min(1 << 20, remaining))
        if not chunk:
            break
        count += chunk.count(b"\n")
        remaining -= len(chunk)
    return count


def _last_newline(f, size: int) -> int:
    """Offset of the last b"\\n" in the file, or -1; reads backwards in chunks."""
    pos = size
    while pos > 0:
        start = max(0, pos - (1 << 16))
        f.seek(start)
        chunk = f.read(pos - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i
        pos = start
    return -1


class TrajectoryWriter:
    """Append trajectories to a JSONL file, one line each, durable after every write.

    On open, a torn last line (no trailing newline, not valid JSON: a crash mid-write) is dropped
    with a TrajectoryFileWarning naming file and line number; earlier lines are kept. If that last
    line is complete JSON (only its newline was lost) it is kept and the newline added instead.
    Then the file is read once (strictly: a bad line raises CorruptLineError) to learn its
    (env, task, sample) keys, and write() refuses a key already there, so the file stays readable.
    Parent directories are created.

        done = completed_keys(path)
        with TrajectoryWriter(path) as w:
            for traj in play(job for job in jobs if job not in done):
                w.write(traj)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        # key -> line number, to refuse and explain a duplicate before it reaches the file.
        self._lines: dict[tuple[str, int, int], int] = {}
        self._next_line = 1
        if os.path.exists(self.path):
            self._repair_torn_tail()
            for lineno, traj in _records(self.path, strict=True):
                self._lines[traj.key] = lineno
            self._next_line = self._count_lines() + 1
        self._f = open(self.path, "ab")

    def _count_lines(self) -> int:
        with open(self.path, "rb") as f:
            return _count_newlines(f, f.seek(0, os.SEEK_END))

    def _repair_torn_tail(self) -> None:
        with open(self.path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            cut = _last_newline(f, size) + 1
            f.seek(cut)
            tail = f.read(size - cut)
            lineno = _count_newlines(f, cut) + 1
            try:
                if tail.strip():
                    _decode(tail)
            except _NotJSON as e:
                warnings.warn(
                    f"{self.path}:{lineno}: torn last line (no trailing newline, {e}), "
                    "left by an interrupted write; dropping it and keeping the lines before",
                    TrajectoryFileWarning,
                    stacklevel=3,
                )
                f.truncate(cut)
            else:
                # Complete JSON: keep it (the strict read that follows judges it as a record).
                f.seek(size)
                f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())

    def write(self, traj: Trajectory) -> None:
        """Append one trajectory as one line, then flush and fsync.

        Raises ValueError, leaving the file untouched, for an invalid trajectory or one whose
        (env, task, sample) is already in the file."""
        if self._f.closed:
            raise ValueError(f"TrajectoryWriter for {self.path} is closed")
        # Serialise first: a trajectory that cannot be encoded raises before touching the file.
        line = _dumps(traj)
        if traj.key in self._lines:
            raise ValueError(
                f"{self.path}: cannot append {traj.key}: {_duplicate(traj.key, self._lines[traj.key])}; "
                "skip the keys completed_keys() returns when resuming"
            )
        jsonl.write_line(self._f, line)
        self._lines[traj.key] = self._next_line
        self._next_line += 1

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_trajectories(path: str | os.PathLike, trajs: Iterable[Trajectory]) -> int:
    """Append trajectories to path (see TrajectoryWriter); returns how many were written."""
    n = 0
    with TrajectoryWriter(path) as writer:
        for traj in trajs:
            writer.write(traj)
            n += 1
    return n


def _records(path: str, strict: bool) -> Iterator[tuple[int, Trajectory]]:
    """(line number, trajectory) for every valid line; see iter_trajectories for the rules."""
    first: dict[tuple[str, int, int], int] = {}
    for lineno, _, raw in jsonl.scan(path):
        try:
            traj = _parse_line(raw)
            if traj.key in first:
                raise ValueError(_duplicate(traj.key, first[traj.key]))
        except ValueError as e:
            torn = isinstance(e, _NotJSON) and not raw.endswith(b"\n")
            if torn or not strict:
                what = "torn last line (no trailing newline)" if torn else "bad line"
                warnings.warn(f"{path}:{lineno}: skipping {what}: {e}", TrajectoryFileWarning, stacklevel=3)
                continue
            raise CorruptLineError(path, lineno, str(e)) from None
        first[traj.key] = lineno
        yield lineno, traj


def iter_trajectories(path: str | os.PathLike, *, strict: bool = True) -> Iterator[Trajectory]:
    """Yield the trajectories of a JSONL file in order; blank lines are ignored.

    Each line must be a valid record (Trajectory.from_dict: reward in [0, 1], a task index valid
    for its env, ...) with an (env, task, sample) not seen on an earlier line. A bad line raises
    CorruptLineError("<path>:<lineno>: <what is wrong>; fix or delete that line"), e.g.
    "runs/c/trajectories.jsonl:13: duplicate (task, sample) (3, 0), first at line 12 (env 'babyai');
    fix or delete that line", except a last line without trailing newline that is not valid JSON
    (torn by a crash), which is skipped with a TrajectoryFileWarning. strict=False skips every bad
    line with a warning naming path:lineno (of duplicates, the first line is kept).
    A missing file raises FileNotFoundError.
    """
    for _, traj in _records(os.fspath(path), strict):
        yield traj


def read_trajectories(path: str | os.PathLike, *, strict: bool = True) -> list[Trajectory]:
    """All trajectories of a JSONL file; see iter_trajectories for the error rules."""
    return list(iter_trajectories(path, strict=strict))


def completed_keys(path: str | os.PathLike, *, strict: bool = True) -> set[tuple[str, int, int]]:
    """The (env, task, sample) keys already in path, for resuming a collection; missing file -> set().

    The file is read with iter_trajectories' validation, so a resumed run stops at a corrupt or
    duplicated line instead of silently redoing or skipping work.

    >>> completed_keys("/nonexistent/trajectories.jsonl")
    set()
    """
    if not os.path.exists(path):
        return set()
    return {traj.key for traj in iter_trajectories(path, strict=strict)}
