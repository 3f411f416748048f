"""BabyAI as a text environment (AgentGym-compatible), on minigrid 3.2.

Task index i -> level LEVELS[i % 40] with seed i // 40 (AgentGym's numbering; agentprm/envs/splits.py).
Observation = a description of the agent's 7x7 egocentric view + the list of available high-level
commands. A high-level command is a macro of minigrid primitive actions found by BFS over
(position, direction) in the visible window; see `describe`.

Deviations from AgentGym's server, all deliberate and tested:
- Object numbering in "pickup"/"go to" commands always equals the description's numbering
  (upstream counts only reachable objects there, so "pickup red ball 1" could mean the
  description's "red ball 2").
- BFS returns a shortest path (upstream's BFS can return a longer one when a state is reached twice).
- A macro stops as soon as the episode terminates (upstream kept stepping after success).
- done is not reset to False when the success reward is <= 0.5 (an upstream quirk): success is
  minigrid's own verdict. A failed mission (e.g. picking up the wrong object in some levels) ends
  the episode with reward 0 and "The task has failed." in the observation.
- The upstream error text for an unreachable door printed a Python dict; ours names the door.
Each of these, and the rest of AgentGym's observable behaviour (its search window, trailing moves,
step limit, response parsing), is one switch of agentprm.envs.babyai_agentgym.AgentGymQuirks:
BabyAITextEnv(compat="agentgym") (env "babyai-agentgym") reproduces AgentGym's server exactly.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import gymnasium as gym
import minigrid
import numpy as np
from minigrid.core.constants import DIR_TO_VEC, IDX_TO_COLOR, IDX_TO_OBJECT, STATE_TO_IDX
from minigrid.envs.babyai import GoToObj

from agentprm.envs.babyai_agentgym import (
    PROJECT,
    AgentGymQuirks,
    parse_response,
    quirks_for,
    run_primitives,
    search_path,
    search_window,
    wins,
)
from agentprm.envs.base import EPISODE_OVER, TextEnv

LEVELS = (
    "GoToRedBallGrey",
    "GoToRedBall",
    "GoToRedBallNoDists",
    "GoToObjS6",
    "GoToLocalS8N7",
    "GoToObjMazeS7",
    "GoToImpUnlock",
    "GoToSeqS5R2",
    "GoToRedBlueBall",
    "GoToDoor",
    "GoToObjDoor",
    "Open",
    "OpenRedDoor",
    "OpenDoorLoc",
    "OpenRedBlueDoorsDebug",
    "OpenDoorsOrderN4Debug",
    "Pickup",
    "UnblockPickup",
    "PickupLoc",
    "PickupDistDebug",
    "PickupAbove",
    "PutNextLocalS6N4",
    "PutNextS7N4Carrying",
    "Unlock",
    "UnlockLocalDist",
    "KeyInBox",
    "UnlockPickupDist",
    "BlockedUnlockPickup",
    "UnlockToUnlock",
    "ActionObjDoor",
    "FindObjS7",
    "KeyCorridorS6R3",
    "OneRoomS20",
    "MoveTwoAcrossS8N9",
    "SynthS5R2",
    "SynthLoc",
    "SynthSeq",
    "MiniBossLevel",
    "BossLevel",
    "BossLevelNoUnlock",
)
NUM_LEVELS = len(LEVELS)
# Seeds per level exposed as task indices; any seed works, this only bounds the index space.
SEEDS_PER_LEVEL = 10_000

SYSTEM_PROMPT = (
    "You are an exploration master that wants to finish every goal you are given. Every round I will "
    "give you an observation, and you have to respond an action and your thought based on the "
    "observation to finish the given task. You are placed in a room and you need to accomplish the "
    "given goal with actions.\n\nYou can use the following actions: \n\n- turn right \n\n- turn left "
    "\n\n- move forward \n\n- go to <obj> <id> \n\n- pick up <obj> <id> \n\n- go through <door> <id>: "
    "<door> must be an open door. \n\n- toggle and go through <door> <id>: <door> can be a closed door "
    "or a locked door. If you want to open a locked door, you need to carry a key that is of the same "
    "color as the locked door. \n\n- toggle: there is a closed or locked door right in front of you "
    "and you can toggle it.\nYour response should use the following format:\nThought:\n<Your Thought>"
    "\n\nAction:\n<Your Action>"
)

NOT_RECOGNIZED = "The action is not recognized. Please check valid actions."
NO_CHANGE = "No change in state."
COMPLETED = "\n The task is completed."
FAILED = "\n The task has failed."

LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE = 0, 1, 2, 3, 4, 5
IDX_TO_STATE = {v: k for k, v in STATE_TO_IDX.items()}
VIEW = 7  # minigrid's agent_view_size for every BabyAI level
AGENT = (VIEW // 2, VIEW - 1)  # the agent's cell in the egocentric image, facing "up" (-j)
_LISTED = ("door", "key", "ball", "box", "goal", "lava")
_BLOCKING = ("wall", "box", "lava", "ball", "key")  # cells a macro path may not enter


def level_of(task: int) -> tuple[int, str, int]:
    """Task index -> (level number 1..40, level name, seed). >>> level_of(41) -> (2, 'GoToRedBall', 1)"""
    return task % NUM_LEVELS + 1, LEVELS[task % NUM_LEVELS], task // NUM_LEVELS


def make_level(name: str) -> minigrid.minigrid_env.MiniGridEnv:
    """The unwrapped minigrid env of a level (GoToObjS6-v0 is deprecated: GoToObj(room_size=4) is it)."""
    if name == "GoToObjS6":
        return GoToObj(room_size=4)
    return gym.make(f"BabyAI-{name}-v0").unwrapped


def goal_text(mission: str) -> str:
    """AgentGym's goal rewording: 'then' -> 'and', 'after you' -> 'and'."""
    return mission.replace("then", "and").replace("after you", "and")


