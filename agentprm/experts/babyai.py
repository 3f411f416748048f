"""BabyAI expert: minigrid's BabyAIBot, compressed into the text env's high-level commands.

The bot plans in primitive actions (turn, forward, pickup, drop, toggle). The text env speaks in
macros ("go to red ball 1", "toggle and go through blue closed door 1"). Each round the expert:
  1. rolls the bot forward on a private copy of the world (the "shadow") for up to `horizon`
     primitive steps, recording every world state it passes through;
  2. simulates every available command on a copy of the real world and keeps the one whose end
     state lies furthest along the bot's path (a command that wins the episode beats everything);
  3. advances the shadow to that point, so the bot keeps its plan (sequence missions need it).
If no command reaches any state on the bot's path (the bot wants an action the text layer does not
offer, e.g. opening a box in KeyInBox), the expert gives up: `act` raises ExpertGaveUp.

The bot asserts on PutNextS7N4Carrying and KeyInBox and can re-plan forever on UnlockToUnlock (a
push budget turns that into ExpertGaveUp). UNSUPPORTED_LEVELS lists the levels it cannot solve;
benchmarks/README.md has the per-level success rates under the 20-round cap and a 60-round cap.
"""

from __future__ import annotations

import copy
import random
import re

from minigrid.core.constants import COLOR_NAMES
from minigrid.utils.baby_ai_bot import BabyAIBot

from agentprm.envs.babyai import BabyAITextEnv, run_macro
from agentprm.envs.babyai_agentgym import wins
from agentprm.envs.react import format_react
from agentprm.types import AgentGaveUp

# Levels the bot (or the text layer under it) cannot solve: reported, never hidden.
#   PutNextS7N4Carrying: the bot asserts (minigrid documents it as unsolved by the bot).
#   KeyInBox: the key is inside a box; the text layer has no command to open a box.
#   OpenDoorsOrderN4Debug: for "X after you Y" missions the bot opens Y first, which minigrid's own
#     strict (Debug) check scores as a failure; it solves the "then" orderings (2/10 seeds).
UNSUPPORTED_LEVELS = ("PutNextS7N4Carrying", "KeyInBox", "OpenDoorsOrderN4Debug")


class ExpertGaveUp(AgentGaveUp):
    """The bot has no plan that the text env's commands can follow from this state."""


class _Stack(list):
    """The bot's subgoal stack with a push budget per replan() call.

    BabyAIBot.replan() loops until a subgoal yields an action; on some layouts (UnlockToUnlock)
    subgoals keep pushing each other forever. Running out of budget raises instead of hanging.
    """

    budget: int | None = None  # None: no limit (copy.deepcopy rebuilds the list through append)

    def append(self, item) -> None:
        if self.budget is None:
            return super().append(item)
        self.budget -= 1
        if self.budget < 0:
            raise ExpertGaveUp("the bot keeps re-planning without acting (a known BabyAIBot loop)")
        super().append(item)


def _replan(bot: BabyAIBot):
    bot.stack.budget = 200
    try:
        return bot.replan()
    finally:
        bot.stack.budget = None


def _instr_progress(instr) -> tuple:
    """Progress of minigrid's instruction tree (sequence/and instructions remember what is done)."""
    if not hasattr(instr, "instr_a"):
        return ()
    return (
        getattr(instr, "a_done", None),
        getattr(instr, "b_done", None),
        _instr_progress(instr.instr_a),
        _instr_progress(instr.instr_b),
    )


def _world_key(env) -> tuple:
    """Hashable world state: agent pose, what it carries, every non-wall cell, mission progress.

    (Cheaper than grid.encode(): walls never change, and most cells are empty.) Two paths that end
    in the same key are interchangeable for the rest of the episode.
    """
    carrying = None if env.carrying is None else (env.carrying.type, env.carrying.color)
    cells = tuple(
        (i, c.type, c.color, getattr(c, "is_open", None), getattr(c, "is_locked", None))
        for i, c in enumerate(env.grid.grid)
        if c is not None and c.type != "wall"
    )
    pos = tuple(int(v) for v in env.agent_pos)
    return (pos, int(env.agent_dir), carrying, cells, _instr_progress(env.instrs))


