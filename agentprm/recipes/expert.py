"""`agentprm expert`: write expert trajectories for a task split and print the success rate.

Resumable: tasks already in --out are skipped, so a killed run continues where it stopped.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import agentprm.envs as E
from agentprm.envs.splits import parse_tasks
from agentprm.experts import make_expert
from agentprm.rollout import run_episode
from agentprm.types import TrajectoryWriter, completed_keys, read_trajectories


@dataclasses.dataclass
class Args:
    env: str = "babyai"
    """environment: babyai, babyai-agentgym, textcraft, webshop, or math (built-in word problems),
    gsm-symbolic (reasoning-gym's, pip install 'agentprm[math]') or gsm8k (your GSM8K JSONL from
    $AGENTPRM_MATH_DATA): the math expert writes the reference solution step by step"""
    tasks: str = "train"
    """task indices: a split name (train, test), a range 0:400 (end excluded) or 0-399, or a list 1,5,9"""
    out: Path = Path("data/expert.jsonl")
    """trajectory file (JSONL, appended; tasks already in it are skipped)"""
    max_rounds: int | None = None
    """round cap; default: the one registered with the env (`agentprm envs` lists them)"""
    limit: int | None = None
    """stop after this many tasks (handy for a quick look)"""
    mistakes: float = 0.0
    """BabyAI: probability per round that the expert first names an object not in view (a real,
    rejected env step), then goes on with its plan: recovery data for SFT, which never imitates
    the rejected response"""
    misread: float = 0.0
    """BabyAI: share of those mistakes whose Thought also misstates the goal (another colour or
    object), so that the recovery shows the goal read again from the prompt"""
    goal_mistakes: float = 0.0
    """BabyAI: share of those mistakes that name the goal's object while it is not in view (acting
    on the goal before exploring for it), instead of an object in view with another colour"""
    samples: int = 1
    """episodes per task; sample k resets with seed k (TextCraft: another shuffle of the recipe
    lines and distractors; BabyAI layouts depend on the task only, so keep 1)"""


def main(args: Args) -> dict:
    console = Console()
    env_name = E.short_name(args.env)
    tasks = parse_tasks(env_name, args.tasks)[: args.limit]
    done = completed_keys(args.out)
    todo = [(t, k) for t in tasks for k in range(args.samples) if (env_name, t, k) not in done]
    console.print(
        f"{env_name}: {len(tasks)} tasks x {args.samples}, {len(tasks) * args.samples - len(todo)} already in {args.out}"
    )

    # 1. Play every remaining task with the expert, appending each trajectory as it finishes.
    expert = make_expert(
        env_name, mistakes=args.mistakes, misread=args.misread, goal_mistakes=args.goal_mistakes
    )
    kwargs = {} if args.max_rounds is None else {"max_episode_steps": args.max_rounds}
    env = E.make(env_name, **kwargs)
    start = time.time()
    with TrajectoryWriter(args.out) as writer, Progress(console=console, transient=True) as bar:
        job = bar.add_task(f"expert {env_name}", total=len(todo))
        for task, k in todo:
            seed = None if args.samples == 1 else k
            writer.write(run_episode(env_name, task, expert, env=env, sample=k, seed=seed))
            bar.advance(job)

    # 2. Report over the requested tasks (including those found in the file).
    wanted = set(tasks)
    trajs = [
        t
        for t in read_trajectories(args.out)
        if t.env == env_name and t.task in wanted and t.sample < args.samples
    ]
    by_group: dict[str, list] = collections.defaultdict(list)
    for t in trajs:
        by_group[str(t.meta.get("level", "all"))].append(t)
    table = Table(title=f"{env_name} expert on {len(trajs)} tasks")
    for col in ("group", "tasks", "success", "mean reward", "mean rounds", "gave up"):
        table.add_column(col)
    for group, ts in sorted(by_group.items()):
        table.add_row(
            group,
            str(len(ts)),
            f"{sum(t.success for t in ts) / len(ts):.2f}",
            f"{sum(t.reward for t in ts) / len(ts):.3f}",
            f"{sum(t.num_steps for t in ts) / len(ts):.1f}",
            str(sum("gave_up" in t.meta for t in ts)),
        )
    if len(by_group) > 1:
        console.print(table)
    n = max(len(trajs), 1)
    summary = {
        "env": env_name,
        "tasks": len(trajs),
        "success_rate": sum(t.success for t in trajs) / n,
        "mean_reward": sum(t.reward for t in trajs) / n,
        "seconds": round(time.time() - start, 1),
    }
    console.print(
        f"[bold]{env_name} expert: success rate {summary['success_rate']:.3f}, mean reward "
        f"{summary['mean_reward']:.3f} over {summary['tasks']} tasks[/bold] -> {args.out}"
    )
    return summary
