"""`agentprm demo`: the paper's whole loop on the embedded default model, on CPU, in about 20 minutes.

  1. expert trajectories on BabyAI training tasks            -> runs/demo/expert.jsonl
  2. SFT of the tiny policy (tokenizer trained on them)       -> runs/demo/sft/model
  3. rollouts of the SFT policy, --samples per training task  -> runs/demo/rollouts/trajectories.jsonl
  4. reward models on those rollouts, all from the SFT policy: ORM, PVM, AgentPRM (TD(lambda)+GAE,
     L_Q + L_A) and the paper's ablation without L_A (beta = 0) -> runs/demo/prm-<name>/model
  5. evaluation on the test tasks: greedy, Best-of-N from one pool, oracle pass@N, beam search
                                                              -> runs/demo/evaluate/results.json
  6. report: tables and figures                               -> runs/demo/report.md, *.png
     and a summary printed: every method with 95% intervals, and whether AgentPRM is ahead of each
     baseline, level or behind (paired bootstrap over the test tasks)

Deterministic: every training stage is budgeted in optimizer steps (each reward model gets the
same --prm-steps), every stage is seeded by --seed, so two runs with the same arguments write the
same results.json on any machine. --guard-minutes only stops a training stage that overruns, with
an error that says so, instead of silently training less.

Scale (so that it fits 20 minutes on 2 CPU cores): BabyAI's 13 short-horizon levels
(splits test_short / train_short), a 6-round cap, a pool of 8 samples per test task and beam
search @2x2. Every knob is an argument; the full-size evaluation is `agentprm evaluate` (README).
Each finished stage leaves runs/demo/.done/<stage> with its arguments; re-running skips it (and the
stages themselves resume mid-way), so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from agentprm import report as report_lib
from agentprm import rundir
from agentprm import validate as V
from agentprm.envs.splits import parse_tasks
from agentprm.evaluation import Results
from agentprm.recipes import collect, evaluate, expert, report, sft, train_prm

REWARD_MODELS = {  # name -> (labels, beta); ORM and PVM learn promise only (L_Q), as in the paper
    "orm": ("orm", 0.0),
    "pvm": ("pvm", 0.0),
    "agentprm": ("td", 1.0),
    "agentprm-no-LA": ("td", 0.0),
}


@dataclasses.dataclass
class Args:
    run_dir: Path = Path("runs/demo")
    """where everything goes (re-running skips finished stages)"""
    env: str = "babyai"
    """environment (the demo's defaults are tuned for BabyAI)"""
    train_tasks: str = "train_short"
    """tasks for expert data and PRM rollouts"""
    test_tasks: str = "test_short"
    """tasks to evaluate on"""
    expert_tasks: int = 800
    """expert trajectories for SFT (the first ones of --train-tasks)"""
    model: str = "tiny"
    """the policy preset created from scratch (tests use the far smaller `test`)"""
    sft_steps: int = 300
    """SFT optimizer steps (batch 8; about 3 minutes on 2 idle cores)"""
    rollout_tasks: int = 32
    """training tasks the PRM rollouts are drawn on (the last ones of --train-tasks, unseen in SFT)"""
    samples: int = 8
    """rollouts per training task (the paper: 16)"""
    prm_steps: int = 15
    """optimizer steps of EACH reward model, batch 16 trajectories (TD targets need the value head
    trained first: on TextCraft, 17 steps left AgentPRM below PVM and 44 put it above;
    benchmarks/README.md)"""
    prm_lr: float = 3e-4
    """learning rate of the reward models (a few dozen steps fit the budget)"""
    guard_minutes: float = 60.0
    """a training stage still running after this long fails with an error (a guard, not a budget;
    re-running resumes it): on an idle 2-core machine SFT takes ~3 minutes, each reward model ~2"""
    seed: int = 0
    """seeds every stage: SFT, rollouts, reward models, evaluation"""
    reward_models: tuple[str, ...] = tuple(REWARD_MODELS)
    """which of orm, pvm, agentprm, agentprm-no-LA to train and compare"""
    pool: int = 8
    """Best-of-N pool per test task"""
    beams: tuple[str, ...] = ("2x2",)
    """beam search configurations"""
    max_rounds: int = 6
    """round cap for rollouts and evaluation (the expert needs <= 2.1 on these levels on average)"""
    threads: int = 2
    """torch CPU threads"""
    overwrite: bool = False
    """start this run dir afresh (delete what it holds) instead of resuming it"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        V.at_least(
            self,
            1,
            "expert_tasks",
            "sft_steps",
            "rollout_tasks",
            "samples",
            "prm_steps",
            "pool",
            "max_rounds",
            "threads",
        )
        V.positive(self, "prm_lr", "guard_minutes")


def main(args: Args) -> Results:
    run = rundir.prepare(args.run_dir, args)
    start = time.time()
    train = parse_tasks(args.env, args.train_tasks)
    sft_tasks = train[: args.expert_tasks]
    prm_tasks = train[-args.rollout_tasks :]
    rm_dirs = {name: run / f"prm-{name}" for name in args.reward_models}
    for name in args.reward_models:
        if name not in REWARD_MODELS:
            raise SystemExit(f"unknown reward model {name!r}: choose from {sorted(REWARD_MODELS)}")

    def stage(name, stage_args, fn):  # skipped when .done/<name> holds these arguments
        rundir.run_stage(run, name, stage_args, fn, "demo")

    # 1. Expert data for SFT.
    stage(
        "expert",
        expert.Args(env=args.env, tasks=",".join(map(str, sft_tasks)), out=run / "expert.jsonl"),
        expert.main,
    )
    # 2. SFT of the tiny policy from scratch.
    stage(
        "sft",
        sft.Args(
            data=run / "expert.jsonl",
            env=args.env,
            model=args.model,
            run_dir=run / "sft",
            epochs=1000,
            max_steps=args.sft_steps,
            time_guard_minutes=args.guard_minutes,
            threads=args.threads,
            seed=args.seed,
        ),
        sft.main,
    )
    policy = str(run / "sft" / "model")
    # 3. Rollouts for PRM training (temperature 1.0, the paper's collection setting).
    stage(
        "rollouts",
        collect.Args(
            policy=policy,
            env=args.env,
            tasks=",".join(map(str, prm_tasks)),
            n=args.samples,
            temperature=1.0,
            run_dir=run / "rollouts",
            max_rounds=args.max_rounds,
            threads=args.threads,
            seed=args.seed,
        ),
        collect.main,
    )
    # 4. Reward models, each initialised from the SFT policy.
    for name, path in rm_dirs.items():
        labels, beta = REWARD_MODELS[name]
        stage(
            f"prm-{name}",
            train_prm.Args(
                data=run / "rollouts" / "trajectories.jsonl",
                env=args.env,
                labels=labels,
                beta=beta,
                model=policy,
                run_dir=path,
                epochs=1000,
                max_steps=args.prm_steps,
                batch_size=16,
                heldout=0.25,
                lr=args.prm_lr,
                time_guard_minutes=args.guard_minutes,
                threads=args.threads,
                seed=args.seed,
            ),
            train_prm.main,
        )
    # 5. Evaluation on the test tasks.
    stage(
        "evaluate",
        evaluate.Args(
            policy=policy,
            reward_models=tuple(f"{n}={p}" for n, p in rm_dirs.items()),
            env=args.env,
            tasks=args.test_tasks,
            pool=args.pool,
            beams=args.beams,
            max_rounds=args.max_rounds,
            run_dir=run / "evaluate",
            threads=args.threads,
            seed=args.seed,
        ),
        evaluate.main,
    )
    # 6. Report (always rewritten: cheap).
    report.main(report.Args(runs=(run / "evaluate", *rm_dirs.values(), run / "rollouts"), out=run))
    minutes = (time.time() - start) / 60
    results = Results.load(run / "evaluate" / "results.json")
    print(f"\n[demo] {results.env}, {results.tasks} test tasks:")
    print("\n".join(report_lib.summary_table(results)))
    print(f"\n[demo] finished in {minutes:.1f} min this run -> {run / 'report.md'}")
    rundir.log_metrics(run, {"stage": "demo", "minutes": minutes})
    return results
