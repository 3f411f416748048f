"""Pinned train/test splits of task indices, fixed here so every run uses the same tasks.

BabyAI: task i -> level (i % 40) + 1 with seed i // 40.
  test  = 0..89     (levels 1-40 with seed 0, levels 1-40 with seed 1, levels 1-10 with seed 2):
          90 tasks covering all 40 levels, the size of AgentGym's BabyAI eval set.
  train = 400..4399 (seeds 10..109 of every level): disjoint from test, and from the first 400
          indices used by the expert acceptance check.
  test_large = 0..199 (seeds 0-4 of every level): 200 tasks, 5 per level, for comparisons that must
          separate 5-point differences (`agentprm reproduce`); holds `test` and stays disjoint
          from train.
  test_short / train_short = the same splits restricted to the 13 short-horizon levels (GoTo*,
          OpenRedDoor, OpenDoorLoc, PickupLoc, PickupDistDebug, ActionObjDoor; the expert needs <= 2.1
          rounds on average): 33 test tasks. `agentprm demo` uses them to fit 20 CPU minutes.
  test_short_large = the 13 short-horizon levels with seeds 110-125 (indices 4400-5039): 208 tasks,
          16 per level, disjoint from train (seeds 10-109) and test (seeds 0-2); the CPU-scale
          `agentprm reproduce` evaluates on it.
TextCraft: task i -> goals[i], the 544 goals of depth >= 1 in AgentGym's order (depth, then recipe
  file order; envs/textcraft.py).
  test  = 97 goals spread evenly over the depth-sorted list: round(k * 544 / 97), k = 0..96.
  train = the other 447 goals.
  agenteval = AgentGym's AgentEval TextCraft test ids, 0-30, 140-180, 420-444, 533-535 (100 ids:
          31 / 41 / 25 / 3 goals of depth 1 / 2 / 3 / 4). Upstream the goal behind an id inside a
          depth depends on the server's file order (os.listdir), so across AgentGym installations
          only this depth composition is reproducible; here the ids name the goals of sorted file
          order. It overlaps both `test` and `train`: a policy or PRM trained on `train` and
          evaluated on `agenteval` has seen some of its goals (the `agenteval_unseen` split drops
          them).

WebShop: task i -> goals[i], AgentGym's synthetic goals in its order (envs/webshop/goals.py).
  test  = AgentEval's 200 WebShop test ids; train = every other goal (6710 on the embedded catalogue).

Math (envs/math/data.py):
  math (the built-in generator, 5000 tasks): test = 0..199 (every template about 22 times),
          train = 200..4999 (a train task never repeats a test question: data.builtin_problem).
  gsm-symbolic (2200 tasks): test = 0..199 (reasoning-gym seed 1000000), train = 200..2199 (seed 0)
          without 383 and 2006, whose questions are test questions (reasoning-gym 0.1.25).
  gsm8k (the user's data): test / train = the problems of test.jsonl / train.jsonl in the folder
          $AGENTPRM_MATH_DATA names (test first), or `all` for a single file.

parse_tasks reads a --tasks argument strictly: anything but a split name, a non-empty range or a
list of distinct valid indices is a ValueError that says what to write instead.
"""

from __future__ import annotations

import re

from agentprm.envs import family
from agentprm.envs.math.data import (
    BUILTIN_NUM_TASKS,
    BUILTIN_TEST,
    GSM_SYMBOLIC_NUM_TASKS,
    GSM_SYMBOLIC_TEST,
)
from agentprm.types import NUM_TASKS

# Both counts live in agentprm.types, whose record checks must agree with the envs.
TEXTCRAFT_NUM_GOALS = NUM_TASKS["textcraft"]
# 0-based positions in envs.babyai.LEVELS (a task's level is LEVELS[i % 40]).
BABYAI_SHORT_LEVELS = (0, 1, 2, 3, 4, 8, 9, 10, 12, 13, 18, 19, 29)


def _babyai() -> dict[str, list[int]]:
    test, train = list(range(90)), list(range(400, 4400))
    short = set(BABYAI_SHORT_LEVELS)
    return {
        "test": test,
        "train": train,
        "test_large": list(range(200)),
        "test_short_large": [i for i in range(4400, 5040) if i % 40 in short],
        "test_short": [i for i in test if i % 40 in short],
        "train_short": [i for i in train if i % 40 in short],
    }


