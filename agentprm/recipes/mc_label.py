"""`agentprm mc-label`: Math-Shepherd Monte Carlo labels, the paper's expensive baseline.

From ONE seed trajectory per task (N_traj = 1: sample 0 of each task in --data), for every step t
before the last, run N_mc = 16 rollouts of the policy from s_{t+1} (reached by replaying a_0..a_t:
the envs are deterministic) and record their outcomes; the last step's label is the seed's own
outcome. agentprm.prm.labels.mc turns the outcomes into hard (any success) or soft (mean) estimates at
training time. Every policy token and env step it costs is in the ledger (the paper's Table 3
"Tokens" column compares it with TD, which needs no extra rollouts).

Output: runs/<name>/mc_labels.jsonl, one line per seed trajectory:
  {"task", "sample", "outcomes": [[r_1..r_Nmc] for each step], "policy_tokens", "env_steps"}
Resumable: seeds already in the file are skipped.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import torch
from rich.progress import Progress

import agentprm.envs as E
from agentprm import jsonl, rundir
from agentprm import validate as V
from agentprm.envs.splits import parse_tasks
from agentprm.policies import ServerArgs, make_policy
from agentprm.policy import SamplingParams
from agentprm.rollout import collect
from agentprm.types import read_trajectories

# Arguments a resumed run may change: they add work (more tasks, samples) or only set batching.
RESUME_NEUTRAL = frozenset({"batch_size", "max_active"})


@dataclasses.dataclass
class Args(ServerArgs):
    data: Path = Path("runs/collect/trajectories.jsonl")
    """rollouts; sample 0 of each task is the seed trajectory"""
    policy: str = "runs/sft/model"
    """the policy that continues from every step (same as collection)"""
    env: str = "babyai"
    """environment"""
    n_mc: int = 16
    """rollouts per step (paper: 16)"""
    temperature: float = 1.0
    """rollout temperature"""
    max_new_tokens: int = 96
    """per response"""
    max_prompt_tokens: int = 512
    """the renderer's budget"""
    max_rounds: int | None = None
    """round cap (replayed steps included); use the cap the seed trajectories were collected with"""
    tasks: str | None = None
    """restrict to these tasks (split name, range or list); default: every task in --data"""
    run_dir: Path = Path("runs/mc")
    """output folder"""
    batch_size: int = 64
    """prompts per generate call"""
    max_active: int = 64
    """episodes played at once"""
    threads: int | None = None
    """torch CPU threads"""
    seed: int = 0
    """sampling seed"""
    overwrite: bool = False
    """start this run dir afresh (delete what it holds) instead of resuming it"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        super().__post_init__()
        V.sampling(self)
        V.at_least(self, 1, "n_mc", "max_active")


def main(args: Args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    run = rundir.prepare(args.run_dir, args, neutral=RESUME_NEUTRAL)
    env = E.short_name(args.env)
    out = run / "mc_labels.jsonl"

    # 1. Seeds: sample 0 of every task, minus those already labelled.
    wanted = set(parse_tasks(env, args.tasks)) if args.tasks else None
    seeds = [
        t
        for t in read_trajectories(args.data)
        if t.env == env and t.sample == 0 and t.num_steps > 0 and (wanted is None or t.task in wanted)
    ]
    done = set()
    if out.exists():
        done = {(r["task"], r["sample"]) for r in jsonl.read(out, repair=True)}
    seeds = [t for t in seeds if (t.task, t.sample) not in done]
    print(f"mc-label {env}: {len(seeds)} seed trajectories to label ({len(done)} done), N_mc = {args.n_mc}")

    # 2. One job per (seed, step t < T, rollout k): continue from s_{t+1} after replaying a_0..a_t.
    jobs, owner = [], {}
    for i, traj in enumerate(seeds):
        responses = [s.response for s in traj.steps]
        for t in range(traj.num_steps - 1):
            for k in range(args.n_mc):
                sample = (i * 10_000 + t) * args.n_mc + k  # unique per job, only used to route results
                jobs.append((traj.task, sample, responses[: t + 1]))
                owner[(traj.task, sample)] = (i, t)
    outcomes = collections.defaultdict(lambda: collections.defaultdict(list))
    cost = collections.defaultdict(lambda: [0, 0, 0])  # seed -> [policy tokens, env steps, prompt tokens]
    remaining = collections.Counter(i for i, _ in owner.values())
    policy = make_policy(
        args.policy,
        args.batch_size,
        args.max_prompt_tokens,
        request_timeout=args.request_timeout,
        max_retries=args.max_retries,
    )
    params = SamplingParams(
        n=1, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed
    )

    def flush(i: int) -> None:
        traj = seeds[i]
        per_step = [outcomes[i][t] for t in range(traj.num_steps - 1)] + [[float(traj.reward)]]
        rec = {
            "task": traj.task,
            "sample": traj.sample,
            "outcomes": per_step,
            "policy_tokens": cost[i][0],
            "env_steps": cost[i][1],
            "prompt_tokens": cost[i][2],
            "rollouts": sum(len(o) for o in per_step[:-1]),
        }
        jsonl.append(out, [rec])

    with Progress(transient=True) as bar:
        job = bar.add_task(f"mc rollouts {env}", total=len(jobs))

        def on_done(traj):
            i, t = owner[(traj.task, traj.sample)]
            outcomes[i][t].append(float(traj.reward))
            cost[i][0] += traj.response_tokens
            cost[i][1] += traj.num_steps
            cost[i][2] += traj.prompt_tokens
            remaining[i] -= 1
            if remaining[i] == 0:
                flush(i)
            bar.advance(job)

        ledger = collect(
            env, jobs, policy, params, on_done=on_done, max_active=args.max_active, max_rounds=args.max_rounds
        )
    for i, traj in enumerate(seeds):  # one-step seeds need no rollouts: label = their outcome
        if traj.num_steps == 1:
            flush(i)
    # The cost over every run that filled the file (each record carries its own), so a killed and
    # resumed labelling still adds up; this invocation's own ledger is kept as run_ledger.
    records = jsonl.read(out)
    total = {
        "episodes": sum(r.get("rollouts", 0) for r in records),
        "env_steps": sum(r.get("env_steps", 0) for r in records),
        "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in records),
        "policy_tokens": sum(r.get("policy_tokens", 0) for r in records),
        "replay_steps": ledger.replay_steps,
        "generate_calls": ledger.generate_calls,
        "seconds": ledger.seconds,
    }
    summary = {
        "seeds": len(seeds),
        "seeds_total": len(records),
        "rollouts": total["episodes"],
        "ledger": total,
        "run_ledger": dataclasses.asdict(ledger),
    }
    rundir.log_metrics(run, summary)
    print(
        f"mc-label done: {len(jobs)} rollouts, {ledger.policy_tokens} policy tokens, {ledger.env_steps} env steps"
    )
    return summary
