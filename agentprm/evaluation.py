"""The paper's evaluation maths, as pure functions: Best-of-N curves from one pool, oracle pass@N,
confidence intervals and the compute-efficiency ratio.

Best-of-N from a pool (search-and-learn's practice of drawing every N from one pool of samples per
task): instead of one arbitrary subset per N, `best_of_n` returns the EXACT expectation over all
size-N subsets of the pool of the outcome of the subset's top-scoring trajectory (ties in score
split evenly). The oracle (a perfect verifier) is the same function with score = outcome, which for
0/1 outcomes is the unbiased pass@N estimator 1 - C(P-c, N) / C(P, N).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentprm import jsonl
from agentprm.rundir import atomic_write_text


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


def ranking_auc(scores: Sequence[float], successes: Sequence[bool]) -> float | None:
    """How often a successful trajectory of one task outscores a failed one of the same task (ties
    count half): the AUC that Best-of-N's choice rests on. None when the task's samples are all
    successes or all failures (nothing to rank).

    >>> ranking_auc([0.9, 0.2, 0.5, 0.5], [True, False, True, False])
    0.875
    >>> ranking_auc([0.1, 0.2], [True, True]) is None
    True
    """
    if len(scores) != len(successes):
        raise ValueError("scores and successes must have the same length")
    pos = [s for s, ok in zip(scores, successes, strict=True) if ok]
    neg = [s for s, ok in zip(scores, successes, strict=True) if not ok]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


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
) -> Paired:
    """Method minus baseline on the SAME tasks: mean difference, a paired bootstrap 95% interval over
    tasks, and a verdict: "ahead" (interval above 0), "behind" (below 0) or "level" (contains 0).

    >>> paired_difference([1, 1, 1, 1], [0, 0, 0, 0]).verdict
    'ahead'
    >>> paired_difference([1, 0, 1, 0], [0, 1, 0, 1]).verdict
    'level'
    """
    if len(method) != len(baseline):
        raise ValueError(f"paired comparison needs equal lengths, got {len(method)} and {len(baseline)}")
    diff, lo, hi = bootstrap_ci([a - b for a, b in zip(method, baseline, strict=True)], seed, n_boot)
    verdict = "ahead" if lo > 0 else "behind" if hi < 0 else "level"
    return Paired(diff, (lo, hi), verdict, len(method))


# ---- typed results: what `agentprm evaluate` writes to results.json and `agentprm report` reads ----


@dataclass
class Rate:
    """Success rate and mean reward over tasks, each with its 95% interval: one row of a table or one
    point of a Best-of-N curve. n: tasks (None for curve points); ledger: compute spent (beam rows).

    >>> r = Rate(0.5, (0.4, 0.6), 0.25, (0.2, 0.3), n=10)
    >>> Rate.from_json(r.to_json()) == r, list(r.to_json())
    (True, ['n', 'success', 'success_ci', 'reward', 'reward_ci'])
    """

    success: float
    success_ci: tuple[float, float]
    reward: float
    reward_ci: tuple[float, float]
    n: int | None = None
    ledger: dict | None = None

    def to_json(self) -> dict:
        out: dict = {} if self.n is None else {"n": self.n}
        out |= {
            "success": self.success,
            "success_ci": list(self.success_ci),
            "reward": self.reward,
            "reward_ci": list(self.reward_ci),
        }
        return out if self.ledger is None else out | {"ledger": self.ledger}

    @classmethod
    def from_json(cls, d: dict) -> Rate:
        return cls(
            d["success"],
            tuple(d["success_ci"]),
            d["reward"],
            tuple(d["reward_ci"]),
            d.get("n"),
            d.get("ledger"),
        )


Curve = dict[int, Rate]  # N -> Best-of-N (or oracle pass@N) over tasks


@dataclass
class RewardModelInfo:
    """What a compared reward model was trained with (from its train-prm args and summary; None where
    the folder did not say)."""

    path: str
    labels: str | None = None
    beta: float | None = None
    td_form: str | None = None
    steps: int | None = None
    train_tokens: int | None = None


@dataclass
class Paired:
    """Method minus baseline over the same tasks: mean difference, paired bootstrap 95% interval,
    verdict ("ahead" / "behind" when the interval excludes 0, else "level") and the number of tasks."""

    diff: float
    ci: tuple[float, float]
    verdict: str
    tasks: int


@dataclass
class Comparison:
    """AgentPRM (method; None when no reward model is td with beta > 0) against each baseline:
    baselines[baseline][setting][key], setting e.g. "beam@2x2" or "bon@32", key "success" / "reward"."""

    method: str | None
    baselines: dict[str, dict[str, dict[str, Paired]]]


REQUIRED = ("env", "tasks", "pool", "policy", "greedy", "sample", "oracle", "bon", "beam")


@dataclass
class Results:
    """Everything `agentprm evaluate` measured on one test split (results.json, in this field order).

    bon[reward model][aggregation "last" / "min" / "mean"] is a Best-of-N curve from the shared pool;
    beam[reward model]["NxM"] a beam-search row; oracle the perfect verifier's curve; sample its N = 1
    (the pool's mean); ledgers the compute per stage (without wall-clock seconds and generate calls:
    results.json holds only what the same command and seed reproduce, resumed or not).
    """

    env: str
    tasks: int
    pool: int
    policy: str
    greedy: Rate
    oracle: Curve
    sample: Rate
    reward_models: dict[str, RewardModelInfo] = field(default_factory=dict)
    bon: dict[str, dict[str, Curve]] = field(default_factory=dict)
    beam: dict[str, dict[str, Rate]] = field(default_factory=dict)
    ledgers: dict[str, dict] = field(default_factory=dict)
    comparison: Comparison = field(default_factory=lambda: Comparison(None, {}))

    @property
    def ns(self) -> list[int]:
        """The N of every Best-of-N point, ascending (1, 2, 4, ... up to the pool)."""
        return sorted(self.oracle)

    @property
    def top(self) -> int:
        """The largest N: the pool size rounded down to a power of 2."""
        return self.ns[-1]

    def method_and_baselines(self) -> tuple[str | None, list[str]]:
        """AgentPRM = the reward model trained on td labels with beta > 0; the others are baselines."""
        method = agentprm_name({n: asdict(i) for n, i in self.reward_models.items()})
        return method, [n for n in self.reward_models if n != method]

    def to_json(self) -> dict:
        curve = lambda c: {n: r.to_json() for n, r in c.items()}  # noqa: E731
        return {
            "env": self.env,
            "tasks": self.tasks,
            "pool": self.pool,
            "policy": self.policy,
            "greedy": self.greedy.to_json(),
            "oracle": curve(self.oracle),
            "sample": self.sample.to_json(),
            "reward_models": {n: asdict(i) for n, i in self.reward_models.items()},
            "bon": {n: {how: curve(c) for how, c in by.items()} for n, by in self.bon.items()},
            "beam": {n: {b: r.to_json() for b, r in by.items()} for n, by in self.beam.items()},
            "ledgers": self.ledgers,
            "comparison": {
                "method": self.comparison.method,
                "baselines": {
                    b: {s: {k: asdict(p) for k, p in keys.items()} for s, keys in settings.items()}
                    for b, settings in self.comparison.baselines.items()
                },
            },
        }

    def save(self, path: Path) -> None:
        """Write results.json atomically (a kill leaves the old file or the new one)."""
        atomic_write_text(path, json.dumps(self.to_json(), indent=1))

    @classmethod
    def from_json(cls, d: dict) -> Results:
        curve = lambda c: {int(n): Rate.from_json(r) for n, r in c.items()}  # noqa: E731
        comp = d.get("comparison") or {}
        return cls(
            env=d["env"],
            tasks=d["tasks"],
            pool=d["pool"],
            policy=d["policy"],
            greedy=Rate.from_json(d["greedy"]),
            oracle=curve(d["oracle"]),
            sample=Rate.from_json(d["sample"]),
            reward_models={n: RewardModelInfo(**i) for n, i in (d.get("reward_models") or {}).items()},
            bon={n: {how: curve(c) for how, c in by.items()} for n, by in d["bon"].items()},
            beam={n: {b: Rate.from_json(r) for b, r in by.items()} for n, by in d["beam"].items()},
            ledgers=d.get("ledgers") or {},
            comparison=Comparison(
                comp.get("method"),
                {
                    b: {
                        s: {
                            k: Paired(p["diff"], tuple(p["ci"]), p["verdict"], p["tasks"])
                            for k, p in keys.items()
                        }
                        for s, keys in settings.items()
                    }
                    for b, settings in (comp.get("baselines") or {}).items()
                },
            ),
        )

    @classmethod
    def load(cls, path: Path) -> Results:
        """Read results.json; ValueError naming the file when it is not JSON or lacks a field."""
        data = jsonl.read_object(path, REQUIRED)
        return cls.from_json(data)