@dataclass
class _Obj:
    name: str  # "red ball", "blue closed door", "wall"
    kind: str  # object type
    pos: tuple[int, int]  # absolute grid position
    front: int  # steps in front of the agent
    right: int  # steps to the agent's right (negative: left)
    dist: int  # Manhattan distance


@dataclass
class View:
    """What the agent sees and can do: the text, each command's primitive macro, error messages."""

    description: str
    macros: dict[str, list[int]]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def available_actions(self) -> list[str]:
        return list(self.macros)


def _scan(env, image=None) -> tuple[list[_Obj], list[_Obj]]:
    """Objects in `image` (default: the current view), near to far, and barriers straight ahead."""
    if image is None:
        image = env.gen_obs()["image"]  # (7, 7, 3): object, colour, state; agent at AGENT facing -j
    pos = np.array(env.agent_pos)
    f_vec, r_vec = np.array(env.dir_vec), np.array(env.right_vec)
    objs, barriers = [], []
    for j in range(VIEW):  # far row first, as upstream, so ties in distance keep this order
        for i in range(VIEW):
            front, right = AGENT[1] - j, i - AGENT[0]
            ax, ay = (int(v) for v in pos + f_vec * front + r_vec * right)
            if ax < 0 or ay < 0:
                continue
            if front == 0 and right == 0:  # the agent's cell shows what it carries
                continue
            kind = IDX_TO_OBJECT[int(image[i, j, 0])]
            color = IDX_TO_COLOR[int(image[i, j, 1])]
            if kind in _LISTED or kind == "wall":
                name = (
                    f"{color} {IDX_TO_STATE[int(image[i, j, 2])]} door"
                    if kind == "door"
                    else f"{color} {kind}"
                )
                objs.append(_Obj(name, kind, (ax, ay), front, right, front + abs(right)))
            if kind in ("box", "wall") and right == 0:
                barriers.append(_Obj(kind, kind, (ax, ay), front, 0, front))
    objs.sort(key=lambda o: o.dist)  # stable: equal distances stay in scan order
    barriers.sort(key=lambda o: o.front)
    return objs, barriers


def _bfs(env, goal: tuple[int, int], objs: list[_Obj], quirks: AgentGymQuirks, arrive: bool):
    """A primitive path (forward, left, right) to stand on `goal` (arrive) or to face it, or None.

    Blocked cells: wall, box, lava, ball, key; the search stays inside the visible window. Doors
    are not blocked (a closed door simply stops the macro when `forward` fails, as upstream).
    The project's search returns a shortest path; quirks.agentgym_path_choice and
    quirks.offbyone_search_window reproduce AgentGym's (agentprm.envs.babyai_agentgym).
    """
    blocked = {o.pos for o in objs if o.kind in _BLOCKING}
    start = (tuple(int(v) for v in env.agent_pos), int(env.agent_dir))
    inside = search_window(start[0], start[1], quirks.offbyone_search_window)

    def is_goal(state) -> bool:
        (x, y), d = state
        dx, dy = DIR_TO_VEC[d]
        return (x, y) == goal if arrive else (x + int(dx), y + int(dy)) == goal

    return search_path(start, is_goal, blocked, inside, quirks.agentgym_path_choice)


