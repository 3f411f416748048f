"""Registers the text environments with Gymnasium. Nothing here imports torch.

Ids (round caps set at registration, overridable with gym.make(..., max_episode_steps=N)):
  agentprm/BabyAI-v0           20 rounds, tasks = index -> (level (i % 40) + 1, seed i // 40)
  agentprm/BabyAI-AgentGym-v0  the same tasks, AgentGym's server behaviour exactly, bugs included
                               (BabyAITextEnv(compat="agentgym"); short name "babyai-agentgym")
  agentprm/TextCraft-v0        20 rounds, tasks = the 544 goals of depth >= 1 in AgentGym's order
  agentprm/WebShop-v0          6 rounds, tasks = AgentGym's synthetic goals in its order (6910 on the
                               embedded catalogue; WebShop's own files from $AGENTPRM_WEBSHOP_DATA)
  agentprm/Math-v0             16 steps, tasks = 5000 GSM8K-style word problems of the built-in
                               generator (envs/math/data.py; needs nothing, what CI runs)
  agentprm/GSMSymbolic-v0      16 steps, tasks = 2200 problems of reasoning-gym's gsm_symbolic
                               (pip install 'agentprm[math]'; short name "gsm-symbolic")
  agentprm/GSM8K-v0            16 steps, tasks = the user's GSM8K-format JSONL (data_path=..., else
                               $AGENTPRM_MATH_DATA: a file, or a folder with test.jsonl / train.jsonl)

agentprm/AgentGym-{BabyAI,TextCraft,WebShop}-v0 (short names agentgym-babyai, agentgym-textcraft,
agentgym-webshop) play an AgentGym env server by URL: AgentGym's own or `agentprm serve-env`
(envs/agentgym_remote.py). The URL is gym.make(..., url=...) or $AGENTPRM_AGENTGYM_URL, so every
recipe plays them:
    AGENTPRM_AGENTGYM_URL=http://127.0.0.1:36001 agentprm collect --env agentgym-webshop ...
They share the family's splits, prompt and expert; the server's task index i is task i.

A variant of an env (babyai-agentgym) has its own short name, so records say which one played,
and shares its family's splits, prompt and expert: family(name) gives the family.

The three math envs (MATH_ENVS) differ in their problems, so each is its own family with its own
splits; they share one prompt, one expert and one rendering: a step continues the solution so far,
shown as ONE assistant message (agentprm.prompts), with no observation in between. Their step cap
of 16 is twice the longest reference solution of the built-in and gsm_symbolic data (8 steps with
the "#### <n>" line); GSM8K's paper counts 2 to 8 steps per problem.
"""

from __future__ import annotations

import os

import gymnasium as gym

ENV_IDS = {
    "babyai": "agentprm/BabyAI-v0",
    "babyai-agentgym": "agentprm/BabyAI-AgentGym-v0",
    "textcraft": "agentprm/TextCraft-v0",
    "webshop": "agentprm/WebShop-v0",
    "math": "agentprm/Math-v0",
    "gsm-symbolic": "agentprm/GSMSymbolic-v0",
    "gsm8k": "agentprm/GSM8K-v0",
    # an AgentGym env server by URL (module docstring): they need a server running
    "agentgym-babyai": "agentprm/AgentGym-BabyAI-v0",
    "agentgym-textcraft": "agentprm/AgentGym-TextCraft-v0",
    "agentgym-webshop": "agentprm/AgentGym-WebShop-v0",
}
# The envs that play on a server (not on this machine) -> the family they play; their round caps,
# prompt, splits and constructor arguments follow from it. Tests and benchmarks that make every env
# skip them.
REMOTE_FAMILY = {
    "agentgym-babyai": "babyai",
    "agentgym-textcraft": "textcraft",
    "agentgym-webshop": "webshop",
}
REMOTE = frozenset(REMOTE_FAMILY)
# Where they play: gym.make(..., url=...), else this environment variable, else AgentGym's default port.
URL_ENV = "AGENTPRM_AGENTGYM_URL"
DEFAULT_URL = "http://127.0.0.1:8000"


