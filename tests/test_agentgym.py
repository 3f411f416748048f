"""AgentGym "conversations" records <-> Trajectory."""

from __future__ import annotations

import json
import math

import pytest

from agentprm.agentgym import (
    OK_REPLY,
    from_agentgym,
    read_agentgym_json,
    to_agentgym,
    write_agentgym_json,
)
from agentprm.envs.react import NO_ACTION, ONLY_ONE_ACTION, format_react
from agentprm.types import Step, Trajectory

PROMPT = "You are an exploration master that wants to finish every goal you are given."


def make_traj(env: str = "textcraft", task: int = 12) -> Trajectory:
    return Trajectory(
        env=env,
        task=task,
        initial_observation="Crafting commands:\n1 stick = 2 planks.\nGoal: craft stick.",
        steps=(
            Step(format_react("I need planks.", "get 2 oak planks"), "get 2 oak planks", "Got 2 oak planks"),
            Step("I will just think.", None, NO_ACTION),
            Step("Action: craft 4 stick\nAction: inventory", None, ONLY_ONE_ACTION),
            Step(
                format_react("Craft it — now ✓.", "craft 4 stick using 2 oak planks"),
                "craft 4 stick using 2 oak planks",
                "Crafted 4 minecraft:stick",
            ),
        ),
        reward=0.4375,
        success=True,
        terminated=True,
        truncated=False,
        policy="expert:textcraft",
    )


def test_export_layout():
    record = to_agentgym(make_traj(), PROMPT)
    conv = record["conversations"]
    assert record["item_id"] == "textcraft_12"
    assert conv[0] == {"from": "human", "loss": None, "value": PROMPT}
    assert conv[1] == {"from": "gpt", "loss": False, "value": OK_REPLY}
    assert conv[2]["value"].startswith("Crafting commands")
    assert [m["from"] for m in conv[2:]] == ["human", "gpt"] * 4 + ["human"]
    assert [m["loss"] for m in conv[2:]] == [None, True] * 4 + [None]
    assert record["reward"] == 0.4375 and record["success"] is True
    json.dumps(record, allow_nan=False)


@pytest.mark.parametrize("env", ["textcraft", "babyai"])
def test_export_import_roundtrip(env):
    traj = make_traj(env=env, task=7)
    back = from_agentgym(to_agentgym(traj, PROMPT), system_prompt=PROMPT)
    assert back.key == (env, 7, 0)
    assert [s.response for s in back.steps] == [s.response for s in traj.steps]
    assert back.actions == traj.actions
    assert [s.observation for s in back.steps] == [s.observation for s in traj.steps]
    assert back.initial_observation == traj.initial_observation
    assert (back.reward, back.success, back.terminated, back.truncated) == (0.4375, True, True, False)
    assert "outcome_known" not in back.meta


def test_roundtrip_through_file(tmp_path):
    records = [to_agentgym(make_traj(task=i), PROMPT) for i in range(3)]
    path = tmp_path / "out" / "agentgym.json"
    write_agentgym_json(path, records)
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), list)
    assert read_agentgym_json(path) == records
    jsonl = tmp_path / "agentgym.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    assert read_agentgym_json(jsonl) == records
    jsonl.write_text(json.dumps(records[0]) + "\n", encoding="utf-8")
    assert read_agentgym_json(jsonl) == records[:1]


def test_bad_files_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"item_id": "babyai_1"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        read_agentgym_json(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="record 0 is a int"):
        read_agentgym_json(path)


def test_import_handwritten_record_two_actions_and_no_outcome():
    record = {
        "item_id": "babyai_3",
        "conversations": [
            {"from": "human", "loss": None, "value": "You are an agent in a grid world."},
            {"from": "gpt", "loss": False, "value": OK_REPLY},
            {"from": "human", "loss": None, "value": "Your goal: go to the red ball."},
            {"from": "gpt", "loss": True, "value": "Thought: hmm.\nAction: turn left\nAction: go forward"},
            {"from": "human", "loss": None, "value": ONLY_ONE_ACTION},
            {"from": "gpt", "loss": True, "value": "Thought:\nok\n\nAction:\ngo to red ball 1!</s>"},
        ],
    }
    traj = from_agentgym(record)
    assert traj.key == ("babyai", 3, 0)
    assert traj.initial_observation == "Your goal: go to the red ball."
    assert traj.actions == [None, "go to red ball 1"]  # strict charset drops the "!"
    assert [s.observation for s in traj.steps] == [ONLY_ONE_ACTION, ""]
    assert math.isnan(traj.reward) and traj.success is False
    assert traj.meta["outcome_known"] is False

    # Without the conversation_start pair, the first message is the initial observation.
    bare = {**record, "conversations": record["conversations"][2:]}
    assert from_agentgym(bare).actions == traj.actions


def test_non_strict_env_keeps_brackets():
    record = {
        "item_id": "webshop_5",
        "conversations": [
            {"from": "human", "loss": None, "value": "Find a red shirt."},
            {"from": "gpt", "loss": True, "value": "Action: search[red shirt]"},
        ],
    }
    assert from_agentgym(record).actions == ["search[red shirt]"]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"item_id": "babyai", "conversations": []}, "item_id 'babyai' is not of the form"),
        ({"item_id": 7, "conversations": []}, "item_id 7 is not of the form"),
        ({"item_id": "babyai_1", "conversations": []}, "non-empty list"),
        ({"item_id": "babyai_1", "conversations": [{"from": "system", "value": "x"}]}, r"conversations\[0\]"),
        (
            {"item_id": "babyai_1", "conversations": [{"from": "gpt", "value": "Action: x"}]},
            "message 0 is from 'gpt'",
        ),
        (
            {"item_id": "babyai_1", "conversations": [{"from": "human", "value": "o"}], "success": "yes"},
            "'success' must be a bool",
        ),
    ],
)
def test_import_errors_are_clear(record, message):
    with pytest.raises(ValueError, match=message):
        from_agentgym(record)


def test_import_checks_the_instruction_prompt_when_given():
    record = to_agentgym(make_traj(), PROMPT)
    with pytest.raises(ValueError, match="differs from system_prompt"):
        from_agentgym(record, system_prompt="another prompt")
