"""Do the backbone's size or the amount of PRM data limit the reward models? A study's reward models
again with one thing changed: a bigger preset (--preset), more PRM tasks (--extra-tasks), or both.

The reward models of an `agentprm reproduce` study start from its SFT policy, the tiny preset (the
paper's setting: the PRM is initialised from the policy), and train on 200 PRM tasks. On BabyAI they
rank single steps far below what the Monte-Carlo yardstick allows, even on their own training tasks
(benchmarks/README.md, "The powered study"). This asks whether a bigger backbone or more data
changes that, with everything else equal:
  1. sft (with --preset): a policy of that preset trained on the study's own expert data with the
     study's SFT arguments (same steps, batch, data, seed; only the preset differs). Without
     --preset the reward models start from the study's own SFT policy;
  2. rollouts (with --extra-tasks N): the study's PRM data plus the same draw (n, T, seed) on the N
     training tasks just before its PRM tasks (none of them in SFT unless --allow-sft-tasks); the
     study's trajectories are copied, not drawn again;
  3. prm-<name>: each of --reward-models trained with the study's arguments (labels, beta, lr, ...)
     on that data, the study's held-out PRM tasks held out exactly (--heldout-tasks), for --steps
     optimizer steps (default: the study's, scaled by the growth of the training tasks, so every
     model sees its data as many times);
  4. evaluate: the study's policy, test tasks and seed, with the study's greedy run and Best-of-N
     pool copied (Best-of-N ranks the very same samples) and beam search played anew. The study's
     own models enter beside them as <name>-study, from their cached scores and beams, so every
     comparison is paired over the same tasks (AgentPRM = the new agentprm);
  5. agreement: the new and the study's models against the study's MC estimates, step by step, on
     its held-out and training PRM tasks (`agentprm mc-agreement`), in one table.
Every stage resumes (each is a recipe run dir; finished stages are skipped).

    python benchmarks/prm_capacity.py runs/reproduce-babyai --preset small --threads 1
    python benchmarks/prm_capacity.py runs/reproduce-babyai --preset none --extra-tasks 200 --allow-sft-tasks --threads 1
    python benchmarks/pool_ranking.py runs/reproduce-babyai/capacity-small/evaluate
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import tyro

from agentprm import rundir
from agentprm.envs.splits import parse_tasks
from agentprm.models.presets import PRESETS
from agentprm.recipes import collect, evaluate, mc_agreement, reproduce, sft, train_prm


@dataclasses.dataclass
class Args:
    study: Path
    """an `agentprm reproduce` run dir with sft/, rollouts/, prm-<name>/, mc/ and evaluate/ finished"""
    preset: str = "small"
    """the bigger backbone (agentprm/models/presets.py); none: the study's own SFT policy"""
    extra_tasks: int = 0
    """PRM tasks added to the study's (the training tasks just before them)"""
    allow_sft_tasks: bool = False
    """let those include tasks of the SFT data (BabyAI's train_short has only 100 tasks between its
    1000 SFT tasks and its 200 PRM tasks); how many is printed"""
    steps: int | None = None
    """optimizer steps per reward model; default the study's x (training tasks now / the study's)"""
    reward_models: tuple[str, ...] = ("agentprm", "orm")
    """which of the study's reward models to train again"""
    out: Path | None = None
    """output dir; default <study>/capacity-<preset>[-data<tasks>] or <study>/data-<tasks>"""
    threads: int = 1
    """torch CPU threads"""


def _copy(src: Path, dst: Path) -> None:
    if src.exists() and not dst.exists():
        shutil.copyfile(src, dst)


