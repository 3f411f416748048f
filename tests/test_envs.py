"""Conformance over every registered text environment: Gymnasium API, determinism, replay, fuzzing."""

from __future__ import annotations

import random
import string
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import agentprm.envs as E
from agentprm.envs.base import EPISODE_OVER
from agentprm.envs.math.data import DATA_ENV
from agentprm.envs.react import NO_ACTION, ONLY_ONE_ACTION
from agentprm.types import NUM_TASKS

NAMES = sorted(set(E.ENV_IDS) - E.REMOTE)  # the agentgym-* envs need a server: tests/test_serve_env.py
TASKS = {"babyai": [0, 1, 11, 23, 41, 77], "textcraft": [0, 5, 100, 300, 543], "webshop": [0, 26, 912, 6909]}
TASKS["babyai-agentgym"] = TASKS["babyai"]
TASKS.update({"math": [0, 1, 2, 3, 199, 4999], "gsm-symbolic": [0, 5, 199, 2199], "gsm8k": [0, 1, 2, 5]})
# agentprm/GSM8K-v0 plays the user's data: here the six problems of tests/data/gsm8k_sample.jsonl.
GSM8K_SAMPLE = Path(__file__).parent / "data" / "gsm8k_sample.jsonl"
# Env-specific task counts (the others are agentprm.types.NUM_TASKS): WebShop's embedded catalogue.
DATA_TASKS = {"webshop": 6910, "gsm8k": 6}
ROUND_CAP = {"webshop": 6, "math": 16, "gsm-symbolic": 16, "gsm8k": 16}  # else 20


@pytest.fixture(autouse=True)
def _math_data(request, monkeypatch):
    """The user's GSM8K data for agentprm/GSM8K-v0; GSMSymbolic-v0 only with reasoning-gym installed."""
    monkeypatch.setenv(DATA_ENV, str(GSM8K_SAMPLE))
    name = getattr(request.node, "callspec", None) and request.node.callspec.params.get("name")
    if name == "gsm-symbolic":
        pytest.importorskip("reasoning_gym", reason="agentprm/GSMSymbolic-v0 needs the 'math' extra")


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_round_cap(name):
    spec = gym.spec(E.ENV_IDS[name])
    assert spec.max_episode_steps == E.MAX_ROUNDS[name] == ROUND_CAP.get(name, 20)


@pytest.mark.parametrize("name", NAMES)
def test_gymnasium_checker(name):
    env = gym.make(E.ENV_IDS[name]).unwrapped
    check_env(env, skip_render_check=True)


def _random_episode(name: str, task: int, seed: int) -> list[tuple[str, float, bool, bool]]:
    env = E.make(name)
    obs, info = env.reset(seed=seed, options={"task": task})
    rng = random.Random(seed)
    out = [(obs, 0.0, False, False)]
    for _ in range(25):
        actions = info.get("available_actions")
        if isinstance(actions, dict):  # WebShop: AgentGym's {has_search_bar, clickables}
            actions = [f"click[{c}]" for c in actions["clickables"]] + ["search[red shirt]"]
        cands = actions or [
            "inventory",
            "get 1 oak log",
            "craft 4 oak planks using 1 oak log",
        ]
        obs, r, term, trunc, info = env.step(f"Thought: try.\nAction: {rng.choice(cands)}")
        out.append((obs, r, term, trunc))
        assert isinstance(obs, str) and env.observation_space.contains(obs)
        assert set(info) >= {"success", "score", "task", "action"}
        if term or trunc:
            break
    return out


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_episode(name):
    for task in TASKS[name][:3]:
        assert _random_episode(name, task, seed=3) == _random_episode(name, task, seed=3)


@pytest.mark.parametrize("name", NAMES)
def test_round_cap_truncates(name):
    env = E.make(name)
    env.reset(options={"task": TASKS[name][0]})
    cap = E.MAX_ROUNDS[name]
    for i in range(cap):
        _, _, term, trunc, _ = env.step("Thought: wait.\nAction: check available actions")
        assert not term
        assert trunc == (i == cap - 1)


@pytest.mark.parametrize("name", NAMES)
def test_task_out_of_range_is_a_clear_error(name):
    env = E.make(name)
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"task": -1})


