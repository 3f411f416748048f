"""agentprm's environments and PRM rewards behind OpenRLHF's real agent interface (openrlhf.utils.agent,
installed by scripts/setup.sh without its GPU dependencies), driven through a full episode with the
embedded tiny policy and a tiny PRM."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("openrlhf.utils.agent")

from openrlhf.utils.agent import AgentExecutorBase, AgentInstanceBase  # noqa: E402

from agentprm.integrations import openrlhf_agent as oa  # noqa: E402
from agentprm.models.loading import load_policy_model  # noqa: E402
from agentprm.prm.batch import encode, score_encoded  # noqa: E402
from agentprm.prm.value import load_value_model  # noqa: E402
from agentprm.prompts import render_messages, to_text  # noqa: E402
from agentprm.recipes import train_prm  # noqa: E402
from agentprm.types import Step, Trajectory  # noqa: E402


def test_the_module_is_what_openrlhf_loads():
    assert issubclass(oa.AgentExecutor, AgentExecutorBase) and issubclass(oa.AgentInstance, AgentInstanceBase)
    assert oa.parse_label("webshop:26") == ("webshop", 26)
    with pytest.raises(ValueError, match="<env>:<task>"):
        oa.parse_label("webshop")


def test_an_episode_through_openrlhfs_executor_pays_telescoping_prm_rewards(
    expert_data, tiny_policy, tmp_path, monkeypatch
):
    policy_dir = tiny_policy
    train_prm.main(
        train_prm.Args(
            data=expert_data, model=str(policy_dir), run_dir=tmp_path / "prm", labels="td", epochs=1,
            batch_size=8, heldout=0.2, max_prompt_tokens=512,
        )
    )  # fmt: skip
    monkeypatch.setenv("AGENTPRM_REWARD", "agentprm")
    monkeypatch.setenv("AGENTPRM_PRM", str(tmp_path / "prm"))
    monkeypatch.setenv("AGENTPRM_MAX_ROUNDS", "3")
    model, tok = load_policy_model(policy_dir)
    result = oa.run_episode("babyai:400", model, tok, max_tokens=24, temperature=1.0, seed=1)

    turns = len(result["action_ranges"])
    assert 1 <= turns <= 3 and math.isfinite(result["reward"])
    actions = [
        tok.decode(result["observation_tokens"][a:b], skip_special_tokens=True)
        for a, b in result["action_ranges"]
    ]
    from agentprm.envs import make

    env = make("babyai", max_episode_steps=3)
    o0, _ = env.reset(options={"task": 400})
    steps = []
    for response in actions:
        obs, r, term, trunc, info = env.step(response)
        steps.append(Step(response, info.get("action"), obs, float(r)))
    traj = Trajectory(
        env="babyai", task=400, initial_observation=o0, steps=tuple(steps), reward=float(info["score"]),
        success=bool(info["success"]), terminated=term, truncated=trunc, policy="t",
    )  # fmt: skip
    # Outside the responses, the tokens are the renderer's text of the same episode: o_0's prompt, then
    # each observation as a user turn (the response's end-of-turn token comes from the engine).
    ids, ranges = result["observation_tokens"], result["action_ranges"]
    start = to_text(tok, render_messages("babyai", traj.state(0)), add_generation_prompt=True)
    assert tok.decode(ids[: ranges[0][0]]) == start
    for i in range(turns - 1):
        full = to_text(tok, render_messages("babyai", traj.state(i + 1)), add_generation_prompt=True)
        closed = actions[i] + tok.eos_token
        separator = full[full.rindex(closed) + len(closed) :]
        assert tok.decode(ids[ranges[i][1] : ranges[i + 1][0]]) == separator
        assert separator.startswith("\n<|im_start|>user\n" + steps[i].observation)
    # Summed step rewards = M_{T-1} - M_{-1} + the outcome (progress telescopes).
    prm, prm_tok = load_value_model(tmp_path / "prm" / "model")
    prev: list = []
    values = score_encoded(prm, encode("babyai", [traj], prm_tok, None), 1, prm_tok.pad_token_id, q_prev=prev)
    assert result["reward"] == pytest.approx(float(values[0][-1]) - float(prev[0]) + traj.reward, abs=1e-4)