def describe(env, quirks: AgentGymQuirks = PROJECT, image=None) -> View:
    """Describe a minigrid BabyAI env's current state in AgentGym's words, with command macros.

    image: the view to describe (default: the current one; AgentGym's stale first observation
    passes the image reset() returned). quirks: AgentGym's numbering, path search and messages.

    Example (task 1: GoToRedBall seed 0) description:
        "In front of you in this room, you can see several objects: There is a grey box 1 ...
         The room has walls around you. You are facing a wall 6 steps away. You are not carrying anything."
    """
    objs, barriers = _scan(env, image)
    carrying = env.carrying
    listed = [o for o in objs if o.kind != "wall"]
    number: dict[int, int] = {}  # id(obj) -> its per-name counter in the description
    counts: dict[str, int] = {}
    for o in listed:
        counts[o.name] = counts.get(o.name, 0) + 1
        number[id(o)] = counts[o.name]

    text = _description(listed, number, barriers, carrying, bool(objs))
    macros: dict[str, list[int]] = {"turn left": [LEFT], "turn right": [RIGHT]}
    errors: dict[str, str] = {}
    if not barriers or barriers[0].front > 1:
        macros["move forward"] = [FORWARD]
    else:
        errors["move forward"] = "There is a barrier in front of you, you can't move forward."

    def path_to(o: _Obj, arrive: bool = False):
        return _bfs(env, o.pos, objs, quirks, arrive)

    if carrying is None:
        targets = [o for o in listed if o.kind not in ("door", "goal")]
        _object_commands("pickup", targets, number, path_to, quirks, macros, errors)
        errors["drop"] = "You cannot drop the object, as you are not carrying anything."
    else:
        ahead = tuple(int(v) for v in np.array(env.agent_pos) + np.array(env.dir_vec))
        if any(o.pos == ahead and o.kind in _BLOCKING for o in objs):
            errors["drop"] = "You cannot drop the object, as there is already an object in front of you."
        else:
            macros["drop"] = [DROP]

    _door_commands(listed, number, carrying, path_to, quirks, macros, errors)

    for o in listed:
        if o.kind == "goal":
            path = path_to(o, arrive=True)
            if path is None:
                errors["go to goal"] = "You cannot go to the goal, as there is no path leading to it."
            else:
                macros["go to goal"] = path

    targets = [o for o in listed if o.kind != "goal"]
    _object_commands("go to", targets, number, path_to, quirks, macros, errors)
    macros["check available actions"] = []
    return View(text, macros, errors)


def _description(listed: list[_Obj], number: dict, barriers: list[_Obj], carrying, any_seen: bool) -> str:
    """The observation text: objects near to far, the barrier ahead, what the agent carries."""
    if any_seen:  # upstream: walls count for "something in sight" but are never listed
        parts = ["In front of you in this room, you can see several objects: "]
        for o in listed:
            if o.right == 0:
                where = f"right in front of you {o.front} steps away. "
            else:
                side = "right" if o.right > 0 else "left"
                where = f"{o.front} steps in front of you and {abs(o.right)} steps to your {side}. "
            parts.append(f"There is a {o.name} {number[id(o)]} {where} ")
        text = "".join(parts)
    else:
        text = "You cannot see any objects within sight."
    text += "The room has walls around you. "
    if barriers:
        text += f"You are facing a {barriers[0].name} {barriers[0].front} steps away. "
    if carrying is not None:
        text += f"You are carrying a {carrying.color} {carrying.type}."
    else:
        text += "You are not carrying anything."
    return text


