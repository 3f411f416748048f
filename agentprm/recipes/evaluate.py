"""`agentprm evaluate`: the paper's evaluation of a policy with reward models on a pinned test split.

For every reward model (PRM, ORM, PVM, ablations: anything `agentprm train-prm` wrote) it reports
success rate AND mean reward, each with a 95% confidence interval over tasks, for
  - greedy decoding (the SFT baseline) and sampling at the evaluation temperature (Best-of-1),
  - Best-of-N for N = 1, 2, 4, ..., --pool, all drawn from ONE pool of --pool samples per task
    (exact expectation over subsets, agentprm.evaluation.best_of_n) with last/min/mean step scores,
  - the oracle (a perfect verifier) on the same pool: pass@N, the ceiling,
  - step-level beam search @N x M for each --beams entry,
with a compute ledger per stage. Everything lands in runs/<name>/: greedy.jsonl, pool.jsonl,
scores_<rm>.json, beam_<rm>_<N>x<M>.jsonl, results.json (read by `agentprm report`), metrics.jsonl.
Re-running skips finished work (trajectory files are resumed task by task).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import agentprm.envs as E
from agentprm import rundir
from agentprm import validate as V
from agentprm.envs.splits import parse_tasks
from agentprm.evaluation import (
    Comparison,
    Curve,
    Rate,
    Results,
    RewardModelInfo,
    aggregate,
    best_of_n,
    bootstrap_ci,
    oracle_at_n,
    paired_difference,
    wilson,
)
from agentprm.policies import ServerArgs, make_policy
from agentprm.prm.remote import RemotePRMScorer
from agentprm.prm.scorers import PRMScorer
from agentprm.prm.value import load_value_model, reward_model_folder, train_prm_run_args
from agentprm.search import SearchConfig, SearchLedger, beam_search, greedy, sample_pool
from agentprm.types import TrajectoryWriter, completed_keys, read_trajectories

# Arguments a resumed run may change: they add work (more tasks, samples) or only set batching.
RESUME_NEUTRAL = frozenset({"tasks", "pool", "beams", "reward_models", "batch_size", "chunk"})


@dataclasses.dataclass
class Args(ServerArgs):
    policy: str = "runs/sft/model"
    """the policy: an HF folder, smollm2, or openai:<model>@<base_url>"""
    reward_models: tuple[str, ...] = ()
    """NAME=PATH items; PATH is a train-prm run dir (its model/ and args are used) or an HF folder"""
    env: str = "babyai"
    """environment"""
    tasks: str = "test"
    """pinned split or range"""
    pool: int = 64
    """samples per task for Best-of-N (curves for N = 1, 2, 4, ... up to it)"""
    temperature: float = 0.7
    """evaluation sampling temperature (paper: 0.7)"""
    beams: tuple[str, ...] = ("2x2", "4x4", "8x8")
    """beam search configurations NxM"""
    max_prompt_tokens: int = 512
    """the policy's renderer budget"""
    max_new_tokens: int = 96
    """per response"""
    max_rounds: int | None = None
    """round cap; default: the env's registered cap (20)"""
    batch_size: int = 64
    """prompts per generate call"""
    chunk: int = 8
    """beam search runs this many tasks at a time (each chunk is saved: resumable)"""
    run_dir: Path = Path("runs/evaluate")
    """output folder"""
    threads: int | None = None
    """torch CPU threads"""
    seed: int = 0
    """sampling seed"""
    overwrite: bool = False
    """start this run dir afresh (delete what it holds) instead of resuming it"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        super().__post_init__()
        V.sampling(self)
        V.at_least(self, 1, "pool", "chunk")
        for beam in self.beams:
            n, sep, m = beam.lower().partition("x")
            if not (sep and n.isdigit() and m.isdigit() and int(n) >= 1 and int(m) >= 1):
                raise ValueError(f"--beams takes NxM with N, M >= 1 (e.g. 2x2 4x4), got {beam!r}")


def _resume(path: Path, env: str, tasks: list[int], n: int, play) -> list:
    """Play the (task, sample) pairs missing from `path` and return them all, sorted by key.

    play(tasks_todo, on_done) hands each finished trajectory to on_done, which appends it to `path`
    at once: a killed run keeps every trajectory that ended (a pool of thousands of episodes takes
    hours on a CPU) and its resume plays only the tasks with a sample missing (all of such a task's
    samples are played again, as one job list; the ones already stored are not written twice)."""
    done = completed_keys(path)
    todo = sorted({t for t in tasks for s in range(n) if (env, t, s) not in done})
    if todo:
        with TrajectoryWriter(path) as writer:

            def on_done(traj) -> None:
                if (env, traj.task, traj.sample) not in done:
                    writer.write(traj)

            play(todo, on_done)
    wanted = {(env, t, s) for t in tasks for s in range(n)}
    return sorted((t for t in read_trajectories(path) if t.key in wanted), key=lambda t: t.key)


# Not in results.json: what the same command and seed do not reproduce (wall clock; the number of
# generate calls, which follows the batching and how often a run was resumed). ledgers.json has them.
_RUN_DEPENDENT = frozenset({"seconds", "generate_calls"})


def _spent(run: Path, stage: str, ledger: SearchLedger, stored: list | None = None) -> dict:
    """Add a stage's ledger to run/ledgers.json (resumed runs add up) and return the stage's total
    without its run-dependent fields (_RUN_DEPENDENT).

    stored: the stage's trajectories, when each carries its own cost (greedy, the pool): episodes,
    env steps and tokens are then read from them, so a run killed mid-stage, whose ledger was never
    written, still counts what it played once resumed."""
    path = run / "ledgers.json"
    all_ = json.loads(path.read_text()) if path.exists() else {}
    old = all_.get(stage, {})
    all_[stage] = {k: old.get(k, 0) + v for k, v in dataclasses.asdict(ledger).items()}
    if stored is not None:
        all_[stage].update(
            episodes=len(stored),
            env_steps=sum(t.num_steps for t in stored),
            prompt_tokens=sum(t.prompt_tokens for t in stored),
            policy_tokens=sum(t.response_tokens for t in stored),
        )
    rundir.atomic_write_text(path, json.dumps(all_, indent=1))
    return {k: v for k, v in all_[stage].items() if k not in _RUN_DEPENDENT}


def _fingerprint(path: Path) -> dict:
    """Which weights a reward model name stood for: the folder and its files' sizes and times."""
    files = sorted(p for p in path.iterdir() if p.is_file())
    return {
        "path": str(path.resolve()),
        "files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files},
    }


