"""BabyAI's AgentGym-exact mode: one hand-built case per switch where AgentGym differs from the
project's default, the registered name/id, and the real AgentGym transcripts replayed exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from minigrid.core.world_object import Ball, Box

import agentprm.envs as E
from agentprm.envs.babyai import COMPLETED, NO_CHANGE, NOT_RECOGNIZED, BabyAITextEnv, describe
from agentprm.envs.babyai_agentgym import AGENTGYM, AgentGymQuirks
from agentprm.envs.react import NO_ACTION
from agentprm.envs.splits import parse_tasks, split
from agentprm.experts import make_expert
from agentprm.prompts import instruction

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "agentgym" / "transcripts.jsonl"


def only(*names: str) -> AgentGymQuirks:
    return AgentGymQuirks().only(*names)


def act(command: str) -> str:
    return f"Thought:\nok\n\nAction:\n{command}"


def env_for(task: int, quirks: AgentGymQuirks | None = None, compat: str | None = None) -> BabyAITextEnv:
    env = BabyAITextEnv(compat=compat, quirks=quirks)
    env.reset(options={"task": task})
    return env


# -- the name, id and shared splits/prompt/expert -------------------------------------------------
def test_short_name_id_and_family():
    assert E.short_name("babyai-agentgym") == "babyai-agentgym"
    assert E.short_name("agentprm/BabyAI-AgentGym-v0") == "babyai-agentgym"
    assert E.env_id("BabyAI-AgentGym") == "agentprm/BabyAI-AgentGym-v0"
    assert E.family("babyai-agentgym") == "babyai"
    assert E.make("babyai-agentgym").unwrapped.quirks == AGENTGYM
    assert E.make("babyai").unwrapped.quirks == AgentGymQuirks()
    assert split("babyai-agentgym", "test") == split("babyai", "test") == list(range(90))
    assert parse_tasks("babyai-agentgym", "test_short") == parse_tasks("babyai", "test_short")
    assert instruction("babyai-agentgym") == instruction("babyai")
    assert type(make_expert("babyai-agentgym")).__name__ == "BabyAIExpert"
    assert E.rejected("babyai-agentgym", NOT_RECOGNIZED + " Available actions: []")


def test_unknown_compat_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown BabyAI compat mode"):
        BabyAITextEnv(compat="agentgym2")
    with pytest.raises(ValueError, match="unknown AgentGym switches"):
        AgentGymQuirks().only("trailing_moves")


# -- one case per switch ----------------------------------------------------------------------------
@pytest.mark.parametrize("quirks", [only("trailing_moves_after_done"), AGENTGYM])
def test_trailing_moves_overwrite_a_success(quirks):
    # OpenRedDoor seed 0: the toggle opens the door (minigrid: success), the trailing forward
    # steps into the doorway. The project stops at the success; AgentGym reports the last move.
    command = act("toggle and go through red closed door 1")
    _, reward, terminated, _, info = env_for(12).step(command)
    assert terminated and reward > 0.9 and info["success"]
    obs, reward, terminated, _, info = env_for(12, quirks).step(command)
    assert (reward, terminated, info["success"]) == (0.0, False, False)
    assert COMPLETED not in obs and "You cannot see" not in obs  # standing in the doorway


def _late_success(env: BabyAITextEnv):
    """GoToRedBall seed 0 (max_steps 64): 36 turns (back where it started), then the 7-step go-to
    wins at step 43, for a reward of 1 - 0.9 * 43 / 64 = 0.395."""
    for _ in range(36):
        env.step(act("turn left"))
    return env.step(act("go to red ball 1"))


def test_done_reset_quirk_keeps_a_low_reward_success_going():
    _, reward, terminated, _, info = _late_success(env_for(2))
    assert terminated and info["success"] and reward == pytest.approx(1 - 0.9 * 43 / 64)
    obs, reward, terminated, _, info = _late_success(env_for(2, only("done_reset_quirk")))
    assert reward == pytest.approx(1 - 0.9 * 43 / 64)
    assert COMPLETED in obs and not terminated and not info["success"]


def test_sticky_reward_repeats_the_last_reward_on_a_step_without_primitives():
    env = env_for(2, only("done_reset_quirk", "sticky_reward"))
    _, first, *_ = _late_success(env)
    for command in ("check available actions", "jump", ""):
        _, reward, terminated, _, _ = env.step(act(command))
        assert reward == first and not terminated
    # AgentGym's score sums its step rewards: 4 x 0.395 > 1 is clipped, the raw sum is kept.
    _, _, _, _, info = env.step(act("turn left"))
    assert info["agentgym_score"] == pytest.approx(4 * first) and info["score"] == 1.0
    _, reward, *_ = env_for(2, only("done_reset_quirk")).step(act("check available actions"))
    assert reward == 0.0


def test_no_pickup_alias():
    obs, *_ = env_for(2).step(act("pick up red ball 1"))
    assert not obs.startswith(NOT_RECOGNIZED)
    obs, *_ = env_for(2, only("no_pickup_alias")).step(act("pick up red ball 1"))
    assert obs.startswith(NOT_RECOGNIZED)


def test_missing_action_sends_an_empty_command():
    obs, _, _, _, info = env_for(2).step("Thought: I will think first.")
    assert obs == NO_ACTION and info["parse_error"]
    obs, _, _, _, info = env_for(2, only("empty_action_for_missing")).step("Thought: I will think first.")
    assert obs.startswith(NO_CHANGE + "\nAvailable actions:") and info["action"] == ""


def test_eos_suffix_is_kept_and_spoils_the_command():
    _, _, _, _, info = env_for(2).step("Action: turn left</s>")
    assert info["action"] == "turn left"
    obs, _, _, _, info = env_for(2, only("keep_eos_suffix")).step("Action: turn left</s>")
    assert info["action"] == "turn lefts" and obs.startswith(NOT_RECOGNIZED)


def test_no_step_limit():
    # GoToRedBall's minigrid limit is 64 primitive steps: the project truncates at the 64th turn.
    results = {}
    for name, quirks in (("project", None), ("agentgym", only("no_step_limit"))):
        env = env_for(2, quirks)
        results[name] = [env.step(act("turn left"))[3] for _ in range(64)]
    assert results["project"][-1] and not any(results["project"][:-1])
    assert not any(results["agentgym"])


def test_no_step_limit_with_all_switches_gives_a_negative_reward_and_goes_on():
    # 72 turns (past minigrid's limit of 64), then the 7-step go-to wins at step 79.
    env = env_for(2, compat="agentgym")
    for _ in range(72):
        env.step(act("turn left"))
    obs, reward, terminated, truncated, info = env.step(act("go to red ball 1"))
    assert reward == pytest.approx(1 - 0.9 * 79 / 64) and reward < 0
    assert COMPLETED in obs and not terminated and not truncated and info["score"] == 0.0


def test_stale_first_observation_on_put_next_carrying():
    # PutNextS7N4Carrying seed 0: the yellow box is handed to the agent after reset()'s image.
    obs, _ = BabyAITextEnv().reset(options={"task": 22})
    assert "You are carrying a yellow box." in obs and "yellow box 1" not in obs
    obs, _ = BabyAITextEnv(quirks=only("stale_first_obs")).reset(options={"task": 22})
    assert "You are carrying a yellow box." in obs
    assert "There is a yellow box 1 2 steps in front of you" in obs and '"go to yellow box 1"' in obs


def test_offbyone_search_window_offers_a_path_through_unseen_cells():
    # SynthS5R2 seed 0: the door is only reachable by a path through the row behind the agent.
    env = env_for(34)
    assert "go to blue closed door 1" not in env.view.macros
    path = describe(env.grid_env, only("offbyone_search_window")).macros["go to blue closed door 1"]
    assert path[:3] == [0, 0, 2]  # turn around, step into the unseen row


def _two_red_balls(env: BabyAITextEnv) -> None:
    """GoToRedBall seed 0, emptied: red ball A 2 cells ahead, boxed in (unreachable), red ball B
    further away and reachable. The description calls them red ball 1 (A) and red ball 2 (B)."""
    grid = env.grid_env.grid
    for x in range(1, 7):
        for y in range(1, 7):
            grid.set(x, y, None)
    # the agent stands at (6, 5) facing -x: A at (4, 5); its four neighbours hold boxes
    grid.set(4, 5, Ball("red"))
    for x, y in ((5, 5), (3, 5), (4, 4), (4, 6)):
        grid.set(x, y, Box("grey"))
    grid.set(4, 2, Ball("red"))  # B


def test_agentgym_numbering_counts_reachable_objects_only():
    env = env_for(2)
    assert tuple(env.grid_env.agent_pos) == (6, 5) and env.grid_env.agent_dir == 2
    _two_red_balls(env)
    project = describe(env.grid_env)
    agentgym = describe(env.grid_env, only("agentgym_numbering"))
    assert "There is a red ball 1 right in front of you 2 steps away." in project.description
    assert project.description == agentgym.description
    assert "go to red ball 1" in project.errors and "go to red ball 2" in project.macros
    assert agentgym.macros["go to red ball 1"] == project.macros["go to red ball 2"]
    assert "go to red ball 2" not in agentgym.macros


def test_agentgym_path_choice_picks_another_shortest_path():
    # GoToRedBallGrey seed 0: both searches end facing the ball after 8 moves, by different routes.
    env = env_for(0)
    project = env.view.macros["go to red ball 1"]
    agentgym = describe(env.grid_env, only("agentgym_path_choice")).macros["go to red ball 1"]
    assert len(project) == len(agentgym) == 8 and project != agentgym
    assert agentgym == [1, 2, 2, 2, 0, 2, 2, 2]


def test_dict_in_door_error():
    env = env_for(34)
    obs, *_ = env.step(act("toggle and go through blue closed door 1"))
    assert obs.startswith("You cannot toggle and go through blue closed door 1, as there is no path")
    env = env_for(34, only("dict_in_door_error"))
    obs, *_ = env.step(act("toggle and go through blue closed door 1"))
    assert obs.startswith(
        "You cannot toggle and go through blue closed door {'blue closed door': 1}, as there is no path"
    )


# -- golden data ------------------------------------------------------------------------------------
def _babyai_transcripts() -> list[dict]:
    if not TRANSCRIPTS.exists():
        pytest.skip(f"{TRANSCRIPTS} is not in this checkout")
    lines = TRANSCRIPTS.read_text().splitlines()
    return [d for d in map(json.loads, lines) if d["env"] == "babyai"]


def test_agentgym_transcripts_replay_exactly():
    for record in _babyai_transcripts():
        env = E.make("babyai-agentgym")
        obs, info = env.reset(options={"task": record["data_idx"]})
        assert obs == record["initial_observation"]
        for s in record["steps"]:
            obs, _, terminated, _, info = env.step(s["response"])
            assert obs == s["observation"], record["item_id"]
        assert terminated == record["done"]
        assert info["score"] == pytest.approx(record["reward"])
