"""`agentprm play`: play an episode by typing commands (or whole ReAct responses) in the terminal."""

from __future__ import annotations

import dataclasses
import sys

import agentprm.envs as E
from agentprm.envs.react import format_react


@dataclasses.dataclass
class Args:
    env: str = "babyai"
    """environment: babyai, babyai-agentgym, textcraft, webshop, math, gsm-symbolic or gsm8k"""
    task: int = 0
    """task index (see `agentprm envs`)"""
    max_rounds: int | None = None
    """round cap; default: the one registered with the env (20)"""


def main(args: Args) -> float:
    kwargs = {} if args.max_rounds is None else {"max_episode_steps": args.max_rounds}
    env = E.make(args.env, **kwargs)
    obs, info = env.reset(options={"task": args.task})
    print(obs)
    math = E.short_name(args.env) in E.MATH_ENVS
    if math:
        print("\nType one reasoning step per line, the last one '#### <number>', or 'quit'.")
    else:
        print("\nType a command (e.g. 'turn left'), a full 'Thought: ...\\nAction: ...' response, or 'quit'.")
    reward, rounds = 0.0, 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.strip() == "quit":
            break
        if math:  # a step is the line itself, ended by the step delimiter
            response = line + "\n"
        elif "Action:" in line:
            response = line.replace("\\n", "\n")
        else:
            response = format_react("", line)
        obs, r, terminated, truncated, info = env.step(response)
        rounds += 1
        reward += r
        print(f"\n[round {rounds}] {obs}")
        if terminated or truncated:
            print(
                f"\nEpisode over: success={info['success']} score={info['score']} "
                f"({'terminated' if terminated else 'round cap reached'})"
            )
            break
        print("> ", end="", flush=True)
    return reward