def _forget_if_changed(run: Path, name: str, path: Path) -> None:
    """A reward model name reused for other weights would silently reuse stale scores and beam
    searches: drop them (with a message) so they are recomputed."""
    record = run / f"reward_model_{name}.json"
    now = _fingerprint(path)
    if record.exists() and json.loads(record.read_text()) != now:
        stale = [run / f"scores_{name}.json", *run.glob(f"beam_{name}_*.jsonl")]
        print(
            f"{name}: {path} is not the model earlier results were computed with; recomputing "
            f"{', '.join(p.name for p in stale if p.exists()) or 'nothing'}"
        )
        for p in stale:
            p.unlink(missing_ok=True)
    rundir.atomic_write_text(record, json.dumps(now))


def _rates(trajs, ledger: dict | None = None) -> Rate:
    """Success rate (Wilson CI) and mean reward (bootstrap CI over tasks) of one trajectory per task."""
    s = wilson(sum(t.success for t in trajs), len(trajs))
    r = bootstrap_ci([t.reward for t in trajs])
    return Rate(s[0], s[1:], r[0], r[1:], n=len(trajs), ledger=ledger)


def _curve(per_task: dict[int, list], ns: list[int], score) -> Curve:
    """{n: Rate}: score(trajs, key, n) averaged over tasks, with a bootstrap interval over tasks
    (inside [0, 1])."""
    out = {}
    for n in ns:
        succ = bootstrap_ci([score(trajs, "success", n) for trajs in per_task.values()])
        rew = bootstrap_ci([score(trajs, "reward", n) for trajs in per_task.values()])
        out[n] = Rate(succ[0], succ[1:], rew[0], rew[1:])
    return out


