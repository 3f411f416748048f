"""Test-time search with a reward model: greedy, sampling, Best-of-N and step-level beam search.

One signature for every strategy:
    strategy(env_name, tasks, policy, scorer, config, ledger) -> list[Trajectory]  (one per task)
`scorer` is any Scorer (a PRM, ORM or PVM through agentprm.prm.scorers.PRMScorer, or an oracle in
tests); greedy and sampling ignore it. Every strategy adds what it spends to `ledger`: policy tokens
generated, PRM tokens processed, env steps (replays included).

Beam search @N x M (the paper's Algorithm 2), all tasks advanced together:
  0. reset each task; its root is the only partial trajectory.
  1. for every unfinished partial trajectory, sample M candidate responses (the root samples N*M,
     so the first step is as wide as the later ones) in ONE batched policy call;
  2. score every (s_t, a_t) candidate with the scorer (PRMScorer shares each state's prefix);
  3. per task keep the top N among the new candidates and the already finished trajectories
     (identical responses of one parent are scored once but stay separate candidates, so the beam
     keeps N partial trajectories as in Algorithm 2; the copies diverge at their next samples);
  4. step each kept candidate in its own copy of the parent's environment (env_mode="copy") or in
     an environment reset to the task and re-played to the parent's state (env_mode="replay";
     transitions are deterministic, so both give the same search);
  5. a task is done when all its kept trajectories are terminal (the env's round cap truncates);
     return its best-scored one.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Protocol

import agentprm.envs as E
from agentprm.evaluation import aggregate
from agentprm.policy import Policy, SamplingParams, derive_seed, with_stop
from agentprm.prompts import fit_messages
from agentprm.rollout import Episode, Ledger, collect, replay
from agentprm.types import State, Step, Trajectory


class Scorer(Protocol):
    """Scores steps. score(...)[i][j] = M(s_i, candidates[i][j]); score_trajectories gives M_0..M_T.

    tokens: PRM tokens processed so far (the ledger reads it).
    """

    name: str
    tokens: int

    def score(self, env: str, states: list[State], candidates: list[list[str]]) -> list[list[float]]: ...

    def score_trajectories(self, env: str, trajs: list[Trajectory]) -> list[list[float]]: ...


@dataclass
class SearchConfig:
    """Knobs shared by the strategies (n and m mean N and M of Best-of-N / beam search)."""

    n: int = 1
    m: int = 1
    temperature: float = 0.7  # the paper's evaluation sampling temperature
    top_p: float = 1.0
    max_new_tokens: int = 96
    how: str = "last"  # trajectory score from step scores: last (paper), min or mean
    env_mode: str = "copy"  # beam search: "copy" the parent's env or "replay" its actions
    max_rounds: int | None = None
    seed: int = 0
    max_active: int = 64  # episodes played at once when sampling whole trajectories


@dataclass
class SearchLedger(Ledger):
    """Ledger plus the reward model's share of the compute."""

    prm_tokens: int = 0
    prm_calls: int = 0


def _params(
    config: SearchConfig, n: int = 1, temperature: float | None = None, salt: int = 0
) -> SamplingParams:
    t = config.temperature if temperature is None else temperature
    return SamplingParams(
        n=n, temperature=t, top_p=config.top_p, max_new_tokens=config.max_new_tokens, seed=config.seed + salt
    )


def _play(env_name, jobs, policy, params, config, ledger, meta, on_done=None) -> list[Trajectory]:
    out: list[Trajectory] = []

    def done(traj: Trajectory) -> None:
        out.append(traj)
        if on_done is not None:
            on_done(traj)

    spent = collect(
        env_name,
        jobs,
        policy,
        params,
        on_done=done,
        max_rounds=config.max_rounds,
        max_active=config.max_active,
        meta=meta,
    )
    ledger.add(SearchLedger(**dataclasses.asdict(spent)))
    return sorted(out, key=lambda t: (t.task, t.sample))


