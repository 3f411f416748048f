"""Pinned train/test splits of task indices, fixed here so every run uses the same tasks.

BabyAI: task i -> level (i % 40) + 1 with seed i // 40.
  test  = 0..89     (levels 1-40 with seed 0, levels 1-40 with seed 1, levels 1-10 with seed 2):
          90 tasks covering all 40 levels, the size of AgentGym's BabyAI eval set.
  train = 400..4399 (seeds 10..109 of every level): disjoint from test, and from the first 400
          indices used by the expert acceptance check.
  test_short / train_short = the same splits restricted to the 13 short-horizon levels (GoTo*,
          OpenRedDoor, OpenDoorLoc, PickupLoc, PickupDistDebug, ActionObjDoor; the expert needs <= 2.1
          rounds on average): 33 test tasks. `agentprm demo` uses them to fit 20 CPU minutes.
TextCraft: task i -> goals[i], the 544 goals of depth >= 1 sorted by (depth, name).
  test  = 97 goals spread evenly over the depth-sorted list: round(k * 544 / 97), k = 0..96.
  train = the other 447 goals.
"""

from __future__ import annotations

TEXTCRAFT_NUM_GOALS = 544
# 0-based positions in envs.babyai.LEVELS (a task's level is LEVELS[i % 40]).
BABYAI_SHORT_LEVELS = (0, 1, 2, 3, 4, 8, 9, 10, 12, 13, 18, 19, 29)


def _babyai() -> dict[str, list[int]]:
    test, train = list(range(90)), list(range(400, 4400))
    short = set(BABYAI_SHORT_LEVELS)
    return {
        "test": test,
        "train": train,
        "test_short": [i for i in test if i % 40 in short],
        "train_short": [i for i in train if i % 40 in short],
    }


def _textcraft() -> dict[str, list[int]]:
    test = sorted({round(k * TEXTCRAFT_NUM_GOALS / 97) for k in range(97)})
    test_set = set(test)
    train = [i for i in range(TEXTCRAFT_NUM_GOALS) if i not in test_set]
    return {"test": test, "train": train}


SPLITS: dict[str, dict[str, list[int]]] = {"babyai": _babyai(), "textcraft": _textcraft()}


def split(env: str, name: str) -> list[int]:
    """Task indices of a pinned split. >>> len(split("babyai", "test"))  # 90"""
    if env not in SPLITS:
        raise ValueError(f"no splits for environment {env!r}: choose one of {sorted(SPLITS)}")
    if name not in SPLITS[env]:
        raise ValueError(f"unknown split {name!r} for {env}: choose one of {sorted(SPLITS[env])}")
    return list(SPLITS[env][name])


def parse_tasks(env: str, spec: str) -> list[int]:
    """A split name ("test"), a range ("0:400", "0-399"), a list ("1,5,9") -> task indices.

    >>> parse_tasks("babyai", "0:3")
    [0, 1, 2]
    >>> parse_tasks("babyai", "3-5")
    [3, 4, 5]
    """
    spec = spec.strip()
    if env in SPLITS and spec in SPLITS[env]:
        return split(env, spec)
    try:
        if ":" in spec:
            lo, hi = spec.split(":", 1)
            return list(range(int(lo), int(hi)))
        if "-" in spec and not spec.startswith("-"):
            lo, hi = spec.split("-", 1)
            return list(range(int(lo), int(hi) + 1))
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        names = ", ".join(sorted(SPLITS.get(env, {})))
        raise ValueError(
            f"cannot read tasks {spec!r}: give a split name ({names}), a range like 0:400 "
            f"(end excluded) or 0-399 (end included), or a list like 1,5,9"
        ) from None