def compare(method: str, per_task: dict) -> dict:
    """AgentPRM against every other reward model, paired over tasks (evaluation.paired_difference).

    per_task: {setting: {reward model: {key: [value per task, in task order]}}} for settings such as
    "beam@2x2" and "bon@8", keys "success" and "reward".
    -> {baseline: {setting: {key: Paired}}}
    """
    out: dict = {}
    for setting, by_rm in per_task.items():
        if method not in by_rm:
            continue
        for baseline, values in by_rm.items():
            if baseline == method:
                continue
            out.setdefault(baseline, {})[setting] = {
                key: paired_difference(by_rm[method][key], values[key]) for key in values
            }
    return out


def load_reward_model(spec: str) -> tuple[str, Path | str, dict]:
    """'name=path' -> (name, HF folder, its train-prm args (labels, beta, budget) and training
    summary (steps, train_tokens) when known); 'name=http://host:port' -> (name, the URL, {}): a
    PRM server (`agentprm serve`)."""
    name, sep, path = spec.partition("=")
    if not sep:
        raise SystemExit(f"give reward models as NAME=PATH (e.g. agentprm=runs/prm-td), not {spec!r}")
    if path.startswith(("http://", "https://")):  # a PRM server (agentprm serve): it renders itself
        return name, path, {}
    return name, reward_model_folder(path), train_prm_run_args(path) or {}


