"""`agentprm reproduce --env babyai|textcraft`: the paper's comparison with statistical power, resumable.

The protocol, top to bottom (every size is an argument and is written into report.md):
  1. expert data for SFT: the env's recommended recipe (BabyAI: recovery data with goal-object
     mistakes; TextCraft: 16 shuffled samples per goal) on the first --sft-tasks training tasks
                                                                  -> expert.jsonl
  2. SFT of the tiny policy from scratch, --sft-steps              -> sft/model
  3. PRM data: --n-td rollouts at T = 1.0 on --prm-tasks other training tasks -> rollouts/
  4. Monte-Carlo labels (Math-Shepherd, hard, --n-mc rollouts after every step of one seed
     trajectory per task) on the same tasks, with their token and env-step cost -> mc/
  5. five reward models from the same SFT policy, the SAME --prm-steps each, held-out loss every
     --eval-every steps, the weights of the lowest held-out loss kept (never chosen on test tasks):
     AgentPRM (td, beta 1), AgentPRM beta = 0, MC labels (beta 1), PVM, ORM   -> prm-<name>/
     then, with MC labels, every model's promise and progress against the MC estimates, step by
     step, on the held-out and the training PRM tasks (`agentprm mc-agreement`) -> agreement/
  6. evaluation on the test tasks: greedy, a pool of --pool samples at T = 0.7 (Best-of-N for
     N = 1..pool, oracle pass@N), beam search --beams with every reward model, paired bootstrap
     differences of AgentPRM against each baseline                           -> evaluate/
  7. report.md: protocol, Table 1, Figure 3, Figure 4, Table 3, the efficiency ratio, training
     curves                                                                   -> report.md, *.png

Environment: BabyAI runs in the AgentGym-exact mode (`babyai-agentgym`, the paper's setting) unless
--env babyai is given; TextCraft runs on AgentGym's tree (issue 14).

Resumable at every level: each stage leaves .done/<stage> holding the arguments it ran with, and
every stage's own recipe resumes mid-way. A finished stage whose arguments changed is refused
(start another --run-dir or pass --overwrite); a stage not yet started takes the current ones.
Budgets are optimizer steps and episode counts, never wall-clock: the same command and seed give
the same numbers on any machine. --guard-minutes only stops a training stage that overruns.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import agentprm.envs as E
from agentprm import jsonl, rundir
from agentprm import report as report_lib
from agentprm import validate as V
from agentprm.envs.splits import parse_tasks
from agentprm.evaluation import Results
from agentprm.recipes import collect, evaluate, expert, mc_agreement, mc_label, sft, train_prm

REWARD_MODELS = {  # name -> (labels, beta): the paper's method, its ablation and its baselines
    "agentprm": ("td", 1.0),
    "agentprm-beta0": ("td", 0.0),
    "mc": ("mc", 1.0),
    "pvm": ("pvm", 0.0),
    "orm": ("orm", 0.0),
}
# The recommended SFT data recipe of each env family (README, "Policies").
EXPERT_RECIPE = {
    "babyai": {"mistakes": 0.25, "misread": 0.5, "goal_mistakes": 0.5, "samples": 1},
    "textcraft": {"samples": 16},
    "webshop": {"samples": 1},
    **{m: {"samples": 1} for m in E.MATH_ENVS},
}
# The CPU scale per env family (README "The powered study" says why): BabyAI on its 13 short-horizon
# levels with an 8-round cap, TextCraft on every goal for SFT and the last 200 for the PRM (all 447
# goals x 16 episodes of up to 20 rounds would take ~10 h of rollouts on 2 cores) with AgentGym's
# 20 rounds, WebShop on 2000
# training goals with its 6 rounds and a 1024-token renderer budget (a result page alone is ~500),
# math on its training problems: all but 200 for SFT, those 200 for the PRM.
SCALE = {
    "babyai": {
        "train_split": "train_short",
        "sft_tasks": 1000,
        "sft_steps": 650,
        "prm_tasks": 200,
        "mc_tasks": 200,
        "test_tasks": "test_short_large",
        "max_rounds": 8,
        "max_prompt_tokens": 512,
    },
    # TextCraft: 650 steps were half an epoch of its 10,199 sequences: 0.113 greedy on test, 0.035 at
    # T = 1 on the PRM goals (37 of 200 with mixed outcomes; benchmarks/README.md); 2 epochs.
    "textcraft": {
        "train_split": "train",
        "sft_tasks": 447,
        "sft_steps": 2550,
        "prm_tasks": 200,
        "mc_tasks": 64,
        "test_tasks": "test",
        "max_rounds": 20,
        "max_prompt_tokens": 512,
    },
    # WebShop: 650 steps (1.4 epochs of its 3709 sequences) left a policy that cannot copy the goal's
    # options into its clicks (0/200 test goals greedy, benchmarks/README.md); ~6.5 epochs.
    "webshop": {
        "train_split": "train",
        "sft_tasks": 2000,
        "sft_steps": 3000,
        "prm_tasks": 200,
        "mc_tasks": 200,
        "test_tasks": "test",
        "max_rounds": 6,
        "max_prompt_tokens": 1024,
    },
    # Math (Section 5.3): the reference solutions of every training problem but the last 200 for SFT
    # (the arithmetic needs all the examples a 4.5M model can get; gsm8k: the user's data, 2000),
    # those 200 for the PRM data, the 200 pinned test problems; a step is a line, 16 at most.
    **{
        m: {
            "train_split": "train",
            "sft_tasks": n_sft,
            "sft_steps": 4500,
            "prm_tasks": 200,
            "mc_tasks": 200,
            "test_tasks": "test",
            "max_rounds": 16,
            "max_prompt_tokens": 512,
        }
        for m, n_sft in (("math", 4600), ("gsm-symbolic", 1798), ("gsm8k", 2000))
    },
}


@dataclasses.dataclass
class Args:
    env: str = "babyai"
    """babyai (played in its AgentGym-exact mode, babyai-agentgym, unless --env-mode default),
    textcraft, webshop, or a math env: math (built-in problems), gsm-symbolic, gsm8k"""
    env_mode: str = "agentgym"
    """agentgym (the paper's setting) or default (BabyAI's corrected env)"""
    run_dir: Path | None = None
    """where everything goes; default runs/reproduce-<env>"""
    train_split: str | None = None
    """where SFT and PRM tasks come from (default: BabyAI train_short, TextCraft train; BabyAI's
    40 levels: train)"""
    sft_tasks: int | None = None
    """training tasks of expert data for SFT, the first ones of --train-split (default: BabyAI
    1000, TextCraft all 447)"""
    sft_steps: int | None = None
    """SFT optimizer steps (batch 8); default 650 (BabyAI ~4 epochs of its expert data), TextCraft
    2550 (2 epochs), WebShop 3000 (~6.5 epochs), math 4500 (~7.8 epochs of its whole solutions)"""
    prm_tasks: int | None = None
    """training tasks for the PRM data, the last ones of --train-split (default 200: BabyAI's unseen
    in SFT; TextCraft's also in SFT, which uses all 447 goals: it has no others)"""
    n_td: int = 16
    """rollouts per PRM task at T = 1.0 (the paper's N_TD)"""
    n_mc: int = 16
    """MC rollouts after every step of the seed trajectory (the paper's N_mc)"""
    mc_tasks: int | None = None
    """MC-label only the first this many PRM tasks (default: all; TextCraft 64, whose 20-round
    failures make every MC label ~N_mc x 10 episodes of steps)"""
    prm_steps: int = 200
    """optimizer steps of EACH reward model (batch 16 trajectories)"""
    eval_every: int = 25
    """held-out loss every this many steps: the curves, and the checkpoint kept"""
    prm_lr: float = 3e-4
    """learning rate of every reward model"""
    heldout: float = 0.2
    """share of the PRM tasks held out for the curves and checkpoint choice"""
    test_tasks: str | None = None
    """default: BabyAI test_short_large (208 tasks), TextCraft test (97 goals); BabyAI's 40
    levels: test_large (200) or the paper's test (90)"""
    pool: int = 32
    """Best-of-N pool per test task (T = --eval-temperature)"""
    eval_temperature: float = 0.7
    """sampling temperature of the pool and of beam search"""
    beams: tuple[str, ...] = ("2x2", "4x4")
    """beam search configurations (N x M)"""
    reward_models: tuple[str, ...] = tuple(REWARD_MODELS)
    """which of agentprm, agentprm-beta0, mc, pvm, orm to train and compare"""
    max_rounds: int | None = None
    """round cap for rollouts, MC labels, expert data and evaluation (default: BabyAI 8, TextCraft 20,
    WebShop 6)"""
    max_prompt_tokens: int | None = None
    """the renderer's budget in every stage (default: BabyAI and TextCraft 512, WebShop 1024)"""
    model: str = "tiny"
    """the policy preset created from scratch"""
    seed: int = 0
    """seeds every stage"""
    threads: int = 2
    """torch CPU threads"""
    guard_minutes: float = 240.0
    """a training stage still running after this long fails with an error (a guard, not a budget)"""
    stop_after: str | None = None
    """stop after this stage (expert, sft, rollouts, mc, prm-<name>, evaluate)"""
    overwrite: bool = False
    """start this run dir afresh (delete what it holds) instead of resuming it"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        V.one_of(self, "env_mode", ("agentgym", "default"))
        if E.family(self.env) not in SCALE:
            raise ValueError(f"--env {self.env}: reproduce runs the study on {', '.join(SCALE)} only")
        V.at_least(
            self,
            1,
            "sft_tasks",
            "sft_steps",
            "prm_tasks",
            "n_td",
            "n_mc",
            "prm_steps",
            "eval_every",
            "pool",
            "threads",
            "max_rounds",
        )
        V.positive(self, "prm_lr", "guard_minutes", "eval_temperature")
        V.within(self, "heldout", 0.0, 1.0, low_open=True, high_open=True)
        unknown = sorted(set(self.reward_models) - set(REWARD_MODELS))
        if unknown:
            raise ValueError(f"unknown reward models {unknown}: choose from {sorted(REWARD_MODELS)}")
        if "agentprm" not in self.reward_models:
            raise ValueError("the comparison needs the agentprm reward model in --reward-models")


def toy(run_dir: Path, **kw) -> Args:
    """The study at toy scale (the `test` preset, a few tasks, 2 steps per model): every stage in
    seconds, for the tests and benchmarks/toy_identity.py's fingerprint. kw overrides any field."""
    defaults = dict(
        model="test",
        sft_tasks=16,
        sft_steps=4,
        prm_tasks=4,
        n_td=2,
        n_mc=2,
        prm_steps=2,
        eval_every=1,
        pool=2,
        beams=("1x2",),
        test_tasks="0,1",
        max_rounds=2,
        threads=1,
    )
    return Args(run_dir=run_dir, **{**defaults, **kw})


def env_name(args: Args) -> str:
    """The env the study plays: BabyAI's AgentGym-exact mode unless --env-mode default."""
    if E.short_name(args.env) == "babyai-agentgym":
        return "babyai-agentgym"
    fam = E.family(args.env)
    return "babyai-agentgym" if fam == "babyai" and args.env_mode == "agentgym" else fam


def scale(args: Args) -> dict:
    """train_split, sft_tasks, sft_steps, prm_tasks, mc_tasks, test_tasks, max_rounds,
    max_prompt_tokens: the args given, else SCALE's."""
    return {
        k: getattr(args, k) if getattr(args, k) is not None else v
        for k, v in SCALE[E.family(args.env)].items()
    }


def stages(args: Args, run: Path) -> list[tuple[str, object, object]]:
    """(name, Args of the stage's recipe, its main) in order: the whole protocol as data."""
    env = env_name(args)
    fam = E.family(env)
    sc = scale(args)
    train = parse_tasks(env, sc["train_split"])
    n_sft, n_prm, rounds = sc["sft_tasks"], sc["prm_tasks"], sc["max_rounds"]
    if max(n_sft, n_prm) > len(train):
        raise SystemExit(
            f"--sft-tasks and --prm-tasks must be <= the {len(train)} tasks of {sc['train_split']}"
        )
    sft_tasks, prm_tasks = train[:n_sft], train[-n_prm:]
    policy = str(run / "sft" / "model")
    rollouts = run / "rollouts" / "trajectories.jsonl"
    out = [
        (
            "expert",
            expert.Args(
                env=env,
                tasks=",".join(map(str, sft_tasks)),
                out=run / "expert.jsonl",
                max_rounds=rounds,
                **EXPERT_RECIPE[fam],
            ),
            expert.main,
        ),
        (
            "sft",
            sft.Args(
                data=run / "expert.jsonl",
                env=env,
                model=args.model,
                run_dir=run / "sft",
                epochs=1000,
                max_steps=sc["sft_steps"],
                max_prompt_tokens=sc["max_prompt_tokens"],
                time_guard_minutes=args.guard_minutes,
                threads=args.threads,
                seed=args.seed,
            ),
            sft.main,
        ),
        (
            "rollouts",
            collect.Args(
                policy=policy,
                env=env,
                tasks=",".join(map(str, prm_tasks)),
                n=args.n_td,
                temperature=1.0,
                run_dir=run / "rollouts",
                max_rounds=rounds,
                max_prompt_tokens=sc["max_prompt_tokens"],
                threads=args.threads,
                seed=args.seed,
            ),
            collect.main,
        ),
    ]
    if "mc" in args.reward_models:
        mc_tasks = None if sc["mc_tasks"] >= n_prm else ",".join(map(str, prm_tasks[: sc["mc_tasks"]]))
        out.append(
            (
                "mc",
                mc_label.Args(
                    data=rollouts,
                    policy=policy,
                    env=env,
                    n_mc=args.n_mc,
                    temperature=1.0,
                    tasks=mc_tasks,
                    max_rounds=rounds,
                    max_prompt_tokens=sc["max_prompt_tokens"],
                    run_dir=run / "mc",
                    threads=args.threads,
                    seed=args.seed,
                ),
                mc_label.main,
            )
        )
    first = args.reward_models[0]
    for name in args.reward_models:
        labels, beta = REWARD_MODELS[name]
        # MC labels on fewer tasks than the PRM data (TextCraft): the MC model holds out the first
        # model's held-out tasks among them, so that every model is judged on the same held-out tasks
        # (drawing its own split of its tasks would train it on some of the others' held-out ones)
        fewer = labels == "mc" and sc["mc_tasks"] < n_prm and name != first
        out.append(
            (
                f"prm-{name}",
                train_prm.Args(
                    data=rollouts,
                    env=env,
                    labels=labels,
                    beta=beta,
                    model=policy,
                    run_dir=run / f"prm-{name}",
                    mc_labels=run / "mc" / "mc_labels.jsonl" if labels == "mc" else None,
                    epochs=1000,
                    max_steps=args.prm_steps,
                    batch_size=16,
                    heldout=args.heldout,
                    heldout_tasks=run / f"prm-{first}" / "split.json" if fewer else None,
                    lr=args.prm_lr,
                    eval_every=args.eval_every,
                    # a checkpoint at every evaluation: a kill then loses at most eval_every steps
                    save_every=args.eval_every,
                    keep="best",
                    max_prompt_tokens=sc["max_prompt_tokens"],
                    time_guard_minutes=args.guard_minutes,
                    threads=args.threads,
                    seed=args.seed,
                ),
                train_prm.main,
            )
        )
    if "mc" in args.reward_models:  # every model against the MC estimates (no test task read)
        out.append(
            (
                "agreement",
                mc_agreement.Args(
                    reward_models=tuple(f"{n}={run / f'prm-{n}'}" for n in args.reward_models),
                    data=rollouts,
                    mc_labels=run / "mc" / "mc_labels.jsonl",
                    split=run / f"prm-{first}" / "split.json",  # every model holds out its tasks
                    env=env,
                    max_prompt_tokens=sc["max_prompt_tokens"],
                    run_dir=run / "agreement",
                    threads=args.threads,
                ),
                mc_agreement.main,
            )
        )
    out.append(
        (
            "evaluate",
            evaluate.Args(
                policy=policy,
                reward_models=tuple(f"{n}={run / f'prm-{n}'}" for n in args.reward_models),
                env=env,
                tasks=sc["test_tasks"],
                pool=args.pool,
                temperature=args.eval_temperature,
                beams=args.beams,
                max_rounds=rounds,
                max_prompt_tokens=sc["max_prompt_tokens"],
                run_dir=run / "evaluate",
                threads=args.threads,
                seed=args.seed,
            ),
            evaluate.main,
        )
    )
    return out


def _data_line(args: Args, run: Path) -> list[str]:
    """What each reward model trained on, once their splits exist: the MC model sees one seed
    trajectory per task where the others see N_TD, so the same step budget is many more epochs."""
    split = run / "prm-agentprm" / "split.json"
    if not split.exists():
        return []
    tasks = len(jsonl.read_object(split, ("train",))["train"])
    seen = args.prm_steps * 16  # trajectories drawn by the optimizer: steps x batch
    line = (
        f"- training data: agentprm, agentprm-beta0, PVM and ORM train on {args.n_td * tasks} rollouts "
        f"({args.n_td} per task of {tasks}), {seen / (args.n_td * tasks):.1f} epochs in {args.prm_steps} steps"
    )
    mc_split = run / "prm-mc" / "split.json"
    if "mc" in args.reward_models and mc_split.exists():
        mc_tasks = len(jsonl.read_object(mc_split, ("train",))["train"])
        line += (
            f"; the MC model on {mc_tasks} seed trajectories (one per task), {seen / mc_tasks:.1f} epochs "
            f"in the same steps: it sees 1/{args.n_td} of the trajectories (MC labels cost rollouts per "
            "step instead, Table 3)"
        )
    return [line]


# Below this share of PRM tasks with mixed outcomes the reward models have little to rank (the
# 650-step TextCraft policy: 37 of 200, success 0.035; benchmarks/README.md), so the study says so.
MIXED_SHARE_WARNING = 0.25


def rollouts_line(run: Path) -> list[str]:
    """What the PRM data turned out to be (success, tasks with mixed outcomes), with a warning when
    few tasks have both outcomes; [] before the rollouts stage has finished."""
    summary = next(
        (m for m in reversed(jsonl.read(run / "rollouts" / "metrics.jsonl")) if "tasks_mixed" in m),
        None,
    )
    if summary is None:
        return []
    line = (
        f"- PRM data as drawn: success {summary['success_rate']:.3f} over {summary['trajectories']} rollouts, "
        f"{summary['tasks_mixed']} of {summary['tasks']} tasks with mixed outcomes, "
        f"{summary['mean_rounds']:.1f} rounds per episode"
    )
    if summary["tasks_mixed"] < MIXED_SHARE_WARNING * summary["tasks"]:
        line += (
            f". WARNING: under {MIXED_SHARE_WARNING:.0%} of the tasks have both outcomes, so the reward models have "
            "little to rank and the comparison is weak; a stronger policy (more --sft-steps) gives more"
        )
    return [line]


def protocol_section(args: Args, run: Path) -> list[str]:
    """What ran, with every size: the report's first section."""
    env = env_name(args)
    sc = scale(args)
    seconds = {}
    for marker in sorted((run / ".done").glob("*")):
        seconds[marker.name] = json.loads(marker.read_text()).get("seconds")
    rms = ", ".join(f"{n} ({REWARD_MODELS[n][0]}, beta {REWARD_MODELS[n][1]:g})" for n in args.reward_models)
    n_sft, n_prm = sc["sft_tasks"], sc["prm_tasks"]
    train = parse_tasks(env, sc["train_split"])
    overlap = len(set(train[:n_sft]) & set(train[-n_prm:]))
    lines = [
        "## Protocol (`agentprm reproduce`)",
        "",
        f"- environment `{env}`: {E.mode_note(env)}",
        f"- policy: preset `{args.model}` from scratch, SFT {sc['sft_steps']} optimizer steps on expert data "
        f"of the first {n_sft} tasks of `{sc['train_split']}` ({EXPERT_RECIPE[E.family(env)]}); seed {args.seed}",
        f"- PRM data: {args.n_td} rollouts at T = 1.0 on each of the last {n_prm} tasks of `{sc['train_split']}` ({overlap} of them "
        f"also in the SFT data); MC labels: N_mc = {args.n_mc}, hard, one seed trajectory per task on the "
        f"first {min(sc['mc_tasks'], n_prm)} of them",
        f"- reward models: {rms}; each {args.prm_steps} optimizer steps of 16 trajectories, lr {args.prm_lr}, "
        f"held-out loss every {args.eval_every} steps on {args.heldout:.0%} of the PRM tasks, the weights of "
        "the lowest held-out loss kept (test tasks never used for any choice)",
        *rollouts_line(run),
        *_data_line(args, run),
        f"- evaluation: `{sc['test_tasks']}` tasks, greedy, a pool of {args.pool} at T = {args.eval_temperature}, "
        f"beam search {', '.join(args.beams)}; round cap {sc['max_rounds']} everywhere (expert data included), "
        f"renderer budget {sc['max_prompt_tokens']} tokens",
        "- stage seconds (this machine; not part of the result): "
        + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items() if v is not None),
        "",
    ]
    return lines


