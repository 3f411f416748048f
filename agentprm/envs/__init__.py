"""Registers the text environments with Gymnasium. Nothing here imports torch.

Ids (round caps set at registration, overridable with gym.make(..., max_episode_steps=N)):
  agentprm/BabyAI-v0           20 rounds, tasks = index -> (level (i % 40) + 1, seed i // 40)
  agentprm/BabyAI-AgentGym-v0  the same tasks, AgentGym's server behaviour exactly, bugs included
                               (BabyAITextEnv(compat="agentgym"); short name "babyai-agentgym")
  agentprm/TextCraft-v0        20 rounds, tasks = the 544 goals of depth >= 1 in AgentGym's order
  agentprm/WebShop-v0          6 rounds, tasks = AgentGym's synthetic goals in its order (6910 on the
                               embedded catalogue; WebShop's own files from $AGENTPRM_WEBSHOP_DATA)

agentprm/AgentGym-{BabyAI,TextCraft,WebShop}-v0 play an AgentGym env server by URL (url=...; the
server may be AgentGym's own or `agentprm serve-env`): envs/agentgym_remote.py.

A variant of an env (babyai-agentgym) has its own short name, so records say which one played,
and shares its family's splits, prompt and expert: family(name) gives the family.
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = {
    "babyai": "agentprm/BabyAI-v0",
    "babyai-agentgym": "agentprm/BabyAI-AgentGym-v0",
    "textcraft": "agentprm/TextCraft-v0",
    "webshop": "agentprm/WebShop-v0",
}
MAX_ROUNDS = {"babyai": 20, "babyai-agentgym": 20, "textcraft": 20, "webshop": 6}
# short name -> the env whose tasks, splits, prompt and expert it uses
FAMILY = {"babyai": "babyai", "babyai-agentgym": "babyai", "textcraft": "textcraft", "webshop": "webshop"}

_ENTRY_POINTS = {
    "babyai": "agentprm.envs.babyai:BabyAITextEnv",
    "babyai-agentgym": "agentprm.envs.babyai:BabyAITextEnv",
    "textcraft": "agentprm.envs.textcraft:TextCraftEnv",
    "webshop": "agentprm.envs.webshop.env:WebShopEnv",
}
_KWARGS = {"babyai-agentgym": {"compat": "agentgym"}}

for _name, _id in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point=_ENTRY_POINTS[_name],
            max_episode_steps=MAX_ROUNDS[_name],
            kwargs=_KWARGS.get(_name, {}),
        )


# Remote: an AgentGym env server by URL (AgentGym's own or `agentprm serve-env`). Not in ENV_IDS: they
# need a server. gym.make("agentprm/AgentGym-BabyAI-v0", url="http://127.0.0.1:8000")
REMOTE_IDS = {
    "babyai": "agentprm/AgentGym-BabyAI-v0",
    "textcraft": "agentprm/AgentGym-TextCraft-v0",
    "webshop": "agentprm/AgentGym-WebShop-v0",
}
for _family, _id in REMOTE_IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point="agentprm.envs.agentgym_remote:AgentGymEnv",
            max_episode_steps=MAX_ROUNDS[_family],
            kwargs={"env_family": _family},
        )


def family(name: str) -> str:
    """Short name or id -> the env family whose splits, prompt and expert it shares.

    >>> family("babyai-agentgym"), family("agentprm/BabyAI-AgentGym-v0"), family("textcraft")
    ('babyai', 'babyai', 'textcraft')
    """
    return FAMILY[short_name(name)]


def env_id(name: str) -> str:
    """Short name or full id, in any case -> registered id ("BabyAI" -> "agentprm/BabyAI-v0")."""
    return ENV_IDS[short_name(name)]


def short_name(name: str) -> str:
    """Full id or short name, in any case -> short name; ValueError naming the choices otherwise.

    >>> short_name("agentprm/BabyAI-v0"), short_name("TEXTCRAFT"), short_name("agentprm/babyai-v0")
    ('babyai', 'textcraft', 'babyai')
    """
    if isinstance(name, str):
        key = name.lower()
        for short, full in ENV_IDS.items():
            if key in (short, full.lower()):
                return short
    raise ValueError(
        f"unknown environment {name!r:.80}: choose one of {sorted(ENV_IDS)} "
        f"or an id {sorted(ENV_IDS.values())} (any case)"
    )


def make(name: str, **kwargs) -> gym.Env:
    """gym.make by short name or id; kwargs go to gym.make (e.g. max_episode_steps)."""
    return gym.make(env_id(name), **kwargs)


# What a number measured on each env can be set beside (printed by evaluate and report).
MODE_NOTES = {
    "babyai": "corrected BabyAI (the project's fixes); success runs 12-16 points above AgentGym's "
    "server for the same behaviour, so use babyai-agentgym to compare with the paper",
    "babyai-agentgym": "AgentGym-exact BabyAI (AgentGym's server and client, bugs included): "
    "the paper's setting; the paper reports mean reward",
    "textcraft": "TextCraft on AgentGym's recipe tree and goal order (recipe files in sorted order): "
    "the paper's setting",
}


def mode_note(name: str) -> str:
    """Short name or id -> one line saying which env mode produced a number and what it compares with.

    >>> mode_note("agentprm/BabyAI-AgentGym-v0").startswith("AgentGym-exact")
    True
    """
    short = short_name(name)
    if short == "webshop":  # which data: the embedded catalogue's numbers do not compare with the paper's
        from agentprm.envs.webshop.data import describe_source

        return f"WebShop text mode as AgentGym serves it, on the {describe_source()}"
    return MODE_NOTES[short]


# How each environment answers a command it refused (nothing happened): agentprm.envs.babyai's
# NOT_RECOGNIZED and TextCraft's "Could not ..." replies (tests/test_envs.py checks the former).
_REJECTED = {
    "babyai": "The action is not recognized.",
    "textcraft": "Could not ",
    "webshop": "Invalid Action",
}


def rejected(env: str, observation: str) -> bool:
    """Whether `observation` says the environment refused the command. SFT never imitates such a
    response (the BabyAI expert's deliberate mistakes, a policy's invalid actions in RFT data).

    >>> rejected("babyai", "The action is not recognized. Please check valid actions. Available actions: []")
    True
    """
    return observation.startswith(_REJECTED[family(env)])
