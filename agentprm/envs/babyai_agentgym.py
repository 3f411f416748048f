"""AgentGym-exact BabyAI: each observable difference between AgentGym's BabyAI server (and its
agentenv client) and this project's BabyAI, behind one named switch.

The paper's BabyAI numbers come from AgentGym's server (agentenv-babyai). The project's env fixes
several of its bugs (agentprm.envs.babyai's docstring); `BabyAITextEnv(compat="agentgym")`, the
gym id agentprm/BabyAI-AgentGym-v0 and the short name "babyai-agentgym" turn every switch below on
and so reproduce AgentGym's episodes, bugs included. The behaviour was learnt from AgentGym's source
(WooooDyy/AgentGym, agentenv-babyai/agentenv_babyai/environment.py and
agentenv/agentenv/envs/babyai.py) and re-implemented here; no upstream code is copied.

Switches (True = AgentGym's behaviour; the default env has all of them False):
  trailing_moves_after_done  a command's primitives all run, even after minigrid reports success,
                             and the LAST primitive's reward/done is the command's: "toggle and go
                             through red closed door 1" on OpenRedDoor opens the door (success), then
                             steps into it: reward 0, done False.
  done_reset_quirk           when minigrid ends the episode, "\\n The task is completed." is appended
                             (a failure too), then done is set back to False if the reward is <= 0.5.
  sticky_reward              a step that runs no primitive (an error, "check", an empty command)
                             reports the previous command's reward again (the server keeps it).
  no_pickup_alias            "pick up red ball 1" is not recognized (only "pickup ...").
  empty_action_for_missing   a response without "Action:" sends "" -> "No change in state."
  keep_eos_suffix            "Action: turn left</s>" is not cleaned: the client keeps only
                             [A-Za-z0-9, ], so the command becomes "turn lefts" (not recognized).
  no_step_limit              minigrid's own step limit (max_steps) is ignored: the episode goes on,
                             and a late success earns 1 - 0.9 * steps / max_steps <= 0.1 (so with
                             done_reset_quirk it does not end the episode).
  stale_first_obs            the first observation is described from the image minigrid's reset()
                             returned; PutNextS7N4Carrying moves the carried object into the agent's
                             hands after building that image, so the object is still listed in the room.
  offbyone_search_window     the path search may use one extra line of cells the agent cannot see:
                             behind it when it faces right or down, on its right when it faces down or
                             left (only facing up is exact).
  agentgym_numbering         "pickup"/"go to" commands number objects among the REACHABLE objects of
                             that name (the description numbers all of them).
  agentgym_path_choice       the path search re-queues states and keeps the LAST parent found for a
                             state before it is expanded: among paths it picks another one (sometimes
                             a longer one) than the first-found shortest path.
  dict_in_door_error         "no path" errors for closed/locked doors print the door counter dict:
                             "... red closed door {'red closed door': 1}, as there is no path ...".

Not reproduced: AgentGym answers a step after done with an HTTP error object (the project's envs
answer "The episode has ended..."), and its "reward == 1 and not done" repair is unreachable with
minigrid's rewards (always < 1).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, fields

import numpy as np
from minigrid.core.constants import DIR_TO_VEC

from agentprm.envs.react import ONLY_ONE_ACTION, Parsed, parse_react

FORWARD, LEFT, RIGHT = 2, 0, 1  # minigrid's primitive action numbers (as in agentprm.envs.babyai)


@dataclass(frozen=True)
class AgentGymQuirks:
    """Which of AgentGym's BabyAI behaviours to reproduce (see the module docstring).

    >>> AgentGymQuirks().trailing_moves_after_done, AGENTGYM.trailing_moves_after_done
    (False, True)
    """

    trailing_moves_after_done: bool = False
    done_reset_quirk: bool = False
    sticky_reward: bool = False
    no_pickup_alias: bool = False
    empty_action_for_missing: bool = False
    keep_eos_suffix: bool = False
    no_step_limit: bool = False
    stale_first_obs: bool = False
    offbyone_search_window: bool = False
    agentgym_numbering: bool = False
    agentgym_path_choice: bool = False
    dict_in_door_error: bool = False

    @classmethod
    def all_on(cls) -> AgentGymQuirks:
        return cls(**{f.name: True for f in fields(cls)})

    def only(self, *names: str) -> AgentGymQuirks:
        """All switches off except `names` (tests isolate one behaviour with it).

        >>> AgentGymQuirks().only("no_pickup_alias").no_pickup_alias
        True
        """
        unknown = set(names) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown AgentGym switches {sorted(unknown)}")
        return AgentGymQuirks(**{n: True for n in names})


PROJECT = AgentGymQuirks()
AGENTGYM = AgentGymQuirks.all_on()
COMPAT_MODES = {None: PROJECT, "agentgym": AGENTGYM}


def quirks_for(compat: str | None, quirks: AgentGymQuirks | None = None) -> AgentGymQuirks:
    """The env kwargs compat= / quirks= -> the switches (quirks, when given, wins).

    >>> quirks_for("agentgym") == AGENTGYM, quirks_for(None) == PROJECT
    (True, True)
    """
    if compat not in COMPAT_MODES:
        raise ValueError(f"unknown BabyAI compat mode {compat!r}: choose None or 'agentgym'")
    return quirks if quirks is not None else COMPAT_MODES[compat]


# -- the client's response parsing ---------------------------------------------------------------
_ACTION_LINE = re.compile(r"Action:\s*(.*?)(?=\n|$)", re.DOTALL)
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9, ]+")


def parse_response(response: str, quirks: AgentGymQuirks) -> Parsed:
    """The command AgentGym's BabyAI client would send for a response, under `quirks`.

    Only empty_action_for_missing and keep_eos_suffix change anything; otherwise this is
    agentprm.envs.react.parse_react (two "Action:" lines are an error observation in both).

    >>> parse_response("Action: turn left</s>", AGENTGYM).action
    'turn lefts'
    >>> parse_response("Thought: hmm", AGENTGYM).action
    ''
    >>> parse_response("Action: turn left</s>", PROJECT).action
    'turn left'
    """
    if not isinstance(response, str) or not (quirks.empty_action_for_missing or quirks.keep_eos_suffix):
        return parse_react(response)
    if not quirks.keep_eos_suffix and response.endswith("</s>"):
        response = response[: -len("</s>")]
    matches = _ACTION_LINE.findall(response)
    if len(matches) > 1:
        return Parsed(None, ONLY_ONE_ACTION)
    if not matches and not quirks.empty_action_for_missing:
        return parse_react(response)  # the project's "No 'Action' found" observation
    action = matches[0] if matches else ""
    return Parsed(" ".join(_NOT_ALLOWED.sub("", action).split()), None)


# -- the path search -------------------------------------------------------------------------------
def search_window(pos, direction: int, offbyone: bool) -> set[tuple[int, int]]:
    """Absolute cells the path search may use: the 7x7 view (6 rows ahead, 3 columns each side).

    AgentGym derives the window from range() bounds that are one too wide for three facings: it
    adds the row just behind the agent when facing right (0) or down (1), and a 4th column on the
    agent's right when facing down (1) or left (2). Those cells were never seen, so a path may run
    through an unseen wall (the command then stops where minigrid blocks it).

    >>> len(search_window((8, 8), 3, False)), len(search_window((8, 8), 1, True))
    (49, 64)
    """
    f = np.array(DIR_TO_VEC[direction])
    r = np.array(DIR_TO_VEC[(direction + 1) % 4])
    behind = offbyone and direction in (0, 1)
    extra_right = offbyone and direction in (1, 2)
    cells = set()
    for front in range(-1 if behind else 0, 7):
        for right in range(-3, 5 if extra_right else 4):
            x, y = (int(v) for v in np.array(pos) + f * front + r * right)
            if offbyone or (x >= 0 and y >= 0):  # AgentGym keeps off-grid cells in its ranges
                cells.add((x, y))
    return cells


def _next_state(state, action: int):
    (x, y), d = state
    if action == FORWARD:
        dx, dy = DIR_TO_VEC[d]
        return (x + int(dx), y + int(dy)), d
    return (x, y), ((d - 1) % 4 if action == LEFT else (d + 1) % 4)


def search_path(start, is_goal, blocked, inside, agentgym_choice: bool) -> list[int] | None:
    """Breadth-first search over (cell, facing) with moves forward, left, right (in that order).

    start: ((x, y), direction); is_goal(state) -> bool; blocked/inside: sets of cells.
    Returns the primitive actions to the first goal state taken off the queue, or None.

    Project rule: a state keeps the parent that found it first, so the path is a shortest one.
    AgentGym's rule (agentgym_choice): a state is only marked seen when it is taken off the queue,
    so it may be queued again meanwhile, and each queuing overwrites its parent; the goal state is
    the same, but the path back follows the last parent, which can make it longer.

    >>> search_path(((1, 1), 0), lambda s: s[0] == (3, 1), set(), {(1, 1), (2, 1), (3, 1)}, False)
    [2, 2]
    """
    parent: dict = {start: None}
    expanded: set = set()
    queue = deque([start])
    while queue:
        state = queue.popleft()
        expanded.add(state)
        if is_goal(state):
            path = []
            while state != start:
                state, action = parent[state]
                path.append(action)
            return path[::-1]
        for action in (FORWARD, LEFT, RIGHT):
            nxt = _next_state(state, action)
            if nxt[0] not in inside or nxt[0] in blocked:
                continue
            if agentgym_choice:
                if nxt in expanded:
                    continue
            elif nxt in parent:
                continue
            parent[nxt] = (state, action)
            queue.append(nxt)
    return None


# -- running a command -----------------------------------------------------------------------------
def wins(reward: float, terminated: bool, quirks: AgentGymQuirks) -> bool:
    """Whether a command's outcome (from run_primitives) ends the episode with a success.

    >>> wins(0.4, True, PROJECT), wins(0.4, True, AGENTGYM), wins(0.6, True, AGENTGYM)
    (True, False, True)
    """
    return terminated and reward > (0.5 if quirks.done_reset_quirk else 0.0)


def run_primitives(env, macro: list[int], quirks: AgentGymQuirks, image=None) -> tuple[float, bool, bool]:
    """Execute a command's primitives on a minigrid env -> (reward, terminated, truncated).

    Both modes stop when a primitive changes nothing in the agent's view (e.g. `forward` into a
    closed door), comparing with `image` (default: the current view). The project's mode also
    stops when the episode ends and sums the rewards; trailing_moves_after_done runs on and
    returns the last primitive's reward and termination; no_step_limit never reports truncation.
    """
    reward, terminated, truncated = 0.0, False, False
    image = env.gen_obs()["image"] if image is None else image
    for primitive in macro:
        obs, r, terminated, truncated, _ = env.step(primitive)
        reward = float(r) if quirks.trailing_moves_after_done else reward + float(r)
        if quirks.no_step_limit:
            truncated = False
        if (terminated and not quirks.trailing_moves_after_done) or truncated:
            break
        if np.array_equal(obs["image"], image):
            break
        image = obs["image"]
    return reward, terminated, truncated
