"""Step-level value accuracy of every reward model of an `agentprm reproduce` study, against the
study's Monte-Carlo estimates (N_mc rollouts after each step of one seed trajectory per task) on the
HELD-OUT PRM tasks (prm-agentprm/split.json: no model trained on them; no test task involved), or
with --split train on the PRM tasks the models were fitted on (does a model fit steps at all?).

Printed per reward model, over the chosen seed trajectories' steps:
  - Spearman of the promise M(s_t, a_t) with the soft MC estimate of Q(s_t, a_t) (mean outcome of
    the N_mc rollouts), over all steps;
  - Spearman of the progress M_t - M_{t-1} with the MC progress Qmc_t - Qmc_{t-1} (t >= 1), and
    with M_{-1} / Qmc_{-1} undefined for t = 0 those steps are left out;
  - the share of steps t >= 1 where the progress has the sign of the MC progress (MC progress 0
    left out): does the model see which steps moved the task forward?
Each with a 95% interval from a seeded bootstrap over trajectories (their steps are correlated).
The first row is the MC estimate against itself: the mean of the first half of each step's rollouts
against the mean of the second half. Its Spearman-Brown reliability r_full = 2r / (1 + r) says how
noisy the full estimate is, and sqrt(r_full) roughly bounds what any model, even the true Q, can
reach against it (printed below the table), so a low model row is read against that ceiling.
Sibling accuracy (prm-*/diagnostics.json) compares one-step branches by their final outcomes, which
later random steps decide as much as the branch itself; these use the MC estimates instead.

    python benchmarks/mc_agreement.py runs/reproduce-babyai [--threads 1] [--split train] [--weights last]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from agentprm import jsonl
from agentprm.diagnostics import mc_halves, spearman, spearman_brown
from agentprm.prm.batch import encode, score_encoded
from agentprm.prm.targets import load_mc
from agentprm.prm.value import load_value_model
from agentprm.types import read_trajectories


def _pairs(values, qmc, idx, progress: bool) -> tuple[list[float], list[float]]:
    """(model, MC) per step of the trajectories idx (with repeats): promise, or progress for t >= 1."""
    a, b = [], []
    for i in idx:
        v, q = values[i], qmc[i]
        for k in range(1 if progress else 0, len(q)):
            a.append(float(v[k] - v[k - 1]) if progress else float(v[k]))
            b.append(float(q[k] - q[k - 1]) if progress else float(q[k]))
    return a, b


def _sign(a: list[float], b: list[float]) -> float:
    kept = [(x, y) for x, y in zip(a, b, strict=True) if y != 0]
    return sum((x > 0) == (y > 0) for x, y in kept) / max(1, len(kept))


def _with_ci(stat, values, qmc, progress: bool, n_boot: int = 1000) -> str:
    """The statistic on all trajectories and its bootstrap interval over trajectories."""
    n = len(qmc)
    point = stat(*_pairs(values, qmc, range(n), progress))
    rng = np.random.default_rng(0)
    boots = sorted(stat(*_pairs(values, qmc, rng.integers(0, n, n), progress)) for _ in range(n_boot))
    return f"{point:.3f} [{boots[int(0.025 * n_boot)]:.3f}, {boots[int(0.975 * n_boot) - 1]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--split",
        choices=("heldout", "train"),
        default="heldout",
        help="train: the PRM tasks the models were fitted on (in-sample fit, to tell under- from over-fitting)",
    )
    parser.add_argument(
        "--weights",
        choices=("kept", "last"),
        default="kept",
        help="last: each model's final training step (checkpoint.pt) instead of the weights it kept",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ref = json.loads((args.study / "prm-agentprm" / "args.json").read_text())
    split_tasks = set(
        jsonl.read_object(args.study / "prm-agentprm" / "split.json", (args.split,))[args.split]
    )
    soft = load_mc(args.study / "mc" / "mc_labels.jsonl", hard=False)
    seeds = [
        t
        for t in read_trajectories(ref["data"])
        if t.task in split_tasks and (t.task, t.sample) in soft and t.num_steps > 0
    ]
    qmc = [soft[(t.task, t.sample)] for t in seeds]
    raw = {(r["task"], r["sample"]): r["outcomes"] for r in jsonl.read(args.study / "mc" / "mc_labels.jsonl")}
    halves = [mc_halves(raw[(t.task, t.sample)]) for t in seeds]
    first, second = [np.array(h[0]) for h in halves], [np.array(h[1]) for h in halves]
    print(
        f"{len(seeds)} {args.split} seed trajectories, {sum(t.num_steps for t in seeds)} steps ({ref['env']})"
    )
    print(
        "| reward model | Spearman M vs MC (steps) | Spearman progress vs MC progress | progress sign agrees |"
    )
    print("|---|---|---|---|")
    print(
        f"| MC, first half vs second half of the rollouts | {_with_ci(spearman, first, second, False)} | "
        f"{_with_ci(spearman, first, second, True)} | {_with_ci(_sign, first, second, True)} |"
    )
    for prm in sorted(args.study.glob("prm-*/model")):
        model, tok = load_value_model(prm, device="cpu")
        if args.weights == "last":
            model.load_state_dict(torch.load(prm.parent / "checkpoint.pt", weights_only=False)["model"])
        enc = encode(ref["env"], seeds, tok, ref["max_prompt_tokens"])
        values = score_encoded(model, enc, len(seeds), tok.pad_token_id)
        print(
            f"| {prm.parent.name.removeprefix('prm-')} | {_with_ci(spearman, values, qmc, False)} | "
            f"{_with_ci(spearman, values, qmc, True)} | {_with_ci(_sign, values, qmc, True)} |"
        )
    for name, progress in (("promise", False), ("progress", True)):
        r_full = spearman_brown(spearman(*_pairs(first, second, range(len(seeds)), progress)))
        print(
            f"MC {name}: split-half reliability of the full estimate {r_full:.3f}, "
            f"so a model's Spearman against it is at most about {np.sqrt(max(r_full, 0.0)):.3f}"
        )


if __name__ == "__main__":
    main()
