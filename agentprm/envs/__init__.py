"""Registers the text environments with Gymnasium. Nothing here imports torch.

Ids (round caps set at registration, overridable with gym.make(..., max_episode_steps=N)):
  agentprm/BabyAI-v0     20 rounds, tasks = index -> (level (i % 40) + 1, seed i // 40)
  agentprm/TextCraft-v0  20 rounds, tasks = the 544 goals of depth >= 1, sorted by (depth, name)
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = {
    "babyai": "agentprm/BabyAI-v0",
    "textcraft": "agentprm/TextCraft-v0",
}
MAX_ROUNDS = {"babyai": 20, "textcraft": 20}

_ENTRY_POINTS = {
    "babyai": "agentprm.envs.babyai:BabyAITextEnv",
    "textcraft": "agentprm.envs.textcraft:TextCraftEnv",
}

for _name, _id in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_ENTRY_POINTS[_name], max_episode_steps=MAX_ROUNDS[_name])


def env_id(name: str) -> str:
    """Short name ("babyai") or full id -> registered id, with a clear error otherwise."""
    if name in ENV_IDS.values():
        return name
    if name.lower() not in ENV_IDS:
        raise ValueError(f"unknown environment {name!r}: choose one of {sorted(ENV_IDS)}")
    return ENV_IDS[name.lower()]


def short_name(name: str) -> str:
    """Full id or short name -> short name ("agentprm/BabyAI-v0" -> "babyai")."""
    for short, full in ENV_IDS.items():
        if name in (short, full):
            return short
    raise ValueError(f"unknown environment {name!r}: choose one of {sorted(ENV_IDS)}")


def make(name: str, **kwargs) -> gym.Env:
    """gym.make by short name or id; kwargs go to gym.make (e.g. max_episode_steps)."""
    return gym.make(env_id(name), **kwargs)


# How each environment answers a command it refused (nothing happened): agentprm.envs.babyai's
# NOT_RECOGNIZED and TextCraft's "Could not ..." replies (tests/test_envs.py checks the former).
_REJECTED = {"babyai": "The action is not recognized.", "textcraft": "Could not "}


def rejected(env: str, observation: str) -> bool:
    """Whether `observation` says the environment refused the command. SFT never imitates such a
    response (the BabyAI expert's deliberate mistakes, a policy's invalid actions in RFT data).

    >>> rejected("babyai", "The action is not recognized. Please check valid actions. Available actions: []")
    True
    """
    return observation.startswith(_REJECTED[short_name(env)])