def main(args: Args) -> Results | None:
    env = env_name(args)
    run = args.run_dir or Path(f"runs/reproduce-{E.family(env)}")
    # Stage arguments are checked per stage (_stage); the study's own args.json records the last call.
    run = rundir.prepare(run, args, neutral=frozenset(f.name for f in dataclasses.fields(Args)))
    start = time.time()
    plan = stages(args, run)
    names = [name for name, _, _ in plan]
    if args.stop_after is not None and args.stop_after not in names:
        raise SystemExit(f"--stop-after {args.stop_after!r}: choose one of {names}")
    for name, stage_args, fn in plan:
        rundir.run_stage(run, name, stage_args, fn, "reproduce")
        if name == "rollouts":
            print("\n".join(f"[reproduce] {line[2:]}" for line in rollouts_line(run)))
        if name == args.stop_after:
            print(f"[reproduce] stopped after {name} (--stop-after); re-run without it to go on")
            return None
    prm_runs = [run / f"prm-{n}" for n in args.reward_models]
    cost_runs = [run / "rollouts"] + ([run / "mc"] if "mc" in args.reward_models else [])
    agreement = [run / "agreement"] if "mc" in args.reward_models else []
    path = report_lib.write(
        [run / "evaluate", *prm_runs, *agreement, *cost_runs], run, preface=protocol_section(args, run)
    )
    results = Results.load(run / "evaluate" / "results.json")
    print(f"\n[reproduce] {results.env}, {results.tasks} test tasks:")
    print("\n".join(report_lib.summary_table(results)))
    minutes = (time.time() - start) / 60
    print(f"\n[reproduce] {minutes:.1f} min this run -> {path}")
    rundir.log_metrics(run, {"stage": "reproduce", "minutes": minutes})
    return results
