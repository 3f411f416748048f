"""AgentGym trajectory format <-> Trajectory.

AgentGym (agentenv, AgentTraj-L) stores one episode as
    {"item_id": "babyai_7", "conversations": [{"from": "human"|"gpt", "loss": bool|None, "value": str}]}
where the conversation is:
    human (loss None)   the env's instruction prompt            } "conversation_start"
    gpt   (loss False)  "OK. I'll follow your instructions ..." }
    human (loss None)   the initial observation
    gpt   (loss True)   the agent's response for round 1
    human (loss None)   the env's reply to it
    ... alternating; AgentGym's own collector also records the reply to the last response.
AgentGym readers ignore unknown keys, so to_agentgym also carries our outcome as "reward",
"success", "terminated" and "truncated".

Example:
    >>> from agentprm.types import Step, Trajectory
    >>> t = Trajectory(env="babyai", task=7, initial_observation="You see a ball.",
    ...                steps=(Step("Action: pick up ball 1", "pick up ball 1", "Done."),),
    ...                reward=1.0, success=True, terminated=True, truncated=False, policy="expert")
    >>> record = to_agentgym(t, system_prompt="You are an agent in BabyAI.")
    >>> [m["from"] for m in record["conversations"]]
    ['human', 'gpt', 'human', 'gpt', 'human']
    >>> from_agentgym(record).actions
    ['pick up ball 1']
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable

from agentprm.envs.react import parse_react
from agentprm.types import Step, Trajectory

OK_REPLY = "OK. I'll follow your instructions and try my best to solve the task."
# Envs whose AgentGym clients strip characters outside [A-Za-z0-9, ] from the command.
STRICT_CHARSET_ENVS = frozenset({"babyai", "babyai-agentgym", "textcraft"})
_ITEM_ID_RE = re.compile(r"([a-z][a-z0-9_]*)_([0-9]+)")


def _message(sender: str, value: str, loss: bool | None) -> dict:
    return {"from": sender, "loss": loss, "value": value}


def to_agentgym(traj: Trajectory, system_prompt: str) -> dict:
    """Trajectory -> AgentGym record with item_id f"{env}_{task}".

    system_prompt is the env's instruction prompt (the first human message). Lost in the
    conversion: sample, policy, token counts, per-step rewards and extras, meta.
    """
    conversations = [
        _message("human", system_prompt, None),
        _message("gpt", OK_REPLY, False),
        _message("human", traj.initial_observation, None),
    ]
    for step in traj.steps:
        conversations.append(_message("gpt", step.response, True))
        conversations.append(_message("human", step.observation, None))
    record = {"conversations": conversations, "item_id": f"{traj.env}_{traj.task}"}
    if not math.isnan(traj.reward):
        record["reward"] = traj.reward
    record["success"] = traj.success
    record["terminated"] = traj.terminated
    record["truncated"] = traj.truncated
    return record


def _parse_item_id(item_id: object) -> tuple[str, int]:
    match = _ITEM_ID_RE.fullmatch(item_id) if isinstance(item_id, str) else None
    if match is None:
        raise ValueError(
            f"AgentGym item_id {item_id!r} is not of the form '<env>_<task index>' "
            "(e.g. 'babyai_7', 'textcraft_12')"
        )
    return match.group(1), int(match.group(2))


def from_agentgym(record: dict, system_prompt: str | None = None, *, policy: str = "agentgym") -> Trajectory:
    """AgentGym record -> Trajectory (sample 0).

    env and task come from item_id ("textcraft_12" -> ("textcraft", 12)). The conversation_start
    pair (instruction, "OK." reply) is skipped when present; if system_prompt is given and the
    record's instruction differs, ValueError (the record was made with another prompt). Each gpt
    message becomes Step(response, parse_react(response).action, next human message or "").

    Outcome: the record's "reward"/"success" keys when present (as to_agentgym writes them); a
    missing one defaults to reward=NaN / success=False, with meta["outcome_known"]=False.
    terminated/truncated come from the record when present, else terminated=success and
    truncated=False (AgentGym's own files do not say).

    >>> record = {"item_id": "textcraft_12", "conversations": [
    ...     {"from": "human", "loss": None, "value": "Goal: craft stick."},
    ...     {"from": "gpt", "loss": True, "value": "Action: craft 4 stick\\nAction: inventory"}]}
    >>> t = from_agentgym(record)
    >>> t.actions, t.steps[0].observation, t.meta
    ([None], '', {'outcome_known': False})
    """
    if not isinstance(record, dict):
        raise ValueError(f"an AgentGym record must be a dict, got {type(record).__name__}")
    env, task = _parse_item_id(record.get("item_id"))
    where = f"AgentGym record {record.get('item_id')!r}"
    messages = record.get("conversations")
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'conversations' must be a non-empty list of messages")
    for i, m in enumerate(messages):
        if not (
            isinstance(m, dict) and m.get("from") in ("human", "gpt") and isinstance(m.get("value"), str)
        ):
            raise ValueError(
                f"{where}: conversations[{i}] must be {{'from': 'human'|'gpt', 'value': str}}, got {m!r:.120}"
            )

    if len(messages) >= 2 and messages[1]["from"] == "gpt" and messages[1]["value"].startswith("OK."):
        if system_prompt is not None and messages[0]["value"] != system_prompt:
            raise ValueError(
                f"{where}: its instruction prompt differs from system_prompt; pass the prompt it was "
                "collected with, or system_prompt=None to skip this check"
            )
        messages = messages[2:]
    for i, m in enumerate(messages):
        expected = "human" if i % 2 == 0 else "gpt"
        if m["from"] != expected:
            raise ValueError(
                f"{where}: after the instruction, messages must alternate human (observation) / gpt "
                f"(response), but message {i} is from {m['from']!r}"
            )
    if not messages:
        raise ValueError(f"{where}: no initial observation (the conversation holds only the instruction)")

    strict_charset = env in STRICT_CHARSET_ENVS
    steps = []
    for i in range(1, len(messages), 2):
        response = messages[i]["value"]
        observation = messages[i + 1]["value"] if i + 1 < len(messages) else ""
        steps.append(Step(response, parse_react(response, strict_charset).action, observation))

    meta: dict = {}
    reward, success = record.get("reward"), record.get("success", False)
    if reward is None or "success" not in record:
        meta["outcome_known"] = False
    if reward is None:
        reward = math.nan
    if isinstance(reward, bool) or not isinstance(reward, (int, float)):
        raise ValueError(f"{where}: 'reward' must be a number, got {reward!r}")
    if not isinstance(success, bool):
        raise ValueError(f"{where}: 'success' must be a bool, got {success!r}")
    terminated = record.get("terminated", success)
    truncated = record.get("truncated", False)
    if not isinstance(terminated, bool) or not isinstance(truncated, bool):
        raise ValueError(f"{where}: 'terminated' and 'truncated' must be bools")
    return Trajectory(
        env=env,
        task=task,
        initial_observation=messages[0]["value"],
        steps=tuple(steps),
        reward=float(reward),
        success=success,
        terminated=terminated,
        truncated=truncated,
        policy=policy,
        meta=meta,
    )


def read_agentgym_json(path: str | os.PathLike) -> list[dict]:
    """Read AgentGym records: a JSON list of records (AgentGym's files) or JSONL, one per line."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if text.lstrip().startswith("["):
            raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        data = None  # several lines: JSONL, parsed line by line below
    if isinstance(data, list):
        records = data
    elif isinstance(data, dict):
        records = [data]
    else:
        records = []
        for lineno, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ValueError(f"{path}: record {i} is a {type(r).__name__}, expected an object")
    return records


def write_agentgym_json(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write records as one JSON list (AgentGym's layout), replacing path atomically."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(list(records), f, ensure_ascii=False, indent=2, allow_nan=False)
        f.write("\n")
    # Write-then-rename: a crash never leaves a half-written list where a good file was.
    os.replace(tmp, path)
