"""The contract shared by every text environment: Gymnasium API, text in, text out.

step() takes the model's WHOLE response (ReAct text) and parses it here, so that a malformed response
costs a round like any other action (the round cap registered with the env counts it) and becomes
an error observation instead of an exception. info always carries:
  "success" (bool), "score" (the task's metric), "task" (int index), "action" (parsed command or None),
  "available_actions" (list[str]) where the task has them.
"""

from __future__ import annotations

import numbers
import string
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from agentprm.envs.react import format_react, parse_react

MAX_TEXT = 1_000_000
EPISODE_OVER = "The episode has ended. Please reset the environment."


def check_task(task: Any, num_tasks: int, env: str) -> int:
    """A task index given to reset -> int, or ValueError naming the valid range.

    Integers only (numpy integers included): a float or a bool would silently play another task
    (3.7 -> task 3, True -> task 1), and a string is a caller's bug.

    >>> check_task(3, 544, "TextCraftEnv")
    3
    >>> check_task(3.7, 544, "TextCraftEnv")
    Traceback (most recent call last):
    ...
    ValueError: task index 3.7 (float) is not an integer for TextCraftEnv: use an int with 0 <= task < 544
    """
    if isinstance(task, bool) or not isinstance(task, numbers.Integral):
        raise ValueError(
            f"task index {task!r:.80} ({type(task).__name__}) is not an integer for {env}: "
            f"use an int with 0 <= task < {num_tasks}"
        )
    if not 0 <= task < num_tasks:
        raise ValueError(f"task index {task} is out of range for {env}: use 0 <= task < {num_tasks}")
    return int(task)


class AnyText(spaces.Text):
    """A Text space that accepts any str up to max_length (observations hold unicode, e.g. '›').

    Sampling (used by Gymnasium's checker and by fuzz tests) draws from printable ASCII, which
    includes the characters a model might write: newlines, colons, brackets.
    """

    def __init__(self, max_length: int = MAX_TEXT):
        super().__init__(max_length=max_length, min_length=0, charset=string.printable)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length


class TextEnv(gym.Env):
    """Base class: subclasses implement _reset_task(task, rng) and _execute(command).

    Task selection: reset(seed=s, options={"task": i}) plays task i (an int, 0 <= i < num_tasks,
    else ValueError); without options["task"] the task index is drawn from the seeded RNG over
    range(num_tasks). The seed also seeds the task's own randomness where the task has any (never
    the task identity).

    After the episode ends (_execute returned terminated or truncated; the TimeLimit wrapper's round
    cap is not the env's to see), every further step answers _ended_observation() (EPISODE_OVER)
    with reward 0 and terminated = truncated = False, and changes nothing, until the next reset:
    Gymnasium leaves such steps undefined, and a caller that keeps stepping must not be paid twice.
    """

    metadata = {"render_modes": ["ansi"]}
    strict_charset = True

    def __init__(self, render_mode: str | None = None):
        self.observation_space = AnyText()
        self.action_space = AnyText()
        self.render_mode = render_mode
        self.task: int | None = None
        self.ended = False
        self._last_obs = ""

    # -- subclass hooks -------------------------------------------------------------------
    num_tasks: int = 0

    def _reset_task(self, task: int) -> tuple[str, dict]:
        raise NotImplementedError

    def _execute(self, command: str) -> tuple[str, float, bool, bool, dict]:
        raise NotImplementedError

    def _info(self) -> dict:
        raise NotImplementedError

    def _parse(self, response: str):
        """The model's response -> Parsed command or error (BabyAI's AgentGym mode overrides it)."""
        return parse_react(response, strict_charset=self.strict_charset)

    def _ended_observation(self) -> str:
        """What a step after the end of the episode observes (BabyAI adds its action list)."""
        return EPISODE_OVER

    # -- Gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "task" in options:
            task = check_task(options["task"], self.num_tasks, type(self).__name__)
        else:
            task = int(self.np_random.integers(self.num_tasks))
        self.task = task
        self.ended = False
        obs, info = self._reset_task(task)
        self._last_obs = obs
        return obs, info

    def step(self, action: str):
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        if self.ended:
            return self._after_end()
        parsed = self._parse(action)
        if parsed.error is not None:
            info = self._info()
            info["action"] = None
            info["parse_error"] = True
            self._last_obs = parsed.error
            return parsed.error, 0.0, False, False, info
        obs, reward, terminated, truncated, info = self._execute(parsed.action)
        info["action"] = parsed.action
        info["parse_error"] = False
        self.ended = terminated or truncated
        self._last_obs = obs
        return obs, reward, terminated, truncated, info

    def _after_end(self):
        """A step after the episode ended: nothing is executed, no reward (see the class docstring)."""
        info = self._info()
        info["action"] = None
        info["parse_error"] = False
        obs = self._last_obs = self._ended_observation()
        return obs, 0.0, False, False, info

    def step_command(self, command: str):
        """Step with a bare command (typed by a human, or a scripted policy)."""
        return self.step(format_react("", command))

    def render(self):
        if self.render_mode == "ansi":
            return self._last_obs
        return None
