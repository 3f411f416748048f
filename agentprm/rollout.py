"""Playing episodes and recording them as Trajectory records.

`run_episode` drives one env with a scripted agent (anything with reset(env) and act(env) -> response,
e.g. the experts). `collect` plays many episodes with a language-model Policy, all envs stepped
together with one batched generate call per round.
`replay` re-plays recorded responses from reset; deterministic envs reproduce every observation,
which is how search branches a partial trajectory.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import agentprm.envs as E
from agentprm.policy import Policy, SamplingParams, derive_seed, with_stop
from agentprm.prompts import fit_messages
from agentprm.types import AgentGaveUp, State, Step, Trajectory


class ScriptedAgent(Protocol):
    name: str

    def reset(self, env) -> None: ...

    def act(self, env) -> str: ...


def run_episode(
    env_name: str,
    task: int,
    agent: ScriptedAgent,
    *,
    sample: int = 0,
    env=None,
    max_rounds: int | None = None,
    seed: int | None = None,
) -> Trajectory:
    """Play task `task` of `env_name` with `agent` until it ends or the round cap; return the record.

    An AgentGaveUp from the agent ends the episode as a failure, with the reason in
    meta["gave_up"]; any other exception propagates.
    """
    kwargs = {} if max_rounds is None else {"max_episode_steps": max_rounds}
    env = env if env is not None else E.make(env_name, **kwargs)
    obs, info = env.reset(seed=seed, options={"task": task})
    agent.reset(env)
    ep, meta = Episode(task, sample, env, obs, info=info), {}
    while not (ep.terminated or ep.truncated):
        try:
            response = agent.act(env)
        except AgentGaveUp as exc:
            meta["gave_up"] = str(exc)
            break
        obs, r, ep.terminated, ep.truncated, ep.info = env.step(response)
        ep.steps.append(
            Step(response=response, action=ep.info.get("action"), observation=obs, reward=float(r))
        )
    if seed is not None:
        meta["reset_seed"] = seed
    return ep.to_trajectory(E.short_name(env_name), agent.name, meta)


def replay(env_name: str, task: int, responses: list[str], env=None) -> tuple[object, list[str]]:
    """Reset to `task` and step the given responses: (env positioned after them, observations).

    >>> env, obs = replay("textcraft", 0, ["Action: inventory"])
    >>> obs[-1]
    'Inventory: You are not carrying anything.'
    """
    env = env if env is not None else E.make(env_name, max_episode_steps=10_000)
    obs, _ = env.reset(options={"task": task})
    out = [obs]
    for response in responses:
        obs, *_ = env.step(response)
        out.append(obs)
    return env, out


@dataclass
class Ledger:
    """Compute spent by a collection: the paper's cost accounting (policy tokens, env steps)."""

    episodes: int = 0
    env_steps: int = 0
    prompt_tokens: int = 0
    policy_tokens: int = 0
    generate_calls: int = 0
    replay_steps: int = 0  # env steps spent re-playing prefixes (MC rollouts start mid-episode)
    seconds: float = 0.0

    def add(self, other: Ledger) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Episode:
    """An episode in progress: its env, the steps so far and their token cost, the last info.
    The one conversion to a Trajectory record (rollout, run_episode and beam search use it).

    Example:
        ep = Episode(task=7, sample=0, env=env, initial_observation=obs, info=info)
        ...  # ep.steps.append(Step(...)); ep.info = info; ep.terminated = terminated
        traj = ep.to_trajectory("babyai", policy_name="hf:runs/sft/model")
    """

    task: int
    sample: int
    env: object
    initial_observation: str
    steps: list[Step] = field(default_factory=list)
    prompt_tokens: int = 0
    response_tokens: int = 0
    info: dict = field(default_factory=dict)
    terminated: bool = False
    truncated: bool = False
    prefix_steps: int = 0  # steps replayed from a given prefix (MC rollouts), not sampled here

    def state(self) -> State:
        return State.of(self.initial_observation, self.steps)

    def to_trajectory(self, env_name: str, policy_name: str, meta: dict | None = None) -> Trajectory:
        """The record: outcome from the env's last info ("score", "success"; the summed step
        rewards if an env gives no score), the env's level / seed / goal and `meta` in meta."""
        extra = {k: self.info[k] for k in ("level", "seed", "goal") if k in self.info}
        if self.prefix_steps:
            extra["prefix_steps"] = self.prefix_steps
        return Trajectory(
            env=env_name,
            task=self.task,
            sample=self.sample,
            initial_observation=self.initial_observation,
            steps=self.steps,
            reward=float(self.info.get("score", sum(s.reward for s in self.steps))),
            success=bool(self.info.get("success", False)),
            terminated=bool(self.terminated),
            truncated=bool(self.truncated),
            policy=policy_name,
            prompt_tokens=self.prompt_tokens,
            response_tokens=self.response_tokens,
            meta={**extra, **(meta or {})},
        )


