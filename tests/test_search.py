"""Search: with an oracle, Best-of-N and beam search pick the known best trajectory; the N x M budget
is respected exactly; replayed and copied environments give the same search; the ledger adds up;
the PRM's shared-prefix scoring equals re-encoding every candidate."""

from __future__ import annotations

import random

import pytest
import torch

from agentprm.experts import make_expert
from agentprm.models.tokenizer import train_tokenizer
from agentprm.policy import Generation
from agentprm.prm.scorers import OracleScorer, PRMScorer
from agentprm.prm.value import build_value_model
from agentprm.prompts import OK_REPLY, ROLE_WORDS, instruction
from agentprm.rollout import run_episode
from agentprm.search import SearchConfig, SearchLedger, beam_search, best_of_n, greedy
from agentprm.types import State

TASKS = [0, 5, 40]  # TextCraft goals with 2..4-command expert plans
JUNK = ["Action:\ninventory", "Action:\nget 1 dirt", "Thought:\nhmm\n\nAction:\ncraft 1 stone", "no action"]


@pytest.fixture(scope="module")
def expert_plans():
    """initial observation -> the expert's responses (a successful plan)."""
    plans = {}
    for task in TASKS:
        t = run_episode("textcraft", task, make_expert("textcraft"))
        assert t.success
        plans[t.initial_observation] = [s.response for s in t.steps]
    return plans


class ScriptedPolicy:
    """Proposes the expert's next response or junk, at random (seeded by the state and a counter).

    Records every generate call: (number of states, samples per state).
    """

    name = "scripted"
    max_prompt_tokens = count_tokens = None

    def __init__(self, plans, p_expert: float = 0.4):
        self.plans, self.p_expert, self.calls = plans, p_expert, []

    def generate(self, states, params, seeds=None):
        self.calls.append((len(states), params.n))
        rng = random.Random(len(self.calls))
        out = []
        for messages in states:
            plan = self.plans[messages[2]["content"]]
            t = sum(1 for m in messages[3:] if m["role"] == "assistant")
            gens = []
            for _ in range(params.n):
                good = t < len(plan) and rng.random() < self.p_expert
                text = plan[t] if good else rng.choice(JUNK)
                gens.append(Generation(text=text, prompt_tokens=10, completion_tokens=len(text.split())))
            out.append(gens)
        return out


def expert_oracle(plans):
    def value(env, state: State, response: str) -> float:
        plan = plans[state.initial_observation]
        return float(list(state.responses) + [response] == plan[: len(state.responses) + 1])

    return value


def test_beam_search_with_oracle_finds_expert_path(expert_plans):
    # M = 6 at p = 0.6: each step's candidates include the expert's command (seeded, checked).
    policy = ScriptedPolicy(expert_plans, p_expert=0.6)
    ledger = SearchLedger()
    out = beam_search(
        "textcraft", TASKS, policy, OracleScorer(expert_oracle(expert_plans)), SearchConfig(n=2, m=6), ledger
    )
    assert [t.success for t in out] == [True] * len(TASKS)
    for t in out:
        assert [s.response for s in t.steps] == expert_plans[t.initial_observation]


def test_beam_budget_is_exactly_n_times_m(expert_plans):
    policy = ScriptedPolicy(expert_plans, p_expert=0.2)
    n, m = 3, 2
    beam_search(
        "textcraft",
        TASKS,
        policy,
        OracleScorer(expert_oracle(expert_plans)),
        SearchConfig(n=n, m=m),
        SearchLedger(),
    )
    # Round 0: one root per task, N*M samples each; later rounds: M samples per unfinished beam.
    assert policy.calls[0] == (len(TASKS), n * m)
    for states, samples in policy.calls[1:]:
        assert samples == m and states <= n * len(TASKS)


