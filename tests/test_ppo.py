"""Multi-turn PPO (agentprm/ppo.py, agentprm/recipes/ppo.py): hand-computed maths, then the recipe."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from agentprm import ppo
from agentprm.recipes import ppo as ppo_recipe
from agentprm.types import read_trajectories


def test_gae_over_turns_by_hand():
    # 3 turns, gamma 0.9, lam 0.8, V = (0.2, 0.5, 0.4), rewards (0, 0, 1), the episode ends after turn 2.
    # delta_2 = 1 - 0.4 = 0.6;          A_2 = 0.6
    # delta_1 = 0 + 0.9*0.4 - 0.5 = -0.14; A_1 = -0.14 + 0.72*0.6 = 0.292
    # delta_0 = 0 + 0.9*0.5 - 0.2 = 0.25;  A_0 = 0.25 + 0.72*0.292 = 0.46024
    adv, ret = ppo.turn_gae([0.0, 0.0, 1.0], [0.2, 0.5, 0.4], gamma=0.9, lam=0.8)
    assert adv == pytest.approx([0.46024, 0.292, 0.6])
    assert ret == pytest.approx([0.66024, 0.792, 1.0])
    # a bootstrap value after the last turn enters delta_2 only
    adv_b, _ = ppo.turn_gae([0.0, 0.0, 1.0], [0.2, 0.5, 0.4], gamma=0.9, lam=0.8, bootstrap=0.5)
    assert adv_b[2] == pytest.approx(0.6 + 0.45)


def test_progress_rewards_telescope():
    values, initial, outcome = [0.3, 0.1, 0.8, 0.65], 0.2, 1.0
    for source in ("agentprm", "pvm"):
        r = ppo.turn_rewards(source, outcome, values, initial, outcome_coef=0.5)
        assert r[:3] == pytest.approx([0.1, -0.2, 0.7])  # M_t - M_{t-1}, M_{-1} = 0.2
        assert sum(r) == pytest.approx(values[-1] - initial + 0.5 * outcome)
    assert ppo.turn_rewards("orm", outcome, values, outcome_coef=0.5) == pytest.approx([0, 0, 0, 0.65 + 0.5])
    assert ppo.turn_rewards("env", 0.7, values) == [0.0, 0.0, 0.0, 0.7]
    with pytest.raises(ValueError, match="initial"):
        ppo.turn_rewards("agentprm", 1.0, values)
    with pytest.raises(ValueError, match="reward source"):
        ppo.turn_rewards("dense", 1.0, values)


def test_clipped_objective_on_a_fixed_batch():
    # ratios 0.5, 1.1, 1.5 with advantages -1, 2, 1 (clip 0.2):
    #   token 0: min(0.5*-1, 0.8*-1) = -0.8; token 1: min(2.2, 2.2) = 2.2; token 2: min(1.5, 1.2) = 1.2
    # loss = -(-0.8 + 2.2 + 1.2) / 3 = -0.8666..., clipped share 2/3
    logp = torch.log(torch.tensor([0.5, 1.1, 1.5]))
    loss, frac = ppo.policy_loss(
        logp, torch.zeros(3), torch.tensor([-1.0, 2.0, 1.0]), torch.ones(3), clip=0.2
    )
    assert loss.item() == pytest.approx(-2.6 / 3, abs=1e-6) and frac.item() == pytest.approx(2 / 3)


def test_observation_tokens_carry_no_loss():
    logp = torch.tensor([[-1.0, -2.0, -0.5, -0.3]], requires_grad=True)
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])  # tokens 0 and 3: prompt / observation
    adv = torch.tensor([[5.0, 1.0, -1.0, 7.0]])
    loss, _ = ppo.policy_loss(logp, logp.detach() - 0.1, adv, mask)
    loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[0, 3] == 0 and logp.grad[0, 1] != 0
    changed = logp.detach().clone()
    changed[0, 0], changed[0, 3] = 9.0, -9.0
    again, _ = ppo.policy_loss(changed, logp.detach() - 0.1, adv, mask)
    assert again.item() == pytest.approx(loss.item())
    kl = ppo.kl_to_reference(logp.detach(), logp.detach(), mask)
    assert kl.item() == 0.0  # the policy equals its reference at initialisation


def test_ppo_raises_the_rewarded_action_of_a_bandit():
    # A 3-armed bandit, arm 2 pays 1: the softmax policy's probability of arm 2 must rise from 1/3
    # to above 0.9 within 30 PPO updates of 4 epochs each (seeded sampling).
    torch.manual_seed(0)
    logits = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=0.5)
    for _ in range(30):
        with torch.no_grad():
            old = torch.log_softmax(logits, -1)
            arms = torch.multinomial(old.exp(), 16, replacement=True)
            rewards = (arms == 2).float()
            adv = ppo.whiten(rewards, torch.ones(16)) if rewards.std() > 0 else torch.zeros(16)
        for _ in range(4):
            logp = torch.log_softmax(logits, -1)[arms]
            loss, _ = ppo.policy_loss(logp, old[arms], adv, torch.ones(16))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert torch.softmax(logits, -1)[2].item() > 0.9


def _args(tmp_path, policy, **kw):
    base = dict(
        policy=policy,
        env="babyai",
        tasks="400:420",
        eval_tasks="0:2",
        iterations=2,
        tasks_per_iter=2,
        samples=2,
        minibatch=2,
        epochs=1,
        eval_every=2,
        max_rounds=2,
        max_new_tokens=8,
        run_dir=tmp_path / "ppo",
        threads=1,
    )
    return ppo_recipe.Args(**{**base, **kw})


@pytest.fixture(scope="module")
def sft_policy(tiny_policy) -> str:
    return tiny_policy


def test_ppo_recipe_runs_resumes_and_logs(sft_policy, tmp_path):
    policy = sft_policy
    ppo_recipe.main(_args(tmp_path, policy, iterations=1))
    lines = [json.loads(x) for x in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    # iteration 0 is the starting policy's greedy score, then one PPO iteration
    assert [m["iteration"] for m in lines] == [0, 1] and set(lines[0]) == {
        "time",
        "iteration",
        "eval/success",
        "eval/reward",
    }
    assert math.isfinite(lines[1]["train/policy_loss"])
    assert lines[1]["episodes"] == 4 and lines[1]["train/kl"] >= 0
    assert lines[1]["train/kl_max"] >= lines[1]["train/kl"]  # the largest term is at least the mean
    # resumed with a larger budget: iteration 2 only (no second iteration 0), then the evaluation and the final model
    ppo_recipe.main(_args(tmp_path, policy, iterations=2))
    lines = [json.loads(x) for x in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines] == [0, 1, 2] and "eval/success" in lines[-1]
    assert (tmp_path / "ppo" / "model" / "config.json").exists()


def test_kl_clamp_caps_the_loss_term_not_the_log(sft_policy, tmp_path):
    """--kl-clamp caps every token's k3 term in the loss (train/kl is their mean); train/kl_max still
    logs the uncapped largest term, so a spike stays visible."""
    # a high lr so that the later minibatches move the policy off its reference
    ppo_recipe.main(_args(tmp_path, sft_policy, iterations=1, lr=1e-2, kl_clamp=1e-7))
    line = [json.loads(x) for x in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()][1]
    assert line["train/kl"] <= 1e-7 < line["train/kl_max"]
    with pytest.raises(ValueError, match="--kl-clamp must be > 0"):
        _args(tmp_path, sft_policy, kl_clamp=0.0)


def test_bad_reward_model_inputs_are_clear_errors(sft_policy, tmp_path):
    with pytest.raises(ValueError, match="needs --prm"):
        _args(tmp_path, "x", reward="agentprm")
    with pytest.raises(SystemExit, match="not a reward model"):  # a policy folder is no PRM
        ppo_recipe.main(_args(tmp_path, sft_policy, reward="agentprm", prm=sft_policy))
    with pytest.raises(SystemExit, match="not math"):  # math runs Best-of-N and beam search only
        ppo_recipe.main(
            dataclasses.replace(_args(tmp_path, sft_policy), env="math", tasks="200:202", eval_tasks="0:2")
        )


def test_a_reward_model_of_another_tokenizer_is_refused(sft_policy, tmp_path):
    from agentprm.prm.value import load_value_model

    prm, tok = load_value_model(sft_policy)
    tok.add_tokens(["<other>"])  # another vocabulary: its scores would read other token ids
    prm.resize_token_embeddings(len(tok))
    prm.save_pretrained(tmp_path / "other")
    tok.save_pretrained(tmp_path / "other")
    with pytest.raises(SystemExit, match="tokenizer differs from the policy's"):
        ppo_recipe.main(_args(tmp_path, sft_policy, reward="pvm", prm=tmp_path / "other"))


def test_non_finite_rewards_stop_before_any_update(sft_policy, tmp_path, monkeypatch):
    from agentprm.prm.value import load_value_model

    prm, tok = load_value_model(sft_policy)
    prm.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")

    def nan_scores(rm, enc, n, pad, q_prev):
        q_prev.extend(float("nan") for _ in enc)
        return {e.index: torch.full((e.num_steps,), float("nan")) for e in enc}

    monkeypatch.setattr(ppo_recipe, "score_encoded", nan_scores)
    with pytest.raises(FloatingPointError, match="non-finite rewards"):
        ppo_recipe.main(_args(tmp_path, sft_policy, reward="agentprm", prm=tmp_path / "rm", iterations=1))
    assert not (tmp_path / "ppo" / "checkpoint.pt").exists()  # nothing was saved from a NaN


def test_ppo_with_agentprm_rewards(sft_policy, expert_data, tmp_path):
    from agentprm.recipes import train_prm

    train_prm.main(
        train_prm.Args(
            data=expert_data, model=sft_policy, run_dir=tmp_path / "prm", labels="td", epochs=1, batch_size=8,
            heldout=0.2, max_prompt_tokens=512,
        )
    )  # fmt: skip
    out = ppo_recipe.main(_args(tmp_path, sft_policy, reward="agentprm", prm=tmp_path / "prm", iterations=1))
    # progress rewards telescope: the mean return is the final promise minus M_{-1} plus the outcome,
    # a finite number, and the update ran on it
    assert math.isfinite(out["rollout/return"]) and math.isfinite(out["train/policy_loss"])


def test_ppo_compare_arguments_are_checked_at_the_edge():
    from agentprm.recipes import ppo_compare

    with pytest.raises(ValueError, match="unknown reward sources"):
        ppo_compare.Args(sources=("env", "prm"))
    with pytest.raises(ValueError, match="--kl-clamp must be > 0"):
        ppo_compare.Args(kl_clamp=0.0)
    assert ppo_compare.Args(kl_clamp=10.0).kl_clamp == 10.0
    assert ppo_compare.Args(sources=("env", "agentprm-final")).sources == ("env", "agentprm-final")


@pytest.mark.slow  # a toy study, then four PPO runs: ~40 s
def test_ppo_compare_runs_every_source_from_a_study(tmp_path):
    from agentprm.recipes import ppo_compare, reproduce

    study = tmp_path / "study"
    reproduce.main(reproduce.toy(study))
    curves = ppo_compare.main(
        ppo_compare.Args(
            study=study, iterations=2, tasks_per_iter=2, samples=2, eval_every=1, eval_tasks="0,1",
            run_dir=tmp_path / "cmp", threads=1,
            sources=("env", "orm", "pvm", "agentprm", "agentprm-final"),
        )
    )  # fmt: skip
    assert set(curves) == {"env", "orm", "pvm", "agentprm", "agentprm-final"}
    # the ablation rewards AgentPRM's final score alone, as orm rewards the ORM's
    final_args = json.loads((tmp_path / "cmp" / "agentprm-final" / "args.json").read_text())
    assert final_args["reward"] == "orm" and final_args["prm"] == str(study / "prm-agentprm")
    assert all([p["iteration"] for p in points] == [0, 1, 2] for points in curves.values())
    assert (tmp_path / "cmp" / "figure5_babyai-agentgym.png").stat().st_size > 1000
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "| agentprm |" in report and "minus env" in report and "minus SFT start" in report
    assert "no KL cap" in report
    # every evaluation kept its trajectories, and they are what the metrics say
    for source, points in curves.items():
        for p in points:
            trajs = read_trajectories(tmp_path / "cmp" / source / "eval" / f"greedy_it{p['iteration']}.jsonl")
            assert [t.task for t in trajs] == [0, 1]
            assert sum(t.success for t in trajs) / 2 == p["eval/success"]
    # a run made before ppo kept them: its start (the SFT policy) and final policy are played again,
    # with the same results
    final, kept = tmp_path / "cmp" / "orm" / "eval" / "greedy_it2.jsonl", tmp_path / "kept.jsonl"
    final.rename(kept)
    start, kept_start = tmp_path / "cmp" / "env" / "eval" / "greedy_it0.jsonl", tmp_path / "kept0.jsonl"
    start.rename(kept_start)
    again = ppo_compare.main(
        ppo_compare.Args(
            study=study, iterations=2, tasks_per_iter=2, samples=2, eval_every=1, eval_tasks="0,1",
            run_dir=tmp_path / "cmp", threads=1,
            sources=("env", "orm", "pvm", "agentprm", "agentprm-final"),
        )
    )  # fmt: skip
    assert again == curves
    # --kl-clamp reaches every source's run: the finished ones refuse it (another algorithm)
    from agentprm.rundir import RunDirError

    with pytest.raises(RunDirError, match="kl_clamp"):
        ppo_compare.main(
            ppo_compare.Args(
                study=study, iterations=2, tasks_per_iter=2, samples=2, eval_every=1, eval_tasks="0,1",
                run_dir=tmp_path / "cmp", threads=1, kl_clamp=10.0,
            )
        )  # fmt: skip
    for replayed, original in ((final, kept), (start, kept_start)):
        a, b = read_trajectories(replayed), read_trajectories(original)
        diff = {k for x, y in zip(a, b, strict=True) for k, v in x.to_dict().items() if y.to_dict()[k] != v}
        assert not diff, diff