def _textcraft() -> dict[str, list[int]]:
    test = sorted({round(k * TEXTCRAFT_NUM_GOALS / 97) for k in range(97)})
    test_set = set(test)
    train = [i for i in range(TEXTCRAFT_NUM_GOALS) if i not in test_set]
    agenteval = [*range(0, 31), *range(140, 181), *range(420, 445), *range(533, 536)]
    unseen = [i for i in agenteval if i in test_set]
    return {"test": test, "train": train, "agenteval": agenteval, "agenteval_unseen": unseen}


# gsm_symbolic train items whose question is a test item's (data.GSM_SYMBOLIC_* seeds, reasoning-gym
# 0.1.25; tests/test_math.py checks it when reasoning-gym is installed).
GSM_SYMBOLIC_TEST_DUPLICATES = (383, 2006)


def _math() -> dict[str, list[int]]:
    return {"test": list(range(BUILTIN_TEST)), "train": list(range(BUILTIN_TEST, BUILTIN_NUM_TASKS))}


def _gsm_symbolic() -> dict[str, list[int]]:
    train = range(GSM_SYMBOLIC_TEST, GSM_SYMBOLIC_NUM_TASKS)
    return {
        "test": list(range(GSM_SYMBOLIC_TEST)),
        "train": [i for i in train if i not in GSM_SYMBOLIC_TEST_DUPLICATES],
    }


SPLITS: dict[str, dict[str, list[int]]] = {
    "babyai": _babyai(),
    "textcraft": _textcraft(),
    "math": _math(),
    "gsm-symbolic": _gsm_symbolic(),
}


def _webshop() -> tuple[dict[str, list[int]], int]:
    """WebShop's splits and task count: they depend on the data (the embedded catalogue or the
    user's files), so they are read from the loaded shop (envs/webshop/goals.py pins them)."""
    from agentprm.envs.webshop import goals
    from agentprm.envs.webshop.env import load_shop

    n = len(load_shop().goals)
    out = {}
    for name in ("test", "train"):
        try:
            out[name] = goals.split(name, n)
        except ValueError:  # too few goals for AgentEval's ids: ranges still work, split() says why
            pass
    return out, n


def _gsm8k() -> tuple[dict[str, list[int]], int]:
    """The user's GSM8K data's splits and task count (data.user_problems); none without data."""
    from agentprm.envs.math.data import user_problems

    user = user_problems()
    return user.splits, len(user.problems)


def splits_of(env: str) -> tuple[dict[str, list[int]], int]:
    """(pinned splits, number of tasks) of an env family ("babyai", "textcraft", "webshop", "math",
    "gsm-symbolic", "gsm8k")."""
    if env == "webshop":
        return _webshop()
    if env == "gsm8k":
        return _gsm8k()
    return SPLITS[env], NUM_TASKS[env]


def split(env: str, name: str) -> list[int]:
    """Task indices of a pinned split; env and name in any case. >>> len(split("babyai", "test"))  # 90"""
    env = family(env)  # a variant (babyai-agentgym) shares its family's splits
    splits, n = splits_of(env)
    if name.lower() not in splits:
        if env == "webshop" and name.lower() in ("test", "train"):
            from agentprm.envs.webshop import goals

            goals.split(name.lower(), n)  # raises the reason (too few goals in the user's files)
        raise ValueError(f"unknown split {name!r} for {env}: choose one of {sorted(splits)}")
    return list(splits[name.lower()])


# ASCII digits only: int() would also take "+3", "3_0", " 3" and other scripts' digits.
_DIGITS = re.compile(r"[0-9]+")
_NAME = re.compile(r"[A-Za-z]")