class BabyAIExpert:
    """Scripted expert for agentprm/BabyAI-v0.

    Usage:
        expert = BabyAIExpert()
        obs, info = env.reset(options={"task": 7})
        expert.reset(env)
        while not done:
            response = expert.act(env)       # "Thought:\\n...\\n\\nAction:\\ngo to red ball 1"
            obs, r, terminated, truncated, info = env.step(response)
    """

    name = "expert:babyai-bot"
    # One command moves at most across the 7x7 view (about 15 primitives + 1): looking further
    # along the bot's path only costs time, a winning command is detected by simulation anyway.

    def __init__(
        self, horizon: int = 24, mistakes: float = 0.0, misread: float = 0.0, goal_mistakes: float = 0.0
    ):
        self.horizon = horizon
        # Probability per round of first issuing a command naming an object that is not in view (a
        # real env step, answered "not recognized"), then going on with the plan: data that shows a
        # recovery from the commonest error of small policies. SFT never imitates the mistake.
        self.mistakes = mistakes
        # Share of those mistakes whose Thought also misstates the goal (another colour or object):
        # the recovery then restates the goal from the prompt instead of from the previous Thought.
        self.misread = misread
        # Share of mistakes that instead name the goal's object while it is not in view (the
        # commonest error left after misread data: acting on the goal before exploring for it).
        self.goal_mistakes = goal_mistakes
        self.shadow = None
        self.bot = None
        self.round = 0
        self.erred = False
        self.rng = random.Random(0)

    def reset(self, env) -> None:
        text_env: BabyAITextEnv = env.unwrapped
        self.shadow = copy.deepcopy(text_env.grid_env)
        self.bot = BabyAIBot(self.shadow)
        self.bot.stack = _Stack(self.bot.stack)
        self.round = 0
        self.erred = False
        self.rng = random.Random(f"{text_env.level_name}/{text_env.seed_}")  # the same mistakes on a rerun

    def _bot_path(self) -> dict:
        """Roll a copy of (shadow, bot) forward: world key -> furthest step index on the bot's path."""
        world, bot = copy.deepcopy((self.shadow, self.bot))
        index = {_world_key(world): 0}
        for step in range(1, self.horizon + 1):
            try:
                action = _replan(bot)
            except Exception:  # the bot asserts on levels it cannot handle; the path ends there
                break
            if action == world.actions.done:
                break
            _, _, terminated, truncated, _ = world.step(action)
            index[_world_key(world)] = step
            if terminated or truncated:
                break
        return index

    def choose(self, env) -> str:
        """The command that follows the bot furthest (see module docstring)."""
        text_env: BabyAITextEnv = env.unwrapped
        index = self._bot_path()
        best, best_rank, best_world = None, (0, 0), None
        for command, macro in text_env.view.macros.items():
            if not macro:
                continue
            world = copy.deepcopy(text_env.grid_env)
            # The env's own command semantics (AgentGym's trailing moves and done quirk in its mode):
            # a command that wins in the default env may leave AgentGym's episode running.
            reward, terminated, _ = run_macro(world, macro, text_env.quirks)
            if wins(reward, terminated, text_env.quirks):
                k = self.horizon + 1  # winning now beats any partial progress
            else:
                k = index.get(_world_key(world), 0)
            rank = (k, -len(macro))
            if k > 0 and rank > best_rank:
                best, best_rank, best_world = command, rank, world
        if best is None:
            raise ExpertGaveUp(
                f"task {text_env.task} ({text_env.level_name}): no command follows the bot's plan"
            )
        self._advance_shadow(min(best_rank[0], self.horizon), best_world)
        return best

    def _advance_shadow(self, k: int, world) -> None:
        """Move the bot k steps along its own plan, then put it in `world`: the real world after the
        chosen command, as simulated by `choose` (same world key; step counts may differ)."""
        for _ in range(k):
            try:
                action = _replan(self.bot)
            except Exception:
                break
            if action == self.shadow.actions.done:
                break
            self.shadow.step(action)
        self.shadow = world
        self.bot.mission = world

    def act(self, env) -> str:
        """A full ReAct response: a short templated Thought (restating the goal) and the chosen command.

        Every Thought restates the goal, not only the first: a small model trained from scratch
        must learn to copy the goal from the prompt, and one copy per trajectory was too little
        signal (benchmarks/README.md, "the goal restated in every Thought")."""
        text_env: BabyAITextEnv = env.unwrapped
        if self.mistakes and not self.erred and self.rng.random() < self.mistakes:
            wrong = None
            if self.goal_mistakes and self.rng.random() < self.goal_mistakes:  # (no draw at 0)
                wrong = goal_command_out_of_view(text_env.goal, text_env.view.macros, self.rng)
            wrong = wrong or self.mistake(text_env)
            if wrong is not None:
                self.erred = True
                self.round += 1
                goal = text_env.goal
                if self.misread and self.rng.random() < self.misread:  # (no draw at 0: same data)
                    goal = misread_goal(goal, self.rng)
                return format_react(thought_for(wrong, goal), wrong)
        self.erred = False
        command = self.choose(env)
        thought = thought_for(command, text_env.goal)
        self.round += 1
        return format_react(thought, command)

    def mistake(self, text_env) -> str | None:
        """An available object command with another colour that names nothing in view, or None
        ("go to red ball 1" in view -> e.g. "go to purple ball 1")."""
        commands = sorted(
            c for c in text_env.view.macros if c.startswith(("go to ", "pickup ", "toggle and go through "))
        )
        self.rng.shuffle(commands)
        for command in commands:
            words = command.split()
            at = [i for i, w in enumerate(words) if w in COLOR_NAMES]
            if not at:
                continue
            for colour in self.rng.sample(COLOR_NAMES, len(COLOR_NAMES)):
                wrong = " ".join(words[: at[0]] + [colour] + words[at[0] + 1 :])
                if wrong not in text_env.view.macros:
                    return wrong
        return None