def _object_commands(verb, targets, number, path_to, quirks: AgentGymQuirks, macros, errors) -> None:
    """Add "pickup <obj> <k>" or "go to <obj> <k>" (verb) for each target, or its no-path error.

    k is the description's number. With quirks.agentgym_numbering it is AgentGym's instead: the
    rank among the REACHABLE objects of that name, so with an unreachable "red ball 1" in front of a
    reachable "red ball 2", "pickup red ball 1" picks up the description's red ball 2 (and the
    error for the unreachable one is filed under the next free number).
    """
    reachable: dict[str, int] = {}
    for o in targets:
        path = path_to(o)
        k = reachable.get(o.name, 0) + 1 if quirks.agentgym_numbering else number[id(o)]
        cmd = f"{verb} {o.name} {k}"
        if path is None:
            errors[cmd] = f"You cannot {verb} {o.name} {k}, as there is no path leading to it."
            continue
        reachable[o.name] = reachable.get(o.name, 0) + 1
        macros[cmd] = path + [PICKUP] if verb == "pickup" else path


def _door_commands(listed, number, carrying, path_to, quirks: AgentGymQuirks, macros, errors) -> None:
    """Add "go through", "toggle and go through" and "toggle" for the doors in view, or errors."""
    seen: dict[str, int] = {}  # AgentGym's door counter, printed by dict_in_door_error
    for o in listed:
        if o.kind != "door":
            continue
        seen[o.name] = seen.get(o.name, 0) + 1
        name = f"{o.name} {number[id(o)]}"
        if " open " in f" {o.name} ":
            path = path_to(o, arrive=True)
            if path is None:
                errors[f"go through {name}"] = (
                    f"You cannot go through {name}, as there is no path leading to it."
                )
            else:
                macros[f"go through {name}"] = path
            continue
        toggle_cmd = f"toggle and go through {name}"
        if "locked" in o.name:
            if carrying is None or carrying.type != "key":
                errors[toggle_cmd] = (
                    f"You cannot toggle and go through {name}, as you are not carrying a key."
                )
                continue
            if carrying.color != o.name.split(" ")[0]:
                errors[toggle_cmd] = (
                    f"You cannot toggle and go through {name}, as the color of the key you are "
                    "carrying does not match the color of door."
                )
                continue
        path = path_to(o)
        if path is None:
            shown = f"{o.name} {seen}" if quirks.dict_in_door_error else name
            errors[toggle_cmd] = (
                f"You cannot toggle and go through {shown}, as there is no path leading to it."
            )
        else:
            macros[toggle_cmd] = path + [TOGGLE, FORWARD]
            if not path:
                macros["toggle"] = [TOGGLE]
        if "closed" in o.name:
            errors[f"go through {name}"] = (
                f"You cannot go through {name}, as it is closed. You should toggle it first."
            )


def run_macro(env, macro: list[int], quirks: AgentGymQuirks = PROJECT) -> tuple[float, bool, bool]:
    """Execute a command's primitives on a minigrid env -> (reward, terminated, truncated).

    Stops early when the episode ends or when a primitive changes nothing in the agent's view
    (it was blocked, e.g. `forward` into a closed door), as AgentGym's server does. AgentGym's
    trailing moves and step limit: agentprm.envs.babyai_agentgym.run_primitives.
    """
    return run_primitives(env, macro, quirks)


def format_actions(actions: list[str]) -> str:
    """'\\nAvailable actions: ["turn left", "turn right"]' exactly as AgentGym's server writes it."""
    return "\nAvailable actions: [" + ", ".join(f'"{a}"' for a in actions) + "]"