def agentgym_url() -> str:
    """The AgentGym env server the agentgym-* envs play when no url= is given."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


# Math envs: one step per round, so the cap counts reasoning steps (module docstring).
MAX_ROUNDS = {
    "babyai": 20,
    "babyai-agentgym": 20,
    "textcraft": 20,
    "webshop": 6,
    "math": 16,
    "gsm-symbolic": 16,
    "gsm8k": 16,
}
# short name -> the env whose tasks, splits, prompt and expert it uses
FAMILY = {
    "babyai": "babyai",
    "babyai-agentgym": "babyai",
    "textcraft": "textcraft",
    "webshop": "webshop",
    "math": "math",
    "gsm-symbolic": "gsm-symbolic",
    "gsm8k": "gsm8k",
    **REMOTE_FAMILY,
}
MAX_ROUNDS |= {name: MAX_ROUNDS[fam] for name, fam in REMOTE_FAMILY.items()}
# Math word problems from three sources: one prompt, expert and rendering (module docstring).
MATH_ENVS = ("math", "gsm-symbolic", "gsm8k")

_ENTRY_POINTS = {
    "babyai": "agentprm.envs.babyai:BabyAITextEnv",
    "babyai-agentgym": "agentprm.envs.babyai:BabyAITextEnv",
    "textcraft": "agentprm.envs.textcraft:TextCraftEnv",
    "webshop": "agentprm.envs.webshop.env:WebShopEnv",
    "math": "agentprm.envs.math.env:MathEnv",
    "gsm-symbolic": "agentprm.envs.math.env:MathEnv",
    "gsm8k": "agentprm.envs.math.env:MathEnv",
    **{name: "agentprm.envs.agentgym_remote:AgentGymEnv" for name in REMOTE},
}
_KWARGS = {
    "babyai-agentgym": {"compat": "agentgym"},
    "math": {"source": "builtin"},
    "gsm-symbolic": {"source": "gsm_symbolic"},
    "gsm8k": {"source": "gsm8k"},
    **{name: {"env_family": fam} for name, fam in REMOTE_FAMILY.items()},
}

for _name, _id in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point=_ENTRY_POINTS[_name],
            max_episode_steps=MAX_ROUNDS[_name],
            kwargs=_KWARGS.get(_name, {}),
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
    "math": "built-in GSM8K-style word problems (9 templates, 3-4 arithmetic steps): a smoke test of the "
    "math pipeline, easier than GSM8K; not comparable with the paper's GSM8K numbers",
    "gsm-symbolic": "reasoning-gym's gsm_symbolic (GSM8K test templates with new numbers and names): "
    "harder to compare with GSM8K than its own test set",
}


def mode_note(name: str) -> str:
    """Short name or id -> one line saying which env mode produced a number and what it compares with.

    >>> mode_note("agentprm/BabyAI-AgentGym-v0").startswith("AgentGym-exact")
    True
    """
    short = short_name(name)
    if short == "gsm8k":  # the user's own problems: say which
        from agentprm.envs.math.data import DATA_ENV

        where = os.environ.get(DATA_ENV) or f"(no data: set {DATA_ENV})"
        return f"the user's GSM8K-format problems from {where}: GSM8K's test.jsonl is the paper's setting"
    if short == "webshop":  # which data: the embedded catalogue's numbers do not compare with the paper's
        from agentprm.envs.webshop.data import describe_source

        return f"WebShop text mode as AgentGym serves it, on the {describe_source()}"
    if short in REMOTE:  # the server decides: say which one played
        return (
            f"played on the AgentGym {family(short)} env server at {agentgym_url()}: its behaviour and data "
            "decide what compares"
        )
    return MODE_NOTES[short]


# How each environment answers a command it refused (nothing happened): agentprm.envs.babyai's
# NOT_RECOGNIZED and TextCraft's "Could not ..." replies (tests/test_envs.py checks the former).
_REJECTED = {
    "babyai": "The action is not recognized.",
    "textcraft": "Could not ",
    "webshop": "Invalid Action",
    "math": "Step refused: ",  # agentprm.envs.math.REFUSED: a step too long to be one
    "gsm-symbolic": "Step refused: ",
    "gsm8k": "Step refused: ",
}


def rejected(env: str, observation: str) -> bool:
    """Whether `observation` says the environment refused the command. SFT never imitates such a
    response (the BabyAI expert's deliberate mistakes, a policy's invalid actions in RFT data).

    >>> rejected("babyai", "The action is not recognized. Please check valid actions. Available actions: []")
    True
    """
    return observation.startswith(_REJECTED[family(env)])


def stop_strings(env: str) -> tuple[str, ...]:
    """Strings that end one step's response in `env` (rollout and search add them to the sampling
    params): the math envs' step delimiter "\\n", so that a step is one line whatever the model would
    write next; none for the agent envs, whose turn ends at the end-of-turn token (and HFPolicy's
    stop after the action line).

    >>> stop_strings("math"), stop_strings("babyai")
    (('\\n',), ())
    """
    return ("\n",) if family(env) in MATH_ENVS else ()