def main(args: Args) -> Results:
    if args.threads:
        torch.set_num_threads(args.threads)
    run = rundir.prepare(args.run_dir, args, neutral=RESUME_NEUTRAL)
    env = E.short_name(args.env)
    tasks = parse_tasks(env, args.tasks)
    console = Console()
    policy = make_policy(
        args.policy,
        args.batch_size,
        args.max_prompt_tokens,
        request_timeout=args.request_timeout,
        max_retries=args.max_retries,
    )
    config = SearchConfig(
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        max_rounds=args.max_rounds,
        seed=args.seed,
        max_active=args.batch_size,
    )
    console.print(f"environment {env}: {E.mode_note(env)}")
    ledgers: dict[str, dict] = {}

    # 1. Greedy (the SFT baseline).
    ledger = SearchLedger()
    greedy_trajs = _resume(
        run / "greedy.jsonl",
        env,
        tasks,
        1,
        lambda todo, on_done: greedy(env, todo, policy, None, config, ledger, on_done),
    )
    greedy_rate, ledgers["greedy"] = _rates(greedy_trajs), _spent(run, "greedy", ledger, greedy_trajs)
    console.print(f"greedy: success {greedy_rate.success:.3f}, reward {greedy_rate.reward:.3f}")

    # 2. One pool of --pool samples per task at the evaluation temperature.
    ledger = SearchLedger()

    pool_config = dataclasses.replace(config, n=args.pool)
    pool = _resume(
        run / "pool.jsonl",
        env,
        tasks,
        args.pool,
        lambda todo, on_done: sample_pool(env, todo, policy, pool_config, ledger, on_done=on_done),
    )
    ledgers["pool"] = _spent(run, "pool", ledger, pool)
    per_task: dict[int, list] = {}
    for t in pool:
        per_task.setdefault(t.task, []).append(t)
    ns = [n for n in (2**k for k in range(12)) if n <= args.pool]

    def outcome(t, key):
        return float(t.success) if key == "success" else t.reward

    oracle = _curve(per_task, ns, lambda ts, key, n: oracle_at_n([outcome(t, key) for t in ts], n))
    # Sampling (Best-of-1) = the pool's mean per task: the same estimate as every curve's N = 1.
    results = Results(
        env,
        len(tasks),
        args.pool,
        args.policy,
        greedy_rate,
        oracle,
        dataclasses.replace(oracle[1], n=len(per_task)),
    )
    console.print(f"pool: {len(pool)} trajectories; oracle pass@{ns[-1]} {oracle[ns[-1]].success:.3f}")

    # 3. Per reward model: score the pool once, Best-of-N curves, then beam search.
    paired: dict = {}  # setting -> reward model -> key -> per-task values (for the comparison)
    for spec in args.reward_models:
        name, path, info = load_reward_model(spec)
        if isinstance(path, str):  # a PRM server: scored remotely with the server's own budget
            scorer = RemotePRMScorer(path, name=name)
        else:
            model, tok = load_value_model(path)
            budget = info.get("max_prompt_tokens", args.max_prompt_tokens)
            scorer = PRMScorer(model, tok, budget=budget, name=name)
        results.reward_models[name] = RewardModelInfo(
            str(path), **{k: info.get(k) for k in ("labels", "beta", "td_form", "steps", "train_tokens")}
        )
        if not isinstance(path, str):
            _forget_if_changed(run, name, path)
        cache = run / f"scores_{name}.json"
        cached = json.loads(cache.read_text()) if cache.exists() else {}
        keys = [f"{t.task}:{t.sample}" for t in pool]
        if not all(k in cached for k in keys):
            values = scorer.score_trajectories(env, pool)
            cached = dict(zip(keys, values, strict=True))
            rundir.atomic_write_text(cache, json.dumps(cached))
        ledgers[f"score pool: {name}"] = _spent(
            run, f"score pool: {name}", SearchLedger(prm_tokens=scorer.tokens)
        )
        scores = {(t.task, t.sample): cached[f"{t.task}:{t.sample}"] for t in pool}
        results.bon[name] = {
            how: _curve(
                per_task,
                ns,
                lambda ts, key, n, how=how, scores=scores: best_of_n(
                    [aggregate(scores[(t.task, t.sample)], how) for t in ts], [outcome(t, key) for t in ts], n
                ),
            )
            for how in ("last", "min", "mean")
        }
        top = {t: sorted(ts, key=lambda x: x.sample) for t, ts in sorted(per_task.items())}
        paired.setdefault(f"bon@{ns[-1]}", {})[name] = {
            key: [
                best_of_n(
                    [aggregate(scores[(x.task, x.sample)], "last") for x in ts],
                    [outcome(x, key) for x in ts],
                    ns[-1],
                )
                for ts in top.values()
            ]
            for key in ("success", "reward")
        }
        last = results.bon[name]["last"][ns[-1]]
        console.print(f"{name}: Best-of-{ns[-1]} success {last.success:.3f}, reward {last.reward:.3f}")
        results.beam[name] = {}
        for beam in args.beams:
            n, m = (int(x) for x in beam.lower().split("x"))
            cfg = dataclasses.replace(config, n=n, m=m)
            stage = f"beam {name} @{beam}"

            def play_beam(todo, on_done, cfg=cfg, scorer=scorer, stage=stage):
                for start in range(0, len(todo), args.chunk):  # chunks are written as they finish
                    chunk_ledger = SearchLedger()
                    for traj in beam_search(
                        env, todo[start : start + args.chunk], policy, scorer, cfg, chunk_ledger
                    ):
                        on_done(traj)
                    # once the chunk's last trajectory is written: its cost is saved with it, so a
                    # killed run's ledger still adds up to what its trajectories cost
                    _spent(run, stage, chunk_ledger)

            trajs = _resume(run / f"beam_{name}_{n}x{m}.jsonl", env, tasks, 1, play_beam)
            paired.setdefault(f"beam@{beam}", {})[name] = {
                key: [outcome(t, key) for t in sorted(trajs, key=lambda t: t.task)]
                for key in ("success", "reward")
            }
            # the stage's total over every run
            row = results.beam[name][beam] = _rates(trajs, _spent(run, stage, SearchLedger()))
            console.print(f"{name}: beam @{beam} success {row.success:.3f}, reward {row.reward:.3f}")
    results.ledgers = ledgers
    # AgentPRM (td labels, beta > 0) against each baseline, paired over the same tasks.
    method, _ = results.method_and_baselines()
    results.comparison = Comparison(method, compare(method, paired) if method else {})

    # 4. Save and summarise.
    results.save(run / "results.json")
    saved = results.to_json()
    rundir.log_metrics(run, {"stage": "evaluate", "greedy": saved["greedy"], "sample": saved["sample"]})
    table = Table(title=f"{env}: {len(tasks)} tasks (success / mean reward)")
    table.add_column("method")
    table.add_column("success")
    table.add_column("reward")
    rows = [
        ("greedy", results.greedy),
        ("sample (Bo1)", results.sample),
        (f"oracle pass@{ns[-1]}", oracle[ns[-1]]),
    ]
    for name in results.bon:
        rows.append((f"{name} BoN@{ns[-1]}", results.bon[name]["last"][ns[-1]]))
        rows += [(f"{name} beam@{beam}", r) for beam, r in results.beam[name].items()]
    for label, r in rows:
        table.add_row(label, f"{r.success:.3f}", f"{r.reward:.3f}")
    console.print(table)
    return results