def _index(text: str, num_tasks: int, end: bool = False) -> int:
    """One written index -> int; ValueError(reason) unless 0 <= i < num_tasks (<= for a range end)."""
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"{text!r:.40} is not a task index (a whole number >= 0)")
    limit = num_tasks + 1 if end else num_tasks
    # Compare lengths first: int() refuses strings over 4300 digits, and none is in range anyway.
    if len(text.lstrip("0")) > len(str(limit)) or int(text) >= limit:
        if end:
            raise ValueError(
                f"the range end {text:.40} is past the last task (an end excluded is <= {num_tasks})"
            )
        raise ValueError(f"task {text:.40} is out of range ({num_tasks} tasks: 0 <= i < {num_tasks})")
    return int(text)


def _range(lo_text: str, hi_text: str, num_tasks: int, end_included: bool) -> list[int]:
    """The range a:b (end excluded) or a-b (end included) -> its indices; ValueError(reason) if empty."""
    sign = "-" if end_included else ":"
    if not lo_text.strip() or not hi_text.strip():
        raise ValueError(
            f"the range {lo_text.strip()}{sign}{hi_text.strip()} needs a start and an end (indices are >= 0)"
        )
    lo = _index(lo_text, num_tasks)
    hi = _index(hi_text, num_tasks, end=not end_included) + (1 if end_included else 0)
    if hi <= lo:
        raise ValueError(f"the range {lo_text.strip()}{sign}{hi_text.strip()} is empty or reversed")
    return list(range(lo, hi))


def _listed(spec: str, num_tasks: int, env: str) -> list[int]:
    """The list 1,5,9 -> [1, 5, 9]; ValueError(reason) on an empty item or a repeated index.
    For TextCraft an item may be a goal's name ("gold ingot")."""
    tasks: list[int] = []
    seen: set[int] = set()
    for item in spec.split(","):
        if not item.strip():
            raise ValueError("it has an empty item (two commas in a row, or one at an end)")
        if env == "textcraft" and _NAME.search(item):  # "3.5" or "+3" stays a bad index
            from agentprm.envs.textcraft import task_of_goal  # the tree loads only when needed

            task = task_of_goal(item)
        else:
            task = _index(item, num_tasks)
        if task in seen:
            # A repeated task would be played twice under the same (task, sample) resume key.
            raise ValueError(f"task {task} is listed twice")
        seen.add(task)
        tasks.append(task)
    return tasks


def parse_tasks(env: str, spec: str) -> list[int]:
    """A split name ("test"), a range ("0:400" end excluded, "0-399" end included) or a list of
    distinct indices ("1,5,9") -> task indices; env is a short name or id, in any case.

    Raises ValueError naming the split names and the valid index range for anything else: an empty
    spec, an empty or reversed range ("5:2", "3-1"), an index outside the env's tasks, "1,,2".

    >>> parse_tasks("babyai", "0:3")
    [0, 1, 2]
    >>> parse_tasks("BabyAI", "3-5")
    [3, 4, 5]
    >>> parse_tasks("textcraft", "0:545")
    Traceback (most recent call last):
    ...
    ValueError: cannot read tasks '0:545' for textcraft: the range end 545 is past the last task (an end excluded is <= 544). Give a split name (agenteval, agenteval_unseen, test, train), a range like 0:400 (end excluded) or 0-399 (end included), or a list like 1,5,9 of distinct indices 0 <= i < 544 or goal names ('gold ingot,stick')
    """
    env = family(env)  # a variant (babyai-agentgym) shares its family's splits
    splits, num_tasks = splits_of(env)
    text = spec.strip() if isinstance(spec, str) else ""
    if text.lower() in splits:
        return split(env, text)
    try:
        if not isinstance(spec, str):
            raise ValueError(f"it is a {type(spec).__name__}, not a string")
        if not text:
            raise ValueError("it is empty")
        if ":" in text:
            return _range(*text.split(":", 1), num_tasks, end_included=False)
        if "-" in text:
            return _range(*text.split("-", 1), num_tasks, end_included=True)
        return _listed(text, num_tasks, env)
    except ValueError as e:
        names = ", ".join(sorted(splits))
        raise ValueError(
            f"cannot read tasks {spec!r:.80} for {env}: {e}. Give a split name ({names}), a range like "
            f"0:400 (end excluded) or 0-399 (end included), or a list like 1,5,9 of distinct indices "
            f"0 <= i < {num_tasks}" + (" or goal names ('gold ingot,stick')" if env == "textcraft" else "")
        ) from None