def _junk(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return ""
    if kind == 1:
        return "Thought: I have no idea."
    if kind == 2:
        return "Action: turn left\nAction: turn right"
    if kind == 3:
        return "Action: " + "".join(rng.choice("ßü漢字🙂\u200b\x00\t›") for _ in range(rng.randrange(40)))
    if kind == 4:
        return "x" * 10_000 + "\nAction: " + "y" * 10_000
    if kind == 5:
        return "Action:"
    if kind == 6:
        return "Thought:\n\nAction:\n" + "".join(
            rng.choice(string.printable) for _ in range(rng.randrange(200))
        )
    return "".join(rng.choice(string.printable) for _ in range(rng.randrange(300)))


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_never_raises(name):
    env = E.make(name, max_episode_steps=10_000)
    rng = random.Random(0)
    env.reset(options={"task": TASKS[name][1]})
    for i in range(2000):
        response = _junk(rng)
        obs, r, term, trunc, info = env.step(response)
        assert isinstance(obs, str)
        if name in E.MATH_ENVS:  # no ReAct: a step observes "", only a final or refused one speaks
            assert obs == "" or term, (response[:80], obs)
        elif response.count("Action:") > 1 and name != "webshop":  # WebShop's client takes the last
            assert obs == ONLY_ONE_ACTION and r == 0
        if name in E.MATH_ENVS:
            pass
        elif "Action:" not in response and name == "babyai-agentgym":
            assert obs.startswith("No change in state.")  # AgentGym's client sends ""
        elif "Action:" not in response and not (
            name == "webshop" and ("search[" in response or "click[" in response)
        ):
            assert obs == NO_ACTION
        if term or trunc or i % 200 == 0:
            env.reset(options={"task": TASKS[name][i % len(TASKS[name])]})


# The shortest wins: BabyAI task 2 (GoToRedBall seed 0, the ball is reachable), TextCraft task 0.
WIN = {
    "babyai": (2, ["pickup red ball 1"]),
    "textcraft": (0, ["get 1 acacia logs", "craft 4 acacia planks using 1 acacia logs"]),
}
WIN["babyai-agentgym"] = WIN["babyai"]
# A math env's win is its final-answer line, found after "Action: " as anywhere in a response.
WIN["math"] = (0, ["#### 16"])
WIN["gsm8k"] = (0, ["#### 63"])
WIN["gsm-symbolic"] = (0, ["#### 1150"])
# WebShop task 0 on the embedded catalogue: its goal's product (B07LBNRY7H) with color yellow, size medium.
WIN["webshop"] = (
    0,
    [
        "search[officially licensed men's sweaters]",
        "click[b07lbnry7h]",
        "click[yellow]",
        "click[medium]",
        "click[Buy Now]",
    ],
)


@pytest.mark.parametrize("name", NAMES)
def test_no_reward_after_the_episode_ended(name):
    env = E.make(name, max_episode_steps=100)  # the steps after the end are not cut by the round cap
    task, commands = WIN[name]
    env.reset(options={"task": task})
    for command in commands:
        _, reward, terminated, _, info = env.step(f"Thought: go.\nAction: {command}")
    assert terminated and reward > 0 and info["success"]
    # Winning again, or writing junk, changes nothing and pays nothing until the next reset.
    for response in [*(f"Action: {c}" for c in commands), "no action here", "Action: a\nAction: b"]:
        obs, reward, terminated, truncated, info = env.step(response)
        assert obs.startswith(EPISODE_OVER), obs
        assert (reward, terminated, truncated, info["action"]) == (0.0, False, False, None)
        assert info["success"]  # the outcome stays what it was
    env.reset(options={"task": task})
    for command in commands:
        _, reward, terminated, _, _ = env.step(f"Action: {command}")
    assert terminated and reward > 0


@pytest.mark.parametrize("name", NAMES)
def test_task_must_be_an_int_in_range(name):
    env = E.make(name)
    num_tasks = env.unwrapped.num_tasks
    # the records' check (agentprm.types) agrees with the env; WebShop's count depends on its data
    assert num_tasks == (DATA_TASKS.get(name) or NUM_TASKS[name])
    # int() used to turn these into another task silently (3.7 -> 3, True -> 1, "3" -> 3).
    for task in (3.7, 2.0, np.float64(2.0), True, False, np.bool_(True), "3", None, [1]):
        with pytest.raises(ValueError, match=f"not an integer .*use an int with 0 <= task < {num_tasks}"):
            env.reset(options={"task": task})
    for task in (num_tasks, 10**30, -(10**30)):
        with pytest.raises(ValueError, match=f"out of range .*use 0 <= task < {num_tasks}"):
            env.reset(options={"task": task})
    for task in (np.int64(5), np.int32(num_tasks - 1), np.uint8(0)):
        assert env.reset(options={"task": task})[1]["task"] == int(task)
        assert type(env.unwrapped.task) is int
