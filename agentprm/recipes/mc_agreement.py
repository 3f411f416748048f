"""`agentprm mc-agreement`: do the reward models rank single steps like Monte-Carlo estimates do?

For each reward model, on the MC seed trajectories (`agentprm mc-label`: N_mc rollouts after each
step of one trajectory per task) of the chosen PRM tasks, step by step:
  - promise: Spearman of M(s_t, a_t) with the soft MC estimate of Q (the mean of the N_mc outcomes);
  - progress: Spearman of M_t - M_{t-1} with the MC progress Qmc_t - Qmc_{t-1} (t >= 1);
  - sign: how often the progress has the MC progress's sign (MC progress 0 left out),
each with a 95% bootstrap interval over trajectories (a trajectory's steps are correlated).
The first row is the MC estimate against itself (the first half of each step's rollouts against the
second half); the square root of its Spearman-Brown reliability is about the most any model, even
the true Q, can reach against the full estimate. Sibling accuracy (train-prm's diagnostics) compares
branches by single final outcomes, which later random steps decide as much as the branch; this
uses the MC estimates instead.

--split names a train-prm split.json: `heldout` tasks no model trained on (the diagnosis), `train`
the tasks they were fitted on (in-sample: does a model fit steps at all?). No test task is read.
`agentprm reproduce` runs this as its `agreement` stage; report.md shows the tables.

output: <run-dir>/args.json, mc_agreement.json ({split: {seeds, steps, rows, reliability}}, each
statistic [point, low, high]).

    agentprm mc-agreement --reward-models agentprm=runs/reproduce-babyai/prm-agentprm \\
        orm=runs/reproduce-babyai/prm-orm --data runs/reproduce-babyai/rollouts/trajectories.jsonl \\
        --mc-labels runs/reproduce-babyai/mc/mc_labels.jsonl \\
        --split runs/reproduce-babyai/prm-agentprm/split.json --env babyai-agentgym
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

import agentprm.envs as E
from agentprm import jsonl, rundir
from agentprm import validate as V
from agentprm.diagnostics import (
    bootstrap_steps,
    mc_halves,
    sign_agreement,
    spearman,
    spearman_brown,
    step_pairs,
)
from agentprm.prm.batch import encode, score_encoded
from agentprm.prm.targets import load_mc
from agentprm.prm.value import load_value_model
from agentprm.report import agreement_section
from agentprm.types import read_trajectories

# (key, statistic, on progress?) of each column
STATS = (("promise", spearman, False), ("progress", spearman, True), ("sign", sign_agreement, True))


@dataclasses.dataclass
class Args:
    reward_models: tuple[str, ...] = ()
    """NAME=DIR items, DIR a train-prm run dir (its model/ is scored)"""
    data: Path = Path("runs/collect/trajectories.jsonl")
    """the trajectories the MC seeds were drawn from (mc-label's --data)"""
    mc_labels: Path = Path("runs/mc/mc_labels.jsonl")
    """mc-label's output"""
    split: Path = Path("runs/prm/split.json")
    """a train-prm split.json: which PRM tasks are held out and which were trained on"""
    splits: tuple[str, ...] = ("heldout", "train")
    """which of its task lists to score (heldout: no model saw them; train: in-sample)"""
    env: str = "babyai"
    """environment of the trajectories"""
    max_prompt_tokens: int = 512
    """the renderer's budget (the reward models')"""
    weights: str = "kept"
    """kept: each model's model/ folder; last: the final training step's weights (its checkpoint.pt)"""
    run_dir: Path = Path("runs/mc-agreement")
    """output folder"""
    threads: int | None = None
    """torch CPU threads"""
    overwrite: bool = False
    """replace a previous result in --run-dir"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        V.one_of(self, "weights", ("kept", "last"))
        V.at_least(self, 1, "max_prompt_tokens", "threads")
        if not self.reward_models:
            raise ValueError("--reward-models: give at least one NAME=DIR (a train-prm run dir)")
        for spec in self.reward_models:
            if "=" not in spec:
                raise ValueError(f"--reward-models {spec!r}: write NAME=DIR, e.g. agentprm=runs/prm-td")
        unknown = sorted(set(self.splits) - {"heldout", "train"})
        if unknown or not self.splits:
            raise ValueError(f"--splits {list(self.splits)}: choose from heldout, train")


def _row(name: str, values, qmc) -> dict:
    """{name, promise, progress, sign}, each (point, low, high)."""
    return {
        "name": name,
        **{key: bootstrap_steps(stat, values, qmc, progress) for key, stat, progress in STATS},
    }


def agreement(args: Args, models: dict, seeds, soft: dict, raw: dict) -> dict:
    """{seeds, steps, rows: [MC half row, one per model], reliability: {promise, progress}} on the
    MC seed trajectories `seeds`; models: name -> (value model, tokenizer); soft / raw: the soft MC
    estimates and the rollout outcomes per (task, sample), from the mc-label file."""
    qmc = [soft[(t.task, t.sample)] for t in seeds]
    halves = [mc_halves(raw[(t.task, t.sample)]) for t in seeds]
    first, second = [np.array(h[0]) for h in halves], [np.array(h[1]) for h in halves]
    rows = [_row("MC, first half vs second half", first, second)]
    for name, (model, tok) in models.items():
        enc = encode(args.env, seeds, tok, args.max_prompt_tokens)
        rows.append(_row(name, score_encoded(model, enc, len(seeds), tok.pad_token_id), qmc))
    reliability = {
        key: spearman_brown(spearman(*step_pairs(first, second, range(len(seeds)), progress)))
        for key, _, progress in STATS[:2]
    }
    return {
        "seeds": len(seeds),
        "steps": sum(t.num_steps for t in seeds),
        "rows": rows,
        "reliability": reliability,
    }


def main(args: Args) -> dict:
    args = dataclasses.replace(args, env=E.short_name(args.env))
    for path, what in ((args.data, "--data"), (args.mc_labels, "--mc-labels"), (args.split, "--split")):
        if not path.exists():
            raise SystemExit(f"{what} {path}: no such file")
    if args.threads:
        torch.set_num_threads(args.threads)
    run = rundir.prepare(args.run_dir, args)
    split = jsonl.read_object(args.split, tuple(args.splits))
    models = {}
    for spec in args.reward_models:
        name, _, path = spec.partition("=")
        model, tok = load_value_model(Path(path) / "model", device="cpu")
        if args.weights == "last":
            model.load_state_dict(torch.load(Path(path) / "checkpoint.pt", weights_only=False)["model"])
        models[name] = (model, tok)
    # the MC labels and the trajectories are read once for every split
    soft = load_mc(args.mc_labels, hard=False)
    raw = {(r["task"], r["sample"]): r["outcomes"] for r in jsonl.read(args.mc_labels)}
    labelled = [t for t in read_trajectories(args.data) if (t.task, t.sample) in soft and t.num_steps > 0]
    out = {
        s: agreement(args, models, [t for t in labelled if t.task in set(split[s])], soft, raw)
        for s in args.splits
    }
    rundir.atomic_write_text(run / "mc_agreement.json", json.dumps(rundir.jsonable(out), indent=1) + "\n")
    print("\n".join(agreement_section(out)))
    return out
