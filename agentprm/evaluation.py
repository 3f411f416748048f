"""The paper's evaluation maths, as pure functions: Best-of-N curves from one pool, oracle pass@N,
confidence intervals and the compute-efficiency ratio.

Best-of-N from a pool (search-and-learn's practice of drawing every N from one pool of samples per
task): instead of one arbitrary subset per N, `best_of_n` returns the EXACT expectation over all
size-N subsets of the pool of the outcome of the subset's top-scoring trajectory (ties in score
split evenly). The oracle (a perfect verifier) is the same function with score = outcome, which for
0/1 outcomes is the unbiased pass@N estimator 1 - C(P-c, N) / C(P, N).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def aggregate(step_scores: Sequence[float], how: str = "last") -> float:
    """One trajectory score from its per-step PRM values: the final step (the paper), min or mean.

    >>> aggregate([0.2, 0.9, 0.5]), aggregate([0.2, 0.9, 0.5], "min"), aggregate([0.2, 0.9, 0.4], "mean")
    (0.5, 0.2, 0.5)
    """
    if not len(step_scores):
        return -math.inf  # a trajectory with no step cannot be preferred
    if how == "last":
        return float(step_scores[-1])
    if how == "min":
        return float(min(step_scores))
    if how == "mean":
        return float(sum(step_scores) / len(step_scores))
    raise ValueError(f"unknown aggregation {how!r}: choose last, min or mean")


def best_of_n(scores: Sequence[float], outcomes: Sequence[float], n: int) -> float:
    """E[outcome of the top-scored item] over all size-n subsets of a pool of P = len(scores).

    Sorted by score (descending) into groups of equal score, group g holds the subset's best item
    with probability [C(P - before_g, n) - C(P - before_g - |g|, n)] / C(P, n), and then (by
    symmetry) any of its members equally often, so it contributes its mean outcome.
    >>> best_of_n([0.9, 0.1, 0.5], [0.0, 1.0, 1.0], 1)   # mean of the pool
    0.6666666666666666
    >>> best_of_n([0.9, 0.1, 0.5], [0.0, 1.0, 1.0], 3)   # always picks the 0.9 one
    0.0
    >>> best_of_n([0.0, 1.0, 1.0], [0.0, 1.0, 1.0], 2)   # oracle pass@2 = 1 - C(1,2)/C(3,2)
    1.0
    """
    p = len(scores)
    if p != len(outcomes):
        raise ValueError(f"{p} scores but {len(outcomes)} outcomes")
    if not 1 <= n <= p:
        raise ValueError(f"n = {n} must be between 1 and the pool size {p}")
    order = sorted(range(p), key=lambda i: -scores[i])
    total, before, i = 0.0, 0, 0
    denominator = math.comb(p, n)
    while i < p:
        j = i
        while j < p and scores[order[j]] == scores[order[i]]:
            j += 1
        size = j - i
        prob = (math.comb(p - before, n) - math.comb(p - before - size, n)) / denominator
        total += prob * sum(outcomes[order[k]] for k in range(i, j)) / size
        before += size
        i = j
    return total


def oracle_at_n(outcomes: Sequence[float], n: int) -> float:
    """A perfect verifier's Best-of-N (pass@N for 0/1 outcomes). >>> oracle_at_n([0, 0, 1, 1], 2)  # 1 - 1/6
    0.8333333333333334
    """
    return best_of_n(outcomes, outcomes, n)


def mean_ci(values: Sequence[float], z: float = 1.96) -> tuple[float, float, float]:
    """(mean, low, high): normal-approximation 95% interval of the mean over tasks.

    >>> mean_ci([0.5, 0.5])
    (0.5, 0.5, 0.5)
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return mean, mean - half, mean + half


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """(rate, low, high): Wilson score 95% interval of a success rate (good near 0 and 1).

    >>> [round(x, 3) for x in wilson(8, 10)]
    [0.8, 0.49, 0.943]
    """
    if n == 0:
        return math.nan, math.nan, math.nan
    rate = successes / n
    denom = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denom
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denom
    return rate, max(0.0, centre - half), min(1.0, centre + half)


def efficiency_ratio(ns: Sequence[int], baseline: Sequence[float], method: Sequence[float]) -> float | None:
    """The paper's compute-efficiency ratio: N_b / N_m, where the baseline reaches its best Best-of-N
    score first at N_b and the method first reaches that score at N_m. None if it never does.

    >>> efficiency_ratio([1, 2, 4, 8], [0.3, 0.4, 0.4, 0.35], [0.3, 0.45, 0.5, 0.55])
    1.0
    >>> efficiency_ratio([1, 2, 4, 8], [0.3, 0.35, 0.38, 0.4], [0.41, 0.45, 0.5, 0.55])
    8.0
    """
    if not (len(ns) == len(baseline) == len(method)):
        raise ValueError("ns, baseline and method must have the same length")
    best = max(baseline)
    n_b = ns[list(baseline).index(best)]
    for n, score in zip(ns, method, strict=True):
        if score >= best - 1e-12:
            return n_b / n
    return None


def agentprm_name(reward_models: dict) -> str | None:
    """The reward model that is AgentPRM: trained on td labels with beta > 0 (the others are
    baselines). reward_models: {name: {"labels": ..., "beta": ...}} as in results.json.

    >>> agentprm_name({"orm": {"labels": "orm", "beta": 0.0}, "a": {"labels": "td", "beta": 1.0}})
    'a'
    """
    return next(
        (n for n, i in reward_models.items() if i.get("labels") == "td" and (i.get("beta") or 0) > 0), None
    )


def bootstrap_ci(
    values: Sequence[float], seed: int = 0, n_boot: int = 2000, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean over tasks.

    Seeded (numpy's PCG64, the same draws on every machine) and always inside [min, max] of the
    values, so rates and rewards in [0, 1] get intervals in [0, 1] (a normal interval of 0.03 over 33
    tasks reads [-0.029, 0.090]).
    >>> bootstrap_ci([0.5, 0.5])
    (0.5, 0.5, 0.5)
    >>> m, lo, hi = bootstrap_ci([0.0] * 32 + [1.0]); lo >= 0.0 and hi <= 1.0 and lo <= m <= hi
    True
    """
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean, mean
    rng = np.random.Generator(np.random.PCG64(seed))
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return mean, float(min(lo, mean)), float(max(hi, mean))


def paired_difference(
    method: Sequence[float], baseline: Sequence[float], seed: int = 0, n_boot: int = 2000
) -> dict:
    """Method minus baseline on the SAME tasks: mean difference, a paired bootstrap 95% interval over
    tasks, and a verdict: "ahead" (interval above 0), "behind" (below 0) or "level" (contains 0).

    >>> paired_difference([1, 1, 1, 1], [0, 0, 0, 0])["verdict"]
    'ahead'
    >>> paired_difference([1, 0, 1, 0], [0, 1, 0, 1])["verdict"]
    'level'
    """
    if len(method) != len(baseline):
        raise ValueError(f"paired comparison needs equal lengths, got {len(method)} and {len(baseline)}")
    diff, lo, hi = bootstrap_ci([a - b for a, b in zip(method, baseline, strict=True)], seed, n_boot)
    verdict = "ahead" if lo > 0 else "behind" if hi < 0 else "level"
    return {"diff": diff, "ci": [lo, hi], "verdict": verdict, "tasks": len(method)}