def collect(
    env_name: str,
    jobs: list[tuple],
    policy: Policy,
    params: SamplingParams,
    *,
    on_done: Callable[[Trajectory], None],
    max_rounds: int | None = None,
    max_active: int = 64,
    meta: dict | None = None,
) -> Ledger:
    """Play every (task, sample) or (task, sample, prefix) job with `policy`, all envs stepped together.

    A prefix (a list of earlier responses) is replayed from reset first — deterministic envs land in
    the same state — and the policy continues from there (Monte Carlo rollouts from s_{t+1}); the
    replayed steps are part of the returned trajectory (meta["prefix_steps"]) and counted in
    ledger.replay_steps and ledger.env_steps, not in policy tokens.

    Each round renders every active episode's state with the ONE renderer (left-truncated to the
    policy's max_prompt_tokens if it has one), makes ONE policy.generate call for all of them
    (n=1 each: samples are separate jobs), steps each env, and hands finished episodes to
    `on_done` immediately (stream them to the store). Up to `max_active` episodes run at once; a
    finished one is replaced by the next job (continuous batching).
    """
    kwargs = {} if max_rounds is None else {"max_episode_steps": max_rounds}
    short = E.short_name(env_name)
    queue = collections.deque(jobs)
    active: list[Episode] = []
    free: list = []  # envs of finished episodes: reset() restarts them, so they are reused
    ledger = Ledger()
    start = time.time()
    count, budget = policy.count_tokens, policy.max_prompt_tokens
    one = with_stop(dataclasses.replace(params, n=1), E.stop_strings(short))
    # A fresh random stream per round, and per set of jobs: re-seeding every round with the same seed
    # would repeat the same draws, and a resumed or extended run (samples 8..15 after 0..7) would
    # replay the earlier run's samples exactly.
    base = None
    if params.seed is not None and jobs:
        base = params.seed + 1_000_003 * int(jobs[0][0]) + 7_919 * int(jobs[0][1])
    rounds = 0
    while queue or active:
        while queue and len(active) < max_active:
            task, sample, *rest = queue.popleft()
            env = free.pop() if free else E.make(short, **kwargs)
            obs, info = env.reset(options={"task": task})
            ep = Episode(task, sample, env, obs, info=info)
            for response in rest[0] if rest else []:
                o, r, ep.terminated, ep.truncated, ep.info = env.step(response)
                ep.steps.append(
                    Step(response=response, action=ep.info.get("action"), observation=o, reward=float(r))
                )
                ep.prefix_steps += 1
                ledger.replay_steps += 1
                ledger.env_steps += 1
            if ep.terminated or ep.truncated:  # the prefix already ended the episode: nothing to sample
                ledger.episodes += 1
                on_done(ep.to_trajectory(short, policy.name, meta))
                free.append(env)
                continue
            active.append(ep)
        if not active:
            continue
        states = [fit_messages(short, ep.state(), count, budget) for ep in active]
        seeds = None
        if base is not None:
            one = dataclasses.replace(one, seed=base + 104_729 * rounds)
            # Each request's own seed, from what identifies it (not from the batch it landed in):
            # identical prompts (samples of one task, MC rollouts of one prefix) draw differently.
            seeds = [derive_seed(params.seed, ep.task, ep.sample, len(ep.steps)) for ep in active]
        rounds += 1
        gens = policy.generate(states, one, seeds=seeds)
        ledger.generate_calls += 1
        still = []
        for ep, (gen,) in zip(active, gens, strict=True):
            obs, r, ep.terminated, ep.truncated, ep.info = ep.env.step(gen.text)
            ep.steps.append(
                Step(
                    response=gen.text,
                    action=ep.info.get("action"),
                    observation=obs,
                    reward=float(r),
                    response_tokens=gen.completion_tokens,
                )
            )
            ep.prompt_tokens += gen.prompt_tokens
            ep.response_tokens += gen.completion_tokens
            ledger.env_steps += 1
            ledger.prompt_tokens += gen.prompt_tokens
            ledger.policy_tokens += gen.completion_tokens
            if ep.terminated or ep.truncated:
                ledger.episodes += 1
                on_done(ep.to_trajectory(short, policy.name, meta))
                free.append(ep.env)
            else:
                still.append(ep)
        active = still
    ledger.seconds = time.time() - start
    return ledger
