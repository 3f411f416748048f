"""`agentprm collect`: n samples per task at temperature T over a task split, batched and resumable.

All environments are stepped together with one batched generate call per round; finished
trajectories stream to runs/<name>/trajectories.jsonl. Re-running the same command skips every
(task, sample) already in the file, so a killed run loses nothing and duplicates nothing.
The ledger (policy tokens, prompt tokens, env steps) is appended to metrics.jsonl.
"""

from __future__ import annotations

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
from agentprm.types import TrajectoryWriter, completed_keys, read_trajectories

# Arguments a resumed run may change: they add work (more tasks, samples) or only set batching.
RESUME_NEUTRAL = frozenset({"tasks", "n", "batch_size", "max_active"})


@dataclasses.dataclass
class Args(ServerArgs):
    policy: str = "runs/sft/model"
    """an HF model folder, smollm2, or openai:<model>@<base_url> for an OpenAI-compatible server"""
    env: str = "babyai"
    """environment: babyai, babyai-agentgym, textcraft or webshop"""
    tasks: str = "test"
    """split name, range 0:90 or list 1,5,9"""
    n: int = 1
    """samples per task (the paper's N_TD = 16 for PRM training data)"""
    temperature: float = 1.0
    """sampling temperature (paper: 1.0 for collection, 0.7 for evaluation, 0 = greedy)"""
    top_p: float = 1.0
    """nucleus sampling"""
    max_new_tokens: int = 96
    """per response"""
    max_prompt_tokens: int = 512
    """the renderer's budget (left truncation); use the value the policy was trained with"""
    run_dir: Path = Path("runs/collect")
    """output: trajectories.jsonl, args.json, metrics.jsonl"""
    batch_size: int = 64
    """prompts per generate call"""
    max_active: int = 64
    """episodes played at once"""
    max_rounds: int | None = None
    """round cap; default: the env's registered cap"""
    threads: int | None = None
    """torch CPU threads"""
    seed: int = 0
    """sampling seed"""
    overwrite: bool = False
    """start this run dir afresh (delete what it holds) instead of resuming it"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        super().__post_init__()
        V.sampling(self)
        V.at_least(self, 1, "n", "max_active")


def summarize(trajs) -> dict:
    n = max(len(trajs), 1)
    by_task: dict[int, list[bool]] = {}
    for t in trajs:
        by_task.setdefault(t.task, []).append(t.success)
    mixed = sum(1 for v in by_task.values() if any(v) and not all(v))
    return {
        "trajectories": len(trajs),
        "tasks": len(by_task),
        "success_rate": sum(t.success for t in trajs) / n,
        "mean_reward": sum(t.reward for t in trajs) / n,
        "tasks_any_success": sum(1 for v in by_task.values() if any(v)),
        "tasks_mixed": mixed,
        "mean_rounds": sum(t.num_steps for t in trajs) / n,
    }


def store_ledger(trajs, run: Path, this_run) -> dict:
    """The collection's cost over EVERY run that filled the store, read from the stored trajectories
    (each carries its own tokens and steps), so a killed and resumed collection still adds up.
    generate_calls and seconds are summed over the runs that finished (metrics.jsonl's run_ledger)."""
    earlier = [r.get("run_ledger", {}) for r in jsonl.read(run / "metrics.jsonl", repair=False)]
    return {
        "episodes": len(trajs),
        "env_steps": sum(t.num_steps for t in trajs),
        "prompt_tokens": sum(t.prompt_tokens for t in trajs),
        "policy_tokens": sum(t.response_tokens for t in trajs),
        "generate_calls": this_run.generate_calls + sum(r.get("generate_calls", 0) for r in earlier),
        "replay_steps": sum(t.meta.get("prefix_steps", 0) for t in trajs),
        "seconds": this_run.seconds + sum(r.get("seconds", 0.0) for r in earlier),
    }


def main(args: Args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    run = rundir.prepare(args.run_dir, args, neutral=RESUME_NEUTRAL)
    env = E.short_name(args.env)
    out = run / "trajectories.jsonl"

    # 1. Jobs: every (task, sample) not yet in the store.
    tasks = parse_tasks(env, args.tasks)
    done = completed_keys(out)
    jobs = [(t, s) for t in tasks for s in range(args.n) if (env, t, s) not in done]
    print(
        f"collect {env}: {len(tasks)} tasks x {args.n} samples, {len(tasks) * args.n - len(jobs)} already done"
    )

    # 2. Play them, all envs together, streaming each finished trajectory to the store.
    policy = make_policy(
        args.policy,
        args.batch_size,
        args.max_prompt_tokens,
        request_timeout=args.request_timeout,
        max_retries=args.max_retries,
    )
    params = SamplingParams(
        n=1,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    with TrajectoryWriter(out) as writer, Progress(transient=True) as bar:
        job = bar.add_task(f"collect {env}", total=len(jobs))

        def on_done(traj):
            writer.write(traj)
            bar.advance(job)

        ledger = collect(
            env,
            jobs,
            policy,
            params,
            on_done=on_done,
            max_rounds=args.max_rounds,
            max_active=args.max_active,
            meta={"temperature": args.temperature},
        )

    # 3. Report over everything requested (including earlier runs' trajectories).
    wanted = {(env, t, s) for t in tasks for s in range(args.n)}
    trajs = [t for t in read_trajectories(out) if t.key in wanted]
    summary = {
        **summarize(trajs),
        "ledger": store_ledger(trajs, run, ledger),
        "run_ledger": dataclasses.asdict(ledger),
    }
    rundir.log_metrics(run, summary)
    print(
        f"collect {env}: success rate {summary['success_rate']:.3f}, mean reward {summary['mean_reward']:.3f}, "
        f"tasks with mixed outcomes {summary['tasks_mixed']}/{summary['tasks']}; "
        f"{ledger.policy_tokens} policy tokens, {ledger.env_steps} env steps in {ledger.seconds:.0f}s"
    )
    return summary
