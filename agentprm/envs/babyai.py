"""BabyAI as a text environment (AgentGym-compatible), on minigrid 3.2.

Task index i -> level LEVELS[i % 40] with seed i // 40 (AgentGym's numbering; envs.md).
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

from agentprm.envs.base import EPISODE_OVER, TextEnv

LEVELS = (
    "GoToRedBallGrey", "GoToRedBall", "GoToRedBallNoDists", "GoToObjS6", "GoToLocalS8N7",
    "GoToObjMazeS7", "GoToImpUnlock", "GoToSeqS5R2", "GoToRedBlueBall", "GoToDoor",
    "GoToObjDoor", "Open", "OpenRedDoor", "OpenDoorLoc", "OpenRedBlueDoorsDebug",
    "OpenDoorsOrderN4Debug", "Pickup", "UnblockPickup", "PickupLoc", "PickupDistDebug",
    "PickupAbove", "PutNextLocalS6N4", "PutNextS7N4Carrying", "Unlock", "UnlockLocalDist",
    "KeyInBox", "UnlockPickupDist", "BlockedUnlockPickup", "UnlockToUnlock", "ActionObjDoor",
    "FindObjS7", "KeyCorridorS6R3", "OneRoomS20", "MoveTwoAcrossS8N9", "SynthS5R2",
    "SynthLoc", "SynthSeq", "MiniBossLevel", "BossLevel", "BossLevelNoUnlock",
)  # fmt: skip
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


def _scan(env) -> tuple[list[_Obj], list[_Obj], list[tuple[int, int]]]:
    """Objects in view (near to far), barriers straight ahead, and the window's absolute cells."""
    image = env.gen_obs()["image"]  # (7, 7, 3): object, colour, state; agent at AGENT facing -j
    pos = np.array(env.agent_pos)
    f_vec, r_vec = np.array(env.dir_vec), np.array(env.right_vec)
    objs, barriers, window = [], [], []
    for j in range(VIEW):  # far row first, as upstream, so ties in distance keep this order
        for i in range(VIEW):
            front, right = AGENT[1] - j, i - AGENT[0]
            ax, ay = (int(v) for v in pos + f_vec * front + r_vec * right)
            if ax < 0 or ay < 0:
                continue
            window.append((ax, ay))
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
    return objs, barriers, window


def _bfs(env, goal: tuple[int, int], objs: list[_Obj], window: list[tuple[int, int]], arrive: bool):
    """Shortest primitive path (forward, left, right) to stand on `goal` (arrive) or to face it.

    Blocked cells: wall, box, lava, ball, key; the search stays inside the visible window. Doors
    are not blocked (a closed door simply stops the macro when `forward` fails, as upstream).
    Returns None when no path exists.
    """
    blocked = {o.pos for o in objs if o.kind in _BLOCKING}
    inside = set(window)
    start = (tuple(int(v) for v in env.agent_pos), int(env.agent_dir))
    parent: dict = {start: None}
    queue = [start]
    head = 0
    while head < len(queue):
        state = queue[head]
        head += 1
        (x, y), d = state
        dx, dy = DIR_TO_VEC[d]
        done = (x, y) == goal if arrive else (x + dx, y + dy) == goal
        if done:
            path = []
            while parent[state] is not None:
                state, action = parent[state]
                path.append(action)
            return path[::-1]
        for action in (FORWARD, LEFT, RIGHT):
            if action == FORWARD:
                nxt = ((x + int(dx), y + int(dy)), d)
                if nxt[0] not in inside or nxt[0] in blocked:
                    continue
            else:
                nxt = ((x, y), (d - 1) % 4 if action == LEFT else (d + 1) % 4)
            if nxt not in parent:
                parent[nxt] = (state, action)
                queue.append(nxt)
    return None


def describe(env) -> View:
    """Describe a minigrid BabyAI env's current state in AgentGym's words, with command macros.

    Example (task 1: GoToRedBall seed 0) description:
        "In front of you in this room, you can see several objects: There is a grey box 1 ...
         The room has walls around you. You are not carrying anything."
    """
    objs, barriers, window = _scan(env)
    carrying = env.carrying
    listed = [o for o in objs if o.kind != "wall"]
    number: dict[int, int] = {}  # id(obj) -> its per-name counter, shared by text and commands
    counts: dict[str, int] = {}
    for o in listed:
        counts[o.name] = counts.get(o.name, 0) + 1
        number[id(o)] = counts[o.name]

    if objs:  # upstream: walls count for "something in sight" but are never listed
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

    macros: dict[str, list[int]] = {"turn left": [LEFT], "turn right": [RIGHT]}
    errors: dict[str, str] = {}
    if not barriers or barriers[0].front > 1:
        macros["move forward"] = [FORWARD]
    else:
        errors["move forward"] = "There is a barrier in front of you, you can't move forward."

    if carrying is None:
        for o in listed:
            if o.kind in ("door", "goal"):
                continue
            cmd = f"pickup {o.name} {number[id(o)]}"
            path = _bfs(env, o.pos, objs, window, arrive=False)
            if path is None:
                errors[cmd] = (
                    f"You cannot pickup {o.name} {number[id(o)]}, as there is no path leading to it."
                )
            else:
                macros[cmd] = path + [PICKUP]
        errors["drop"] = "You cannot drop the object, as you are not carrying anything."
    else:
        ahead = tuple(int(v) for v in np.array(env.agent_pos) + np.array(env.dir_vec))
        if any(o.pos == ahead and o.kind in _BLOCKING for o in objs):
            errors["drop"] = "You cannot drop the object, as there is already an object in front of you."
        else:
            macros["drop"] = [DROP]

    for o in listed:
        if o.kind != "door":
            continue
        name = f"{o.name} {number[id(o)]}"
        if " open " in f" {o.name} ":
            path = _bfs(env, o.pos, objs, window, arrive=True)
            if path is None:
                errors[f"go through {name}"] = (
                    f"You cannot go through {name}, as there is no path leading to it."
                )
            else:
                macros[f"go through {name}"] = path
            continue
        if "locked" in o.name:
            if carrying is None or carrying.type != "key":
                errors[f"toggle and go through {name}"] = (
                    f"You cannot toggle and go through {name}, as you are not carrying a key."
                )
                continue
            if carrying.color != o.name.split(" ")[0]:
                errors[f"toggle and go through {name}"] = (
                    f"You cannot toggle and go through {name}, as the color of the key you are "
                    "carrying does not match the color of door."
                )
                continue
        path = _bfs(env, o.pos, objs, window, arrive=False)
        if path is None:
            errors[f"toggle and go through {name}"] = (
                f"You cannot toggle and go through {name}, as there is no path leading to it."
            )
        else:
            macros[f"toggle and go through {name}"] = path + [TOGGLE, FORWARD]
            if not path:
                macros["toggle"] = [TOGGLE]
        if "closed" in o.name:
            errors[f"go through {name}"] = (
                f"You cannot go through {name}, as it is closed. You should toggle it first."
            )

    for o in listed:
        if o.kind == "goal":
            path = _bfs(env, o.pos, objs, window, arrive=True)
            if path is None:
                errors["go to goal"] = "You cannot go to the goal, as there is no path leading to it."
            else:
                macros["go to goal"] = path

    for o in listed:
        if o.kind == "goal":
            continue
        cmd = f"go to {o.name} {number[id(o)]}"
        path = _bfs(env, o.pos, objs, window, arrive=False)
        if path is None:
            errors[cmd] = f"You cannot go to {o.name} {number[id(o)]}, as there is no path leading to it."
        else:
            macros[cmd] = path

    macros["check available actions"] = []
    return View(text, macros, errors)