def greedy(env_name, tasks, policy: Policy, scorer, config: SearchConfig, ledger: SearchLedger, on_done=None):
    """Temperature 0, one trajectory per task (the SFT baseline). on_done(traj), if given, gets each
    trajectory as soon as it ends (to stream it to a store)."""
    return _play(
        env_name,
        [(t, 0) for t in tasks],
        policy,
        _params(config, temperature=0.0),
        config,
        ledger,
        {"search": "greedy"},
        on_done,
    )


def sampling(env_name, tasks, policy: Policy, scorer, config: SearchConfig, ledger: SearchLedger):
    """One sample per task at config.temperature (Best-of-1)."""
    return _play(
        env_name, [(t, 0) for t in tasks], policy, _params(config), config, ledger, {"search": "sample"}
    )


def sample_pool(
    env_name,
    tasks,
    policy: Policy,
    config: SearchConfig,
    ledger: SearchLedger,
    label: str = "pool",
    on_done=None,
) -> list[Trajectory]:
    """config.n samples per task at config.temperature (Best-of-N's pool), ordered by (task, sample).
    on_done(traj), if given, gets each trajectory as soon as it ends (to stream it to a store)."""
    return _play(
        env_name,
        [(t, s) for t in tasks for s in range(config.n)],
        policy,
        _params(config),
        config,
        ledger,
        {"search": label},
        on_done,
    )


def best_of_n(env_name, tasks, policy: Policy, scorer: Scorer, config: SearchConfig, ledger: SearchLedger):
    """Sample config.n trajectories per task, keep the one whose aggregated step score is highest."""
    pool = sample_pool(env_name, tasks, policy, config, ledger, label=f"bon@{config.n}")
    before = scorer.tokens
    scores = scorer.score_trajectories(E.short_name(env_name), pool)
    ledger.prm_tokens += scorer.tokens - before
    ledger.prm_calls += 1
    best: dict[int, tuple[float, Trajectory]] = {}
    for traj, s in zip(pool, scores, strict=True):
        value = aggregate(s, config.how)
        if traj.task not in best or value > best[traj.task][0]:
            best[traj.task] = (value, traj)
    return [dataclasses.replace(best[t][1], meta={**best[t][1].meta, "score": best[t][0]}) for t in tasks]


@dataclass
class _Beam(Episode):
    """A partial trajectory of beam search: an Episode with the PRM score of its last step."""

    score: float = 0.0
    done: bool = False


