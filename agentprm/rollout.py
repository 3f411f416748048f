"""Playing episodes and recording them as Trajectory records.

`run_episode` drives one env with a scripted agent (anything with reset(env) and act(env) -> response,
e.g. the experts). Batched collection with language-model policies builds on it in a later issue.
`replay` re-plays recorded responses from reset; deterministic envs reproduce every observation,
which is how search branches a partial trajectory.
"""

from __future__ import annotations

from typing import Protocol

import agentprm.envs as E
from agentprm.types import Step, Trajectory


class ScriptedAgent(Protocol):
    name: str

    def reset(self, env) -> None: ...

    def act(self, env) -> str: ...


class AgentGaveUp(RuntimeError):
    """Raised by a scripted agent that has no move left (recorded, the episode ends as a failure)."""


def run_episode(
    env_name: str,
    task: int,
    agent: ScriptedAgent,
    *,
    sample: int = 0,
    env=None,
    max_rounds: int | None = None,
) -> Trajectory:
    """Play task `task` of `env_name` with `agent` until it ends or the round cap; return the record.

    An agent exception whose class name ends in "GaveUp" ends the episode as a failure, with the
    reason in meta["gave_up"]; any other exception propagates.
    """
    kwargs = {} if max_rounds is None else {"max_episode_steps": max_rounds}
    env = env if env is not None else E.make(env_name, **kwargs)
    obs, info = env.reset(options={"task": task})
    agent.reset(env)
    first, steps, meta = obs, [], {}
    reward, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        try:
            response = agent.act(env)
        except Exception as exc:
            if not type(exc).__name__.endswith("GaveUp"):
                raise
            meta["gave_up"] = str(exc)
            break
        obs, r, terminated, truncated, info = env.step(response)
        reward += float(r)
        steps.append(Step(response=response, action=info.get("action"), observation=obs, reward=float(r)))
    for key in ("level", "seed", "goal"):
        if key in info:
            meta[key] = info[key]
    return Trajectory(
        env=E.short_name(env_name),
        task=task,
        sample=sample,
        initial_observation=first,
        steps=steps,
        reward=float(info.get("score", reward)),
        success=bool(info.get("success", False)),
        terminated=bool(terminated),
        truncated=bool(truncated),
        policy=agent.name,
        meta=meta,
    )


def replay(env_name: str, task: int, responses: list[str], env=None) -> tuple[object, list[str]]:
    """Reset to `task` and step the given responses: (env positioned after them, observations).

    >>> env, obs = replay("textcraft", 0, ["Action: inventory"])
    >>> obs[-1]
    'Inventory: You are not carrying anything.'
    """
    env = env if env is not None else E.make(env_name, max_episode_steps=10_000)
    obs, _ = env.reset(options={"task": task})
    out = [obs]
    for response in responses:
        obs, *_ = env.step(response)
        out.append(obs)
    return env, out
