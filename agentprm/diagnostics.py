"""Held-out diagnostics of a PRM: does M rank steps the way outcomes do?

- sibling_accuracy: pairs of steps with the SAME state s_t (identical history) and different actions
  whose trajectories ended with different outcomes; the share where M ranks the better branch
  higher (ties count 1/2). 0.5 is chance. This is what step-level search relies on.
- spearman: rank correlation of M_t with Monte Carlo estimates of Q on the same states.
- mc_halves / spearman_brown: how reliable the MC estimates themselves are (the ceiling of any
  model's agreement with them).
- step_pairs / sign_agreement / bootstrap_steps: promise and progress of a model against the MC
  estimates step by step, with intervals over trajectories (agentprm/recipes/mc_agreement.py).
- value_histogram: the paper's Figure 7, predicted values of steps of successful vs failed
  trajectories, saved as a PNG.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch


def _outcome_pairs(trajs, by: str = "reward"):
    """(i, j) for trajectories of the same task, both with steps, whose outcomes differ.

    by="reward": any reward difference (on BabyAI also two successes of different lengths);
    by="success": one succeeded and the other failed.
    """
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(trajs):
        if t.num_steps:
            groups[(t.env, t.task)].append(i)
    for members in groups.values():
        for i, j in itertools.combinations(members, 2):
            differ = (
                trajs[i].success != trajs[j].success
                if by == "success"
                else trajs[i].reward != trajs[j].reward
            )
            if differ:
                yield i, j


def _agreement(dv: float, dr: float) -> float:
    """1 if the values order a pair as its outcomes do, 0 if reversed, 1/2 for a tie in value."""
    return 0.5 if dv == 0 else float((dv > 0) == (dr > 0))


def sibling_pairs(trajs, by: str = "reward") -> list[tuple[int, int, int]]:
    """(i, j, t): trajectories i and j share steps < t exactly, differ at t, and differ in outcome."""
    pairs = []
    for i, j in _outcome_pairs(trajs, by):
        a, b = trajs[i], trajs[j]
        t = 0
        while t < min(a.num_steps, b.num_steps) and a.steps[t].response == b.steps[t].response:
            t += 1
        if t < min(a.num_steps, b.num_steps):
            pairs.append((i, j, t))
    return pairs


def sibling_accuracy(trajs, values: list[torch.Tensor], by: str = "reward") -> tuple[float, int]:
    """(share of sibling pairs ranked like their outcomes, number of pairs); nan when there are none.

    by="success" keeps only pairs where one branch succeeded and the other failed.
    """
    pairs = sibling_pairs(trajs, by)
    if not pairs:
        return float("nan"), 0
    score = sum(
        _agreement(float(values[i][t] - values[j][t]), trajs[i].reward - trajs[j].reward) for i, j, t in pairs
    )
    return score / len(pairs), len(pairs)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):  # average ranks of ties
        idx = x == v
        ranks[idx] = ranks[idx].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation. >>> spearman([1, 2, 3], [10, 20, 30])  # 1.0"""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def mc_halves(outcomes_per_step) -> tuple[list[float], list[float]]:
    """Soft MC estimates of Q from the first and from the second half of each step's rollouts.

    outcomes_per_step[t]: the N_mc outcomes after step t (mc-label's record); a step with a single
    outcome (the terminal step, whose outcome is known) gives it to both halves. Two independent
    estimates of the same Q: their agreement measures the MC noise, not any model.
    >>> mc_halves([[0.0, 1.0, 1.0, 1.0], [0.5]])
    ([0.5, 0.5], [1.0, 0.5])
    """
    if any(len(o) == 0 for o in outcomes_per_step):
        raise ValueError("mc_halves needs at least one rollout outcome for every step")
    first, second = [], []
    for o in outcomes_per_step:
        half = max(1, len(o) // 2)
        first.append(sum(map(float, o[:half])) / half)
        rest = o[half:] or o
        second.append(sum(map(float, rest)) / len(rest))
    return first, second


def spearman_brown(r_half: float) -> float:
    """Reliability of an estimate from all rollouts, given the correlation r_half of two estimates
    from half of them each: 2 r / (1 + r). Its square root approximates the highest correlation any
    model (even the true Q) can reach against the full estimate.
    >>> round(spearman_brown(0.5), 4)
    0.6667
    """
    return 2 * r_half / (1 + r_half) if r_half > -1 else float("nan")


def step_pairs(values, qmc, idx, progress: bool) -> tuple[list[float], list[float]]:
    """(model, MC) per step of the trajectories idx (repeats allowed, as a bootstrap draws them).

    values[i], qmc[i]: per-step sequences (M_0..M_T and the MC estimates of the same steps) of
    trajectory i. progress=False pairs the promises M_t with Qmc_t over all steps; progress=True
    pairs M_t - M_{t-1} with Qmc_t - Qmc_{t-1} for t >= 1 (t = 0 has no defined predecessor).
    >>> step_pairs([[0.1, 0.4]], [[0.0, 1.0]], [0], progress=True)
    ([0.30000000000000004], [1.0])
    """
    a, b = [], []
    for i in idx:
        v, q = values[i], qmc[i]
        for k in range(1 if progress else 0, len(q)):
            a.append(float(v[k] - v[k - 1]) if progress else float(v[k]))
            b.append(float(q[k] - q[k - 1]) if progress else float(q[k]))
    return a, b


def sign_agreement(a, b) -> float:
    """Share of pairs where a has the sign of b, over pairs with b != 0 (a = 0 counts as negative);
    nan when every b is 0.
    >>> sign_agreement([0.2, -0.1, 0.3], [1.0, 0.5, 0.0])
    0.5
    """
    kept = [(x, y) for x, y in zip(a, b, strict=True) if y != 0]
    return sum((x > 0) == (y > 0) for x, y in kept) / len(kept) if kept else float("nan")


def bootstrap_steps(stat, values, qmc, progress: bool, n_boot: int = 1000, seed: int = 0):
    """(point, low, high): stat(*step_pairs(...)) on all trajectories and its seeded 95% bootstrap
    interval over TRAJECTORIES (a trajectory's steps are correlated, so they are drawn together).
    Draws where stat is nan (too few pairs) are left out; all nan gives (nan, nan, nan).
    >>> bootstrap_steps(spearman, [[0.0, 0.5, 0.9]] * 3, [[0.1, 0.6, 1.0]] * 3, False, n_boot=20)
    (1.0, 1.0, 1.0)
    """
    n = len(qmc)
    point = stat(*step_pairs(values, qmc, range(n), progress)) if n else float("nan")
    rng = np.random.default_rng(seed)
    boots = sorted(
        x
        for _ in range(n_boot)
        if n and not np.isnan(x := stat(*step_pairs(values, qmc, rng.integers(0, n, n), progress)))
    )
    if not boots:
        return point, float("nan"), float("nan")
    return point, boots[int(0.025 * len(boots))], boots[max(0, int(0.975 * len(boots)) - 1)]


def final_step_accuracy(trajs, values: list[torch.Tensor], by: str = "reward") -> float:
    """Pairwise: for trajectories of the same task with different outcomes, is M_T higher for the
    better one? (What Best-of-N ranking by the final step relies on.)"""
    scores = [
        _agreement(float(values[i][-1] - values[j][-1]), trajs[i].reward - trajs[j].reward)
        for i, j in _outcome_pairs(trajs, by)
    ]
    return sum(scores) / len(scores) if scores else float("nan")


def value_histogram(trajs, values: list[torch.Tensor], path: Path, title: str) -> None:
    """Figure 7: distribution of M over the steps of successful vs failed trajectories."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = torch.cat(
        [v for t, v in zip(trajs, values, strict=True) if t.success and v.numel()] or [torch.zeros(0)]
    )
    bad = torch.cat(
        [v for t, v in zip(trajs, values, strict=True) if not t.success and v.numel()] or [torch.zeros(0)]
    )
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.linspace(
        min(-0.2, float(torch.cat([good, bad]).min()) if good.numel() + bad.numel() else 0),
        max(1.2, float(torch.cat([good, bad]).max()) if good.numel() + bad.numel() else 1),
        40,
    )
    for values_, label in ((good, "successful"), (bad, "failed")):
        # density of an empty sample is 0/0: plot the empty class without normalising
        ax.hist(
            values_.numpy(),
            bins=bins,
            alpha=0.6,
            density=values_.numel() > 0,
            label=f"{label} ({values_.numel()} steps)",
        )
    ax.set_xlabel("predicted value M(s_t, a_t)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