def test_replay_equals_copy_and_ledger_adds_up(expert_plans):
    results, ledgers = {}, {}
    for mode in ("copy", "replay"):
        policy = ScriptedPolicy(expert_plans, p_expert=0.3)
        ledgers[mode] = SearchLedger()
        out = beam_search(
            "textcraft",
            TASKS,
            policy,
            OracleScorer(expert_oracle(expert_plans)),
            SearchConfig(n=2, m=3, env_mode=mode),
            ledgers[mode],
        )
        results[mode] = [
            (t.task, [s.response for s in t.steps], [s.observation for s in t.steps], t.reward) for t in out
        ]
    assert results["copy"] == results["replay"]
    c, r = ledgers["copy"], ledgers["replay"]
    assert c.replay_steps == 0 and r.replay_steps > 0
    assert r.env_steps == c.env_steps + r.replay_steps
    assert c.policy_tokens == r.policy_tokens > 0 and c.episodes == len(TASKS)


def test_best_of_n_with_outcome_oracle_picks_best(expert_plans):
    policy = ScriptedPolicy(expert_plans, p_expert=0.7)

    class OutcomeOracle:
        name, tokens, pool = "outcome", 0, []

        def score_trajectories(self, env, trajs):
            self.pool += trajs
            return [[t.reward] * t.num_steps for t in trajs]

    ledger, oracle = SearchLedger(), OutcomeOracle()
    config = SearchConfig(n=8, max_rounds=6)
    chosen = best_of_n("textcraft", TASKS, policy, oracle, config, ledger)
    assert [t.task for t in chosen] == TASKS
    assert len(oracle.pool) == ledger.episodes == 8 * len(TASKS)
    outcomes = {task: [t.reward for t in oracle.pool if t.task == task] for task in TASKS}
    assert any(0 < sum(v) < len(v) for v in outcomes.values())  # some pool is mixed: a real choice
    assert [t.reward for t in chosen] == [max(outcomes[task]) for task in TASKS]
    # The ledger's env steps are exactly the pool's steps (one per response, none replayed), and the
    # pool was scored in one call.
    assert ledger.env_steps == sum(t.num_steps for t in oracle.pool) and ledger.replay_steps == 0
    assert ledger.env_steps > ledger.episodes  # some episode took more than one step: the sum is not a count
    assert ledger.prm_calls == 1 and ledger.prm_tokens == 0  # the oracle costs no tokens


def test_greedy_uses_temperature_zero(expert_plans):
    seen = []

    class Recording(ScriptedPolicy):
        def generate(self, states, params, seeds=None):
            seen.append(params.temperature)
            return super().generate(states, params)

    greedy("textcraft", TASKS, Recording(expert_plans), None, SearchConfig(max_rounds=3), SearchLedger())
    assert set(seen) == {0.0}


@pytest.fixture(scope="module")
def value_model(expert_plans):
    texts = [instruction("textcraft"), OK_REPLY, *ROLE_WORDS, *JUNK]
    for task in TASKS:
        t = run_episode("textcraft", task, make_expert("textcraft"))
        texts += [t.initial_observation] + [x for s in t.steps for x in (s.response, s.observation)]
    tok = train_tokenizer(texts, vocab_size=600, whole=[instruction("textcraft"), OK_REPLY])
    return build_value_model("test", tok, seed=3).eval(), tok


def test_shared_prefix_scores_equal_full_reencoding(expert_plans, value_model):
    model, tok = value_model
    t = run_episode("textcraft", 40, make_expert("textcraft"))
    state = t.state(2)
    assert state == State(
        t.initial_observation,
        tuple(s.response for s in t.steps[:2]),
        tuple(s.observation for s in t.steps[:2]),
    )
    cands = [[t.steps[2].response, *JUNK]]
    shared = PRMScorer(model, tok, share_prefix=True, batch_size=3)
    full = PRMScorer(model, tok, share_prefix=False, batch_size=3)
    a, b = shared.score("textcraft", [state], cands), full.score("textcraft", [state], cands)
    assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)
    assert shared.tokens < full.tokens
    # And a candidate's score equals the step value read from the whole trajectory (training's readout).
    whole = full.score_trajectories("textcraft", [t])[0]
    assert abs(a[0][0] - whole[2]) < 1e-5