def main(args: Args) -> None:
    preset = None if args.preset == "none" else args.preset
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"--preset {args.preset!r}: choose one of {sorted(PRESETS)} or none")
    if preset is None and args.extra_tasks <= 0:
        raise ValueError("nothing changes: give --preset, --extra-tasks N > 0, or both")
    study = args.study
    for need in ("sft/args.json", "rollouts/trajectories.jsonl", "mc/mc_labels.jsonl", "evaluate/pool.jsonl"):
        if not (study / need).exists():
            raise FileNotFoundError(f"{study / need} is missing: finish the study first")
    study_args = rundir.load_args(reproduce.Args, study / "args.json")
    sc = reproduce.scale(study_args)
    n_prm = sc["prm_tasks"]
    name = "-".join(
        ([f"capacity-{preset}"] if preset else [])
        + ([f"data{n_prm + args.extra_tasks}"] if args.extra_tasks else [])
    )
    out = args.out or study / name
    out.mkdir(parents=True, exist_ok=True)
    guard = dict(threads=args.threads, time_guard_minutes=1440.0)

    # 1. The bigger policy from the study's own expert data and SFT arguments.
    policy = str(study / "sft/model")
    if preset is not None:
        sft_args = rundir.load_args(
            sft.Args, study / "sft/args.json", model=preset, run_dir=out / "sft", **guard
        )
        rundir.run_stage(out, "sft", sft_args, sft.main, "capacity")
        policy = str(out / "sft/model")

    # 2. More PRM data: the study's draw on the training tasks just before its PRM tasks.
    data = study_data = study / "rollouts/trajectories.jsonl"
    if args.extra_tasks:
        train = parse_tasks(reproduce.env_name(study_args), sc["train_split"])
        extra = train[-(n_prm + args.extra_tasks) : -n_prm]
        in_sft = len(set(extra) & set(train[: sc["sft_tasks"]]))
        if len(extra) < args.extra_tasks or (in_sft and not args.allow_sft_tasks):
            raise ValueError(
                f"--extra-tasks {args.extra_tasks}: {in_sft} of them are in the SFT data "
                f"({len(train) - sc['sft_tasks'] - n_prm} tasks outside it): ask for fewer, or pass "
                "--allow-sft-tasks"
            )
        print(f"[capacity] {len(extra)} more PRM tasks, {in_sft} of them in the SFT data")
        (out / "rollouts").mkdir(exist_ok=True)
        _copy(data, out / "rollouts/trajectories.jsonl")  # drawn by the study: collect skips them
        collect_args = rundir.load_args(
            collect.Args,
            study / "rollouts/args.json",
            tasks=",".join(map(str, extra + train[-n_prm:])),
            run_dir=out / "rollouts",
            threads=args.threads,
        )
        rundir.run_stage(out, "rollouts", collect_args, collect.main, "capacity")
        data = out / "rollouts/trajectories.jsonl"

    # 3. Each reward model on that data and the study's arguments, its held-out tasks held out.
    # (held out by construction: the new models' held-out tasks are the study's AgentPRM's)
    split = study / "prm-agentprm/split.json"
    n_train = len(json.loads(split.read_text())["train"])
    for rm in args.reward_models:
        saved = rundir.load_args(train_prm.Args, study / f"prm-{rm}/args.json")
        if args.steps is None and saved.max_steps is None:
            raise ValueError(f"{study / f'prm-{rm}'} ran without --max-steps: give --steps")
        steps = args.steps or round(saved.max_steps * (n_train + args.extra_tasks) / n_train)
        prm_args = dataclasses.replace(
            saved,
            model=policy,
            data=data,
            heldout_tasks=split,
            max_steps=steps,
            run_dir=out / f"prm-{rm}",
            **guard,
        )
        rundir.run_stage(out, f"prm-{rm}", prm_args, train_prm.main, "capacity")

    # 4. Search with the study's policy: its greedy run and pool copied, the study models' cached work too.
    run, theirs = out / "evaluate", study / "evaluate"
    run.mkdir(exist_ok=True)
    for f in ("greedy.jsonl", "pool.jsonl"):
        _copy(theirs / f, run / f)
    for rm in args.reward_models:
        for src in [
            theirs / f"scores_{rm}.json",
            theirs / f"reward_model_{rm}.json",
            *theirs.glob(f"beam_{rm}_*.jsonl"),
        ]:
            _copy(src, run / src.name.replace(f"_{rm}", f"_{rm}-study", 1))
    models = [f"{rm}={out / f'prm-{rm}'}" for rm in args.reward_models]
    models += [f"{rm}-study={study / f'prm-{rm}'}" for rm in args.reward_models]
    eval_args = rundir.load_args(
        evaluate.Args, theirs / "args.json", reward_models=tuple(models), run_dir=run, threads=args.threads
    )
    rundir.run_stage(out, "evaluate", eval_args, evaluate.main, "capacity")

    # 5. Both sets of models against the MC estimates, step by step, in one table (no test task read).
    agreement_args = mc_agreement.Args(
        reward_models=tuple(models),
        data=study_data,  # the MC seeds are the study's trajectories
        mc_labels=study / "mc/mc_labels.jsonl",
        split=split,
        env=reproduce.env_name(study_args),
        max_prompt_tokens=sc["max_prompt_tokens"],
        run_dir=out / "agreement",
        threads=args.threads,
    )
    rundir.run_stage(out, "agreement", agreement_args, mc_agreement.main, "capacity")
    print(f"[capacity] done: {run / 'results.json'}, {out / 'agreement/mc_agreement.json'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
