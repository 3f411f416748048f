"""Step-level value accuracy of every reward model of an `agentprm reproduce` study against the
study's Monte-Carlo estimates: `agentprm mc-agreement` (its docstring says what each column means)
pointed at a study's own files. Studies run it as their `agreement` stage; this re-runs it on a
finished study, e.g. one that predates the stage, or with each model's final-step weights.

    python benchmarks/mc_agreement.py runs/reproduce-babyai [--threads 1] [--split train] [--weights last]

--split heldout (default) scores the held-out PRM tasks (prm-agentprm/split.json: no model trained
on them; no test task involved), --split train the PRM tasks the models were fitted on (does a model
fit steps at all?). --weights last: each model's final training step (checkpoint.pt) instead of the
weights it kept. Output: runs/mc-agreement-<study name>[-train][-last]/mc_agreement.json and the
tables on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentprm.recipes import mc_agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--split", choices=("heldout", "train"), default="heldout")
    parser.add_argument("--weights", choices=("kept", "last"), default="kept")
    args = parser.parse_args()
    ref = json.loads((args.study / "prm-agentprm" / "args.json").read_text())
    names = sorted(p.parent.name.removeprefix("prm-") for p in args.study.glob("prm-*/model"))
    suffix = ("-train" if args.split == "train" else "") + ("-last" if args.weights == "last" else "")
    mc_agreement.main(
        mc_agreement.Args(
            reward_models=tuple(f"{n}={args.study / f'prm-{n}'}" for n in names),
            data=Path(ref["data"]),
            mc_labels=args.study / "mc" / "mc_labels.jsonl",
            split=args.study / "prm-agentprm" / "split.json",
            splits=(args.split,),
            env=ref["env"],
            max_prompt_tokens=ref["max_prompt_tokens"],
            weights=args.weights,
            run_dir=Path(f"runs/mc-agreement-{args.study.name}{suffix}"),
            threads=args.threads,
            overwrite=True,
        )
    )


if __name__ == "__main__":
    main()
