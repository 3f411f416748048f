"""Differential check of BabyAI against AgentGym's own server code: random command sequences played
in both, counting the runs whose every observation, reward, score and done flag agree.

AgentGym's code is NOT part of this project: point --agentgym at a checkout of WooooDyy/AgentGym
(its agentenv-babyai/agentenv_babyai/environment.py is imported from there, run in this process).
Only minigrid, gymnasium, numpy, PIL and matplotlib are needed; its `import gym` (for gym.Env only)
is served by gymnasium when gym is not installed, and BabyAI-GoToObjS6-v0 (refused by minigrid 3.x)
is built as GoToObj(room_size=4), as the project does.

    python benchmarks/babyai_agentgym_diff.py --agentgym /path/to/AgentGym [--runs 800] [--env babyai-agentgym]

Each run: a task in 0..399, 3-29 responses; 85% name an available command, the rest "pick up red
ball 1", "jump", "toggle" or "drop"; 5% are written without an Action line or with a "</s>" suffix.
AgentGym gets what its client would send (the Action line, characters outside [A-Za-z0-9, ] removed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import random
import re
import sys
import types
from pathlib import Path

import gymnasium
from minigrid.envs.babyai import GoToObj

import agentprm.envs as E

_ACTION = re.compile(r"Action:\s*(.*?)(?=\n|$)", re.DOTALL)
JUNK = ["pick up red ball 1", "jump", "toggle", "drop"]


def load_agentgym(root: Path):
    """AgentGym's BabyAI server module, imported from a checkout (quietly: it prints on import)."""
    if "gym" not in sys.modules:
        try:
            import gym  # noqa: F401
        except ImportError:  # it only subclasses gym.Env
            sys.modules["gym"] = types.SimpleNamespace(Env=gymnasium.Env)
    make = gymnasium.make

    def make_level(name, **kwargs):
        if name == "BabyAI-GoToObjS6-v0":
            return gymnasium.wrappers.OrderEnforcing(GoToObj(room_size=4))
        return make(name, **kwargs)

    gymnasium.make = make_level
    path = root / "agentenv-babyai" / "agentenv_babyai" / "environment.py"
    spec = importlib.util.spec_from_file_location("agentgym_babyai_environment", path)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    return module


def client_action(response: str) -> str:
    """What AgentGym's BabyAI client sends for a response with at most one Action line."""
    found = _ACTION.findall(response)
    action = found[-1] if found else ""
    return " ".join(re.sub(r"[^A-Za-z0-9, ]+", "", action).split())


def response_for(rng: random.Random, actions: list[str]) -> str:
    command = rng.choice(actions) if rng.random() < 0.85 else rng.choice(JUNK)
    if rng.random() < 0.95:
        return f"Thought:\nx\n\nAction:\n{command}"
    return rng.choice(["Thought: none", f"Action: {command}</s>"])


def one_run(server, env, rng: random.Random) -> tuple[bool, object]:
    """Play one random run in both; (all steps agree, the first disagreement or None)."""
    task = rng.randrange(400)
    with contextlib.redirect_stdout(io.StringIO()):
        sid = server.create()["id"]
        theirs = server.reset(sid, task)
    obs, info = env.reset(options={"task": task})
    if theirs["observation"] != obs:
        return False, (task, "reset", obs, theirs["observation"])
    for _ in range(rng.randrange(3, 30)):
        response = response_for(rng, info["available_actions"])
        with contextlib.redirect_stdout(io.StringIO()):
            theirs = server.step(sid, client_action(response))
        obs, reward, terminated, _, info = env.step(response)
        score = info.get("agentgym_score", info["score"])
        ours = (obs, round(reward, 9), round(score, 9), terminated)
        upstream = (
            theirs["observation"],
            round(theirs["reward"], 9),
            round(theirs["score"], 9),
            theirs["done"],
        )
        if ours != upstream:
            return False, (task, response, ours, upstream)
        if terminated:
            break
    return True, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agentgym", type=Path, required=True, help="a checkout of WooooDyy/AgentGym")
    parser.add_argument("--runs", type=int, default=800)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--env", default="babyai-agentgym", help="babyai-agentgym or babyai")
    args = parser.parse_args()
    module = load_agentgym(args.agentgym)
    env = E.make(args.env, max_episode_steps=10_000)
    rng = random.Random(args.seed)
    same, first = 0, []
    for _ in range(args.runs):
        with contextlib.redirect_stdout(io.StringIO()):
            server = module.BabyAIEnv()
        agree, diff = one_run(server, env, rng)
        same += agree
        if diff is not None and len(first) < 3:
            first.append(diff)
    print(f"{args.env}: {same}/{args.runs} runs identical to AgentGym's server")
    for diff in first:
        print("first differences:", str(diff)[:600])


if __name__ == "__main__":
    main()
