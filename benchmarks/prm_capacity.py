"""Does the backbone's size limit the reward models? A study's reward models again, on a bigger preset.

The reward models of an `agentprm reproduce` study start from its SFT policy, the tiny preset (the
paper's setting: the PRM is initialised from the policy). On BabyAI they rank single steps far below
what the Monte-Carlo yardstick allows, even on their own training tasks (benchmarks/README.md, "The
powered study"). This asks whether a bigger backbone changes that, with everything else equal:
  1. sft: a policy of --preset trained on the study's own expert data with the study's SFT arguments
     (same steps, batch, data, seed; only the preset differs);
  2. prm-<name>: each of --reward-models initialised from it and trained on the study's own PRM data
     with the study's arguments (labels, beta, steps, lr, held-out split: checked to be the same);
  3. evaluate: the study's policy, test tasks and seed, with the study's greedy run and Best-of-N
     pool copied (Best-of-N ranks the very same samples) and beam search played anew. The study's own
     tiny models enter beside them as <name>-tiny, from their cached scores and beams, so every
     comparison is paired over the same tasks (AgentPRM = this preset's agentprm);
  4. agreement: both backbones' models against the study's MC estimates, step by step, on the
     held-out and training PRM tasks (`agentprm mc-agreement`), in one table.
Every stage resumes (each is a recipe run dir; finished stages are skipped). Run the diagnostics on
the output like on a study:

    python benchmarks/prm_capacity.py runs/reproduce-babyai --preset small --threads 1
    python benchmarks/pool_ranking.py runs/reproduce-babyai/capacity-small/evaluate
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import tyro

from agentprm import rundir
from agentprm.models.presets import PRESETS
from agentprm.recipes import evaluate, mc_agreement, sft, train_prm


@dataclasses.dataclass
class Args:
    study: Path
    """an `agentprm reproduce` run dir with sft/, prm-<name>/, mc/ and evaluate/ finished"""
    preset: str = "small"
    """the bigger backbone (agentprm/models/presets.py)"""
    reward_models: tuple[str, ...] = ("agentprm", "orm")
    """which of the study's reward models to train again on the bigger backbone"""
    out: Path | None = None
    """output dir; default <study>/capacity-<preset>"""
    threads: int = 1
    """torch CPU threads"""


def _copy(src: Path, dst: Path) -> None:
    if src.exists() and not dst.exists():
        shutil.copyfile(src, dst)


def main(args: Args) -> None:
    if args.preset not in PRESETS:
        raise ValueError(f"--preset {args.preset!r}: choose one of {sorted(PRESETS)}")
    study = args.study
    for need in ("sft/args.json", "mc/mc_labels.jsonl", "evaluate/pool.jsonl", "evaluate/greedy.jsonl"):
        if not (study / need).exists():
            raise FileNotFoundError(f"{study / need} is missing: finish the study first")
    out = args.out or study / f"capacity-{args.preset}"
    out.mkdir(parents=True, exist_ok=True)
    guard = dict(threads=args.threads, time_guard_minutes=1440.0)

    # 1. The bigger policy from the study's own expert data and SFT arguments.
    sft_args = rundir.load_args(
        sft.Args, study / "sft/args.json", model=args.preset, run_dir=out / "sft", **guard
    )
    rundir.run_stage(out, "sft", sft_args, sft.main, "capacity")

    # 2. Each reward model, initialised from it, on the study's PRM data and arguments.
    for name in args.reward_models:
        saved = study / f"prm-{name}"
        prm_args = rundir.load_args(
            train_prm.Args,
            saved / "args.json",
            model=str(out / "sft/model"),
            run_dir=out / f"prm-{name}",
            **guard,
        )
        rundir.run_stage(out, f"prm-{name}", prm_args, train_prm.main, "capacity")
        split, theirs = (json.loads((d / "split.json").read_text()) for d in (out / f"prm-{name}", saved))
        if split != theirs:
            raise RuntimeError(
                f"prm-{name}: its held-out split differs from {saved}'s; the comparison is void"
            )
    if not (out / "mc").exists():  # mc_agreement.py reads <dir>/mc like a study's
        (out / "mc").symlink_to((study / "mc").resolve())

    # 3. Search with the study's policy: its greedy run and pool copied, the tiny models' cached work too.
    run, theirs = out / "evaluate", study / "evaluate"
    run.mkdir(exist_ok=True)
    for name in ("greedy.jsonl", "pool.jsonl"):
        _copy(theirs / name, run / name)
    for name in args.reward_models:
        for src in [theirs / f"scores_{name}.json", theirs / f"reward_model_{name}.json"]:
            _copy(src, run / src.name.replace(f"_{name}", f"_{name}-tiny", 1))
        for src in theirs.glob(f"beam_{name}_*.jsonl"):
            _copy(src, run / src.name.replace(f"_{name}", f"_{name}-tiny", 1))
    models = [f"{n}={out / f'prm-{n}'}" for n in args.reward_models]
    models += [f"{n}-tiny={study / f'prm-{n}'}" for n in args.reward_models]
    eval_args = rundir.load_args(
        evaluate.Args, theirs / "args.json", reward_models=tuple(models), run_dir=run, threads=args.threads
    )
    rundir.run_stage(out, "evaluate", eval_args, evaluate.main, "capacity")

    # 4. Both backbones against the MC estimates, step by step, in one table (no test task read).
    ref = json.loads((study / "prm-agentprm" / "args.json").read_text())
    agreement_args = mc_agreement.Args(
        reward_models=tuple(models),
        data=Path(ref["data"]),
        mc_labels=study / "mc" / "mc_labels.jsonl",
        split=study / "prm-agentprm" / "split.json",
        env=ref["env"],
        max_prompt_tokens=ref["max_prompt_tokens"],
        run_dir=out / "agreement",
        threads=args.threads,
    )
    rundir.run_stage(out, "agreement", agreement_args, mc_agreement.main, "capacity")
    print(f"[capacity] done: {run / 'results.json'}, {out / 'agreement' / 'mc_agreement.json'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