class BabyAITextEnv(TextEnv):
    """BabyAI text env. reset(options={"task": i}); step(response) with a ReAct response.

    compat="agentgym" (gym id agentprm/BabyAI-AgentGym-v0, short name "babyai-agentgym") reproduces
    AgentGym's server and client exactly, bugs included; quirks=AgentGymQuirks(...) picks single
    switches (agentprm.envs.babyai_agentgym). The default keeps the project's fixes.

    info: success, score (minigrid reward, 0 until success), task, level, seed, goal,
    available_actions, primitive_steps. After the episode ends, a step answers "The episode has
    ended. Please reset the environment." and the action list, with reward 0 (TextEnv).
    In AgentGym mode, reward is the server's per-step "reward", success is its "done", and score is
    its cumulative "score" (what AgentGym's client reports as the reward) clipped to [0, 1], with
    the raw value in info["agentgym_score"].
    """

    num_tasks = NUM_LEVELS * SEEDS_PER_LEVEL

    def __init__(
        self, render_mode: str | None = None, compat: str | None = None, quirks: AgentGymQuirks | None = None
    ):
        super().__init__(render_mode=render_mode)
        self.quirks = quirks_for(compat, quirks)
        self._levels: dict[str, minigrid.minigrid_env.MiniGridEnv] = {}
        self.grid_env = None
        self.view: View | None = None
        self.goal = ""
        self.score = 0.0
        self.success = False
        self._image = None  # the view the next command compares with (None: the current one)
        self._last_reward = 0.0  # AgentGym's server reward, repeated by sticky_reward
        self._total = 0.0  # AgentGym's cumulative score

    def _reset_task(self, task: int):
        level, name, seed = level_of(task)
        if name not in self._levels:
            self._levels[name] = make_level(name)
        self.grid_env = self._levels[name]
        # minigrid prints "Sampling rejected: ..." while generating some levels; keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            first, _ = self.grid_env.reset(seed=seed)
        self.level, self.level_name, self.seed_ = level, name, seed
        self.goal = goal_text(self.grid_env.mission)
        self.score, self.success = 0.0, False
        self._last_reward, self._total = 0.0, 0.0
        # PutNext levels hand the agent its object after reset() built `first` (AgentGym describes it).
        self._image = first["image"] if self.quirks.stale_first_obs else None
        self.view = describe(self.grid_env, self.quirks, self._image)
        obs = f"Your goal: {self.goal}\n{self.view.description}" + format_actions(self.view.available_actions)
        return obs, self._info()

    def _info(self) -> dict:
        info = {
            "success": self.success,
            "score": self.score,
            "task": self.task,
            "level": self.level_name,
            "seed": self.seed_,
            "goal": self.goal,
            "available_actions": self.view.available_actions if self.view else [],
            "primitive_steps": int(self.grid_env.step_count) if self.grid_env else 0,
        }
        if self.quirks != PROJECT:
            info["agentgym_score"] = self._total
        return info

    def _parse(self, response: str):
        return parse_response(response, self.quirks)

    def _reply(self, text: str, reward: float = 0.0, terminated: bool = False, truncated: bool = False):
        return text + format_actions(self.view.available_actions), reward, terminated, truncated, self._info()

    def _no_macro(self, text: str):
        """A step that runs no primitive: reward 0, or AgentGym's repeated last reward."""
        reward = self._last_reward if self.quirks.sticky_reward else 0.0
        self._add_score(reward)
        return self._reply(text, reward)

    def _add_score(self, reward: float) -> None:
        self._total += reward
        if self.quirks.done_reset_quirk:  # AgentGym's score: the sum of its step rewards
            self.score = min(max(self._total, 0.0), 1.0)

    def _ended_observation(self) -> str:
        # Every BabyAI observation ends with the action list, as AgentGym's server writes it.
        return EPISODE_OVER + format_actions(self.view.available_actions)

    def _execute(self, command: str):
        action = command.lower().strip()
        if not self.quirks.no_pickup_alias:
            action = action.replace("pick up", "pickup")
        if action == "":
            return self._no_macro(NO_CHANGE)
        if "check" in action:  # upstream: any command mentioning "check" lists the actions
            return self._no_macro(
                "You can take the following actions: " + ", ".join(self.view.available_actions)
            )
        if action not in self.view.macros:
            return self._no_macro(self.view.errors.get(action, NOT_RECOGNIZED))
        macro = self.view.macros[action]
        if not macro:
            return self._no_macro(NO_CHANGE)
        env = self.grid_env
        reward, terminated, truncated = run_primitives(env, macro, self.quirks, self._image)
        self._image = None
        self._last_reward = reward
        self.view = describe(env, self.quirks)
        text = self.view.description
        if terminated:
            text, terminated = self._outcome(text, reward)
        self._add_score(reward)
        return self._reply(text, reward, terminated, truncated)

    def _outcome(self, text: str, reward: float) -> tuple[str, bool]:
        """minigrid ended the mission with `reward` -> (observation text, whether the episode ends)."""
        self.success = wins(reward, True, self.quirks)
        if self.quirks.done_reset_quirk:
            # AgentGym: "completed" even for a failure, then done only above a reward of 0.5 (its
            # score, the sum of its step rewards, is kept by _add_score).
            return text + COMPLETED, self.success
        self.score = reward
        return text + (COMPLETED if self.success else FAILED), True
