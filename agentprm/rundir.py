"""Run directories: every run leaves runs/<name>/ with args.json, metrics.jsonl and its artifacts."""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from agentprm import jsonl


class TimeGuardError(RuntimeError):
    """A training stage ran past its --time-guard-minutes: its results are not comparable (budgets
    are optimizer steps; the guard only catches a run that overruns, and says so)."""


def check_time_guard(
    deadline: float | None, stage: str, minutes: float | None, step: int, total: int, save
) -> None:
    """Past `deadline` (time.time() seconds): call save() (a checkpoint), then raise TimeGuardError
    saying which stage stopped where. None: no guard."""
    if deadline and time.time() > deadline:
        save()
        raise TimeGuardError(
            f"{stage} hit its time guard ({minutes} min) at step {step} of {total}: results are not "
            "comparable. Re-run the same command to resume, or raise --time-guard-minutes."
        )


def jsonable(value):
    """Paths, dataclasses, tuples -> JSON types; NaN (a metric that was not measured) -> None,
    so that every file we write is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value):
        return {k: jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def load_args(cls, path: str | os.PathLike, **changes):
    """A recipe's Args as a run saved them (the args.json that prepare writes), with `changes`:
    jsonable's inverse for Args. Saved fields the recipe no longer has are dropped (one it gained
    since takes its default); JSON lists become tuples, and strings become Paths in fields that
    hold a Path.

    >>> import tempfile
    >>> @dataclasses.dataclass
    ... class A:
    ...     run_dir: Path | None = None
    ...     beams: tuple[str, ...] = ()
    ...     lr: float = 1.0
    >>> p = Path(tempfile.mkdtemp()) / "args.json"
    >>> _ = p.write_text('{"run_dir": "runs/x", "beams": ["2x2"], "gone": 1, "lr": 0.5}')
    >>> load_args(A, p, lr=0.1)
    A(run_dir=PosixPath('runs/x'), beams=('2x2',), lr=0.1)
    """
    saved = json.loads(Path(path).read_text())
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name not in saved:
            continue
        value = saved[f.name]
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, str) and "Path" in str(f.type):
            value = Path(value)
        kw[f.name] = value
    return cls(**{**kw, **changes})


# Arguments that never change what a run writes: they may differ when a run is resumed.
NEUTRAL_ARGS = frozenset(
    {
        "threads",
        "save_every",
        "time_guard_minutes",
        "guard_minutes",
        "overwrite",
        "request_timeout",
        "max_retries",
    }
)
_LOCKS: dict[str, object] = {}  # run dir -> the open, flock'ed lock file this process holds


def _release_all() -> None:
    for f in _LOCKS.values():
        f.close()  # closing drops the flock
    _LOCKS.clear()


atexit.register(_release_all)


class RunDirError(ValueError):
    """A run directory cannot be used as asked (in use by another process, other arguments)."""


def lock(path: str | os.PathLike) -> None:
    """Hold an exclusive lock on run dir `path` for the rest of this process (re-entrant).

    The lock file (`.lock`) holds the owner's pid and host. A second process gets RunDirError naming
    the holder. The OS drops the lock when its holder dies, so a lock left by a killed run is taken
    over (with a warning naming the dead pid).
    """
    import fcntl
    import socket
    import warnings

    path = Path(path)
    key = str(path.resolve())
    if key in _LOCKS:
        return
    f = open(path / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise RunDirError(
            f"{path} is in use by {holder}: wait for it to finish, or choose another --run-dir"
        ) from None
    f.seek(0)
    previous = f.read().split()
    if len(previous) >= 2 and previous[0] == "pid" and previous[1].isdigit():
        pid = int(previous[1])
        if pid != os.getpid() and not _alive(pid):
            warnings.warn(
                f"{path}: taking over the lock of pid {pid}, which is no longer running", stacklevel=3
            )
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    _LOCKS[key] = f


_CHECKPOINT_ASKED = False  # set by SIGUSR1, read (and cleared) by the training loops


def listen_for_checkpoint_signal() -> None:
    """From now on SIGUSR1 asks this process for a checkpoint instead of killing it.

    `kill -USR1 <pid>` (or SLURM's `--signal=USR1@120` before a job's time runs out): sft and
    train-prm save their resumable checkpoint after the optimizer step in progress and go on; a
    stage that saves as it goes (collect, mc-label, evaluate) or per iteration (ppo) simply goes on.
    Checkpoints never change results (a resumed run continues exactly), so this only moves where a
    later resume starts. Main thread only (Python's rule for handlers); elsewhere a no-op.
    """
    if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, _ask_checkpoint)


def _ask_checkpoint(signum, frame) -> None:
    global _CHECKPOINT_ASKED
    _CHECKPOINT_ASKED = True


def checkpoint_asked() -> bool:
    """True once for each SIGUSR1 received since the last call (see listen_for_checkpoint_signal).

    >>> _ask_checkpoint(signal.SIGUSR1, None)  # what the handler does when the signal arrives
    >>> checkpoint_asked(), checkpoint_asked()
    (True, False)
    """
    global _CHECKPOINT_ASKED
    asked, _CHECKPOINT_ASKED = _CHECKPOINT_ASKED, False
    return asked


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(run_dir: str | os.PathLike, args, neutral: frozenset[str] = frozenset()) -> Path:
    """Create and lock the run directory, check a resumed run's arguments, write args.json.

    A run dir that already has args.json is resumed only when every argument that determines its
    outputs is unchanged (all but NEUTRAL_ARGS and the recipe's own `neutral` ones, e.g. the tasks
    a collection may be extended to); otherwise RunDirError lists the differing fields. With
    args.overwrite the directory is emptied first (a fresh start).
    """
    path = Path(run_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create run dir {path}: {exc.strerror or exc}") from None
    lock(path)
    listen_for_checkpoint_signal()
    new = jsonable(args)
    old_path = path / "args.json"
    if getattr(args, "overwrite", False):
        for child in path.iterdir():
            if child.name == ".lock":
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    elif old_path.exists():
        try:
            old = json.loads(old_path.read_text())
        except ValueError:
            raise RunDirError(
                f"{old_path} is not valid JSON: fix it, or pass --overwrite to start fresh"
            ) from None
        skip = NEUTRAL_ARGS | set(neutral)
        changed = [k for k in new if k in old and k not in skip and old[k] != new[k]]
        if changed:
            diff = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in changed)
            raise RunDirError(
                f"{path} was made with other arguments ({diff}); re-run with the same values, choose "
                "another --run-dir, or pass --overwrite to start fresh"
            )
    atomic_write_text(old_path, json.dumps(new, indent=2) + "\n")
    return path


def log_metrics(run_dir: str | os.PathLike, metrics: dict) -> None:
    """Append one line of metrics (with a wall-clock timestamp) to metrics.jsonl; a record with a
    "step" or "iteration" also goes to TensorBoard when it is installed (`tensorboard_scalars`)."""
    jsonl.append(Path(run_dir) / "metrics.jsonl", [{"time": round(time.time(), 3), **jsonable(metrics)}])
    step = metrics.get("step", metrics.get("iteration"))
    if isinstance(step, int) and not isinstance(step, bool):
        writer = _tensorboard(Path(run_dir))
        if writer is not None:
            for tag, value in tensorboard_scalars(metrics).items():
                writer.add_scalar(tag, value, step)
            writer.flush()  # a killed run loses no logged point


def tensorboard_scalars(metrics: dict) -> dict[str, float]:
    """The numbers of a metrics record that TensorBoard plots: finite ints and floats, not the step
    keys or the timestamp; nested dicts flattened with "/".

    >>> tensorboard_scalars({"step": 3, "train/loss": 0.5, "ok": True, "heldout": {"loss": 0.2}, "x": None})
    {'train/loss': 0.5, 'heldout/loss': 0.2}
    """
    out = {}
    for key, value in metrics.items():
        if key in ("step", "iteration", "time"):
            continue
        if isinstance(value, dict):
            out.update({f"{key}/{k}": v for k, v in tensorboard_scalars(value).items()})
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out[key] = float(value)
    return out


_WRITERS: dict[Path, object] = {}  # run dir -> its writer, or None where there is none to write


def _tensorboard(run_dir: Path, purge_step: int | None = None):
    """The run's TensorBoard writer (event files in <run_dir>/tensorboard, beside metrics.jsonl,
    which stays the record), or None when the `tensorboard` package is not installed or
    AGENTPRM_TENSORBOARD=0 (both read once per run dir). `tensorboard --logdir runs` then shows
    every run. A resumed run opens it with purge_step (rewind_metrics): the points a killed run
    logged from there on are hidden."""
    key = run_dir.resolve()
    if key not in _WRITERS:
        import importlib.util

        writer = None
        if os.environ.get("AGENTPRM_TENSORBOARD") != "0" and importlib.util.find_spec("tensorboard"):
            from torch.utils.tensorboard import SummaryWriter  # only a training run has a step to log

            writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)
            atexit.register(writer.close)
        _WRITERS[key] = writer
    return _WRITERS[key]


def rewind_metrics(run_dir: str | os.PathLike, key: str, last: int) -> int:
    """Drop the metrics.jsonl records whose `key` (step, iteration) is past `last`, the point a resumed
    run restarts from: what a killed run logged after its last checkpoint is redone, and would
    otherwise appear twice. Records without `key` stay. Returns how many were dropped.

    Example: a run checkpointed at step 100 and killed at 108 -> rewind_metrics(run, "step", 100)
    drops the lines of steps 101..108.
    """
    _tensorboard(Path(run_dir), purge_step=last + 1)  # TensorBoard hides the redone points too
    path = Path(run_dir) / "metrics.jsonl"
    records = jsonl.read(path, repair=True)
    kept = [r for r in records if not (isinstance(r.get(key), int) and r[key] > last)]
    if len(kept) < len(records):
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return len(records) - len(kept)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file aside and rename it: readers never see a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(obj, path: str | os.PathLike) -> None:
    """torch.save written aside, then renamed: a kill never leaves a half-written checkpoint."""
    import torch  # only the training recipes need it; keep `agentprm envs` & co. light

    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    """The random states a resumed run must restore to equal an uninterrupted one (python, numpy,
    torch CPU and, when present, CUDA): store it in every checkpoint."""
    import random

    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict | None) -> None:
    """Restore rng_state()'s output (None, from an older checkpoint, restores nothing)."""
    if not state:
        return
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_model(model, tokenizer, out: str | os.PathLike) -> Path:
    """save_pretrained of model and tokenizer into `out`, written aside (out.tmp) and renamed."""
    out = Path(out)
    tmp = out.with_suffix(".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def run_stage(run: str | os.PathLike, name: str, stage_args, fn, label: str) -> None:
    """One stage of a composed recipe (demo, reproduce): fn(stage_args), unless run/.done/<name> says
    it finished with the same arguments (NEUTRAL_ARGS aside: a study resumed with other --threads
    skips its finished stages). The marker keeps the arguments and the seconds it took; a finished
    stage whose arguments changed raises RunDirError naming them (a field the stage's
    recipe gained since, absent from the marker, ran as its default then). Messages start [label].
    """
    run = Path(run)
    marker = run / ".done" / name
    wanted = json.loads(json.dumps(jsonable(dataclasses.asdict(stage_args)), default=str))
    if marker.exists():
        done = json.loads(marker.read_text()).get("args", {})
        # NEUTRAL_ARGS (threads, save_every, ...) change how fast a stage runs, not what it wrote.
        changed = sorted(k for k in set(wanted) & set(done) - NEUTRAL_ARGS if wanted[k] != done[k])
        changed += sorted(set(done) - set(wanted))  # a field the recipe lost
        if changed:
            raise RunDirError(
                f"stage {name} of {run} finished with other arguments ({', '.join(changed)}); "
                f"use another --run-dir, or --overwrite to start afresh"
            )
        print(f"[{label}] {name}: done before, skipped")
        return
    start = time.time()
    print(f"[{label}] {name} ...")
    fn(stage_args)
    marker.parent.mkdir(exist_ok=True)
    seconds = round(time.time() - start, 1)
    atomic_write_text(marker, json.dumps({"args": wanted, "seconds": seconds}))
    log_metrics(run, {"stage": name, "seconds": seconds})
    print(f"[{label}] {name}: {seconds:.0f}s")