def run_macro(env, macro: list[int]) -> tuple[float, bool, bool]:
    """Execute a command's primitives on a minigrid env -> (reward, terminated, truncated).

    Stops early when the episode ends or when a primitive changes nothing in the agent's view
    (it was blocked, e.g. `forward` into a closed door), as AgentGym's server does.
    """
    reward, terminated, truncated = 0.0, False, False
    image = env.gen_obs()["image"]
    for primitive in macro:
        obs, r, terminated, truncated, _ = env.step(primitive)
        reward += float(r)
        if terminated or truncated:
            break
        if np.array_equal(obs["image"], image):
            break
        image = obs["image"]
    return reward, terminated, truncated


def format_actions(actions: list[str]) -> str:
    """'\\nAvailable actions: ["turn left", "turn right"]' exactly as AgentGym's server writes it."""
    return "\nAvailable actions: [" + ", ".join(f'"{a}"' for a in actions) + "]"


class BabyAITextEnv(TextEnv):
    """BabyAI text env. reset(options={"task": i}); step(response) with a ReAct response.

    info: success, score (minigrid reward, 0 until success), task, level, seed, goal,
    available_actions, primitive_steps. After the episode ends, a step answers "The episode has
    ended. Please reset the environment." and the action list, with reward 0 (TextEnv).
    """

    num_tasks = NUM_LEVELS * SEEDS_PER_LEVEL

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self._levels: dict[str, minigrid.minigrid_env.MiniGridEnv] = {}
        self.grid_env = None
        self.view: View | None = None
        self.goal = ""
        self.score = 0.0
        self.success = False

    def _reset_task(self, task: int):
        level, name, seed = level_of(task)
        if name not in self._levels:
            self._levels[name] = make_level(name)
        self.grid_env = self._levels[name]
        # minigrid prints "Sampling rejected: ..." while generating some levels; keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            self.grid_env.reset(seed=seed)
        self.level, self.level_name, self.seed_ = level, name, seed
        self.goal = goal_text(self.grid_env.mission)
        self.score, self.success = 0.0, False
        self.view = describe(self.grid_env)
        obs = f"Your goal: {self.goal}\n{self.view.description}" + format_actions(self.view.available_actions)
        return obs, self._info()

    def _info(self) -> dict:
        return {
            "success": self.success,
            "score": self.score,
            "task": self.task,
            "level": self.level_name,
            "seed": self.seed_,
            "goal": self.goal,
            "available_actions": self.view.available_actions if self.view else [],
            "primitive_steps": int(self.grid_env.step_count) if self.grid_env else 0,
        }

    def _reply(self, text: str, reward: float = 0.0, terminated: bool = False, truncated: bool = False):
        return text + format_actions(self.view.available_actions), reward, terminated, truncated, self._info()

    def _ended_observation(self) -> str:
        # Every BabyAI observation ends with the action list, as AgentGym's server writes it.
        return EPISODE_OVER + format_actions(self.view.available_actions)

    def _execute(self, command: str):
        action = command.lower().strip().replace("pick up", "pickup")
        if action == "":
            return self._reply(NO_CHANGE)
        if "check" in action:  # upstream: any command mentioning "check" lists the actions
            return self._reply(
                "You can take the following actions: " + ", ".join(self.view.available_actions)
            )
        if action not in self.view.macros:
            return self._reply(self.view.errors.get(action, NOT_RECOGNIZED))
        macro = self.view.macros[action]
        if not macro:
            return self._reply(NO_CHANGE)
        env = self.grid_env
        reward, terminated, truncated = run_macro(env, macro)
        self.view = describe(env)
        text = self.view.description
        if terminated:
            self.success = reward > 0
            self.score = reward
            text += COMPLETED if self.success else FAILED
        return self._reply(text, reward, terminated, truncated)