def beam_search(env_name, tasks, policy: Policy, scorer: Scorer, config: SearchConfig, ledger: SearchLedger):
    """Step-level beam search @config.n x config.m (module docstring); one trajectory per task."""
    if config.env_mode not in ("copy", "replay"):
        raise ValueError(f"env_mode must be 'copy' or 'replay', not {config.env_mode!r}")
    short = E.short_name(env_name)
    kwargs = {} if config.max_rounds is None else {"max_episode_steps": config.max_rounds}
    start = time.time()
    count, budget = policy.count_tokens, policy.max_prompt_tokens
    beams: dict[int, list[_Beam]] = {}
    rounds = 0
    # 0. Roots.
    for task in tasks:
        env = E.make(short, **kwargs)
        obs, info = env.reset(options={"task": task})
        beams[task] = [_Beam(task, 0, env, obs, info=info)]
    while True:
        active = [b for task in tasks for b in beams[task] if not b.done]
        if not active:
            break
        slots = [
            k for task in tasks for k, b in enumerate(beams[task]) if not b.done
        ]  # beam index in its task
        # 1. M candidates per partial trajectory (N*M for a root), one policy call per width.
        widths = [config.n * config.m if not b.steps else config.m for b in active]
        candidates: list[list] = [[] for _ in active]
        for width in sorted(set(widths)):
            idx = [i for i, w in enumerate(widths) if w == width]
            states = [fit_messages(short, active[i].state(), count, budget) for i in idx]
            # a fresh random stream per round and per chunk of tasks (see rollout.collect), and each
            # request's own seed from (seed, task, round, beam): identical to no other request
            salt = 1_000_003 * tasks[0] + 104_729 * rounds + width
            seeds = [derive_seed(config.seed, active[i].task, rounds, slots[i]) for i in idx]
            params = with_stop(_params(config, n=width, salt=salt), E.stop_strings(short))
            gens = policy.generate(states, params, seeds=seeds)
            ledger.generate_calls += 1
            for i, g in zip(idx, gens, strict=True):
                candidates[i] = g
                ledger.prompt_tokens += g[0].prompt_tokens if g else 0
                ledger.policy_tokens += sum(x.completion_tokens for x in g)
        rounds += 1
        # 2. Score every candidate (s_t, a_t); identical responses of one parent share one score
        # (same input) but remain separate candidates.
        unique = [list(dict.fromkeys(g.text for g in gens)) for gens in candidates]
        before = scorer.tokens
        unique_scores = scorer.score(short, [b.state() for b in active], unique)
        tables = [dict(zip(u, s, strict=True)) for u, s in zip(unique, unique_scores, strict=True)]
        scores = [[table[g.text] for g in gens] for table, gens in zip(tables, candidates, strict=True)]
        ledger.prm_tokens += scorer.tokens - before
        ledger.prm_calls += 1
        # 3. Per task: top N of the new candidates and the finished trajectories.
        pool: dict[int, list[tuple[float, int, _Beam | None, object]]] = {t: [] for t in tasks}
        for task in tasks:
            for k, b in enumerate(beams[task]):
                if b.done:
                    pool[task].append((b.score, -k, b, None))
        for i, (parent, gens, values) in enumerate(zip(active, candidates, scores, strict=True)):
            for j, (g, v) in enumerate(zip(gens, values, strict=True)):
                pool[parent.task].append((float(v), -(1000 * (i + 1) + j), parent, g))
        for task in tasks:
            if all(b.done for b in beams[task]):
                continue
            kept = sorted(pool[task], key=lambda x: (x[0], x[1]), reverse=True)[: config.n]
            children = []
            # 4. Step the kept candidates in a copy of (or a replay to) the parent's state.
            for value, _, parent, gen in kept:
                if gen is None:
                    children.append(parent)
                    continue
                children.append(_advance(short, parent, gen, value, config.env_mode, kwargs, ledger))
            beams[task] = children
    # 5. Best terminal trajectory per task.
    out = []
    for task in tasks:
        best = max(beams[task], key=lambda b: b.score)
        out.append(
            best.to_trajectory(
                short, policy.name, {"search": f"beam@{config.n}x{config.m}", "score": best.score}
            )
        )
    ledger.episodes += len(out)
    ledger.seconds += time.time() - start
    return out


def _advance(short, parent: _Beam, gen, value: float, env_mode: str, kwargs, ledger) -> _Beam:
    if env_mode == "copy":
        env = copy.deepcopy(parent.env)
    else:
        env = E.make(short, **kwargs)
        env, _ = replay(short, parent.task, [s.response for s in parent.steps], env=env)
        ledger.replay_steps += len(parent.steps)
        ledger.env_steps += len(parent.steps)
    obs, r, terminated, truncated, info = env.step(gen.text)
    ledger.env_steps += 1
    step = Step(
        response=gen.text,
        action=info.get("action"),
        observation=obs,
        reward=float(r),
        response_tokens=gen.completion_tokens,
    )
    return _Beam(
        task=parent.task,
        sample=0,
        env=env,
        initial_observation=parent.initial_observation,
        steps=parent.steps + [step],
        prompt_tokens=parent.prompt_tokens + gen.prompt_tokens,
        response_tokens=parent.response_tokens + gen.completion_tokens,
        info=info,
        terminated=terminated,
        truncated=truncated,
        score=value,
        done=terminated or truncated,
    )