_GOAL_OBJECT = re.compile(r"\b(?:the|a) (?:(" + "|".join(COLOR_NAMES) + r") )?(ball|box|key|door)\b")


def goal_command_out_of_view(goal: str, macros, rng: random.Random) -> str | None:
    """A command naming one of the goal's objects that is not in view (not among `macros`), or None.

    >>> goal_command_out_of_view("pick up the blue ball", {"turn left": []}, random.Random(0))
    'pickup blue ball 1'
    >>> goal_command_out_of_view("pick up the blue ball", {"go to blue ball 1": []}, random.Random(0)) is None
    True
    """
    options = []
    for colour, kind in _GOAL_OBJECT.findall(goal):
        colour = colour or rng.choice(COLOR_NAMES)
        if any(f" {colour} " in f" {m} " and kind in m for m in macros):
            continue  # (an object of that colour and kind is in view)
        if kind == "door":
            options += [f"toggle and go through {colour} closed door 1", f"go to {colour} closed door 1"]
        else:
            options += [f"go to {colour} {kind} 1"] + (
                [f"pickup {colour} {kind} 1"] if "pick up" in goal else []
            )
    return rng.choice(options) if options else None


def misread_goal(goal: str, rng: random.Random) -> str:
    """The goal with its first colour (else its first object word) replaced by another one.

    >>> misread_goal("go to the yellow box", random.Random(0)) != "go to the yellow box"
    True
    >>> misread_goal("open the door on your left", random.Random(0))
    'open the door on your left'
    """
    words = goal.split()
    for choices in (COLOR_NAMES, ["ball", "box", "key"]):
        at = [i for i, w in enumerate(words) if w in choices]
        if at:
            words[at[0]] = rng.choice([c for c in choices if c != words[at[0]]])
            return " ".join(words)
    return goal


def thought_for(command: str, goal: str | None = None) -> str:
    """A short, factual Thought for a command (the experts' data must be ReAct-shaped).

    >>> thought_for("go to red ball 1")
    'The red ball 1 is where I need to be next, so I will go to it.'
    """
    if command.startswith("go to goal"):
        text = "I can see the goal square, so I will go to it."
    elif command.startswith("go to "):
        text = f"The {command[6:]} is where I need to be next, so I will go to it."
    elif command.startswith("pickup "):
        text = f"I need the {command[7:]}, so I will pick it up."
    elif command.startswith("toggle and go through "):
        text = f"The {command[22:]} is in my way, so I will open it and go through."
    elif command.startswith("go through "):
        text = f"The {command[11:]} leads where I need to go, so I will go through it."
    elif command == "toggle":
        text = "The door in front of me is closed, so I will toggle it."
    elif command == "drop":
        text = "This is the right place for what I am carrying, so I will drop it."
    elif command == "move forward":
        text = "The way ahead is clear and leads towards my target, so I will move forward."
    elif command.startswith("turn "):
        text = f"What I need is not straight ahead, so I will {command}."
    else:
        text = f"I will {command}."
    if goal:
        text = f"My goal is to {goal}. " + text
    return text
