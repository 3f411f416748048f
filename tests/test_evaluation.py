"""Evaluation maths: Best-of-N from one pool equals brute force over subsets; oracle = pass@k; CIs."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from agentprm.evaluation import aggregate, best_of_n, efficiency_ratio, mean_ci, oracle_at_n, wilson


def brute_force(scores, outcomes, n):
    """Mean over all size-n subsets of the mean outcome among the subset's top-scored items."""
    total, count = 0.0, 0
    for subset in itertools.combinations(range(len(scores)), n):
        top = max(scores[i] for i in subset)
        winners = [outcomes[i] for i in subset if scores[i] == top]
        total += sum(winners) / len(winners)
        count += 1
    return total / count


@pytest.mark.parametrize("seed", range(5))
def test_best_of_n_equals_brute_force_with_ties(seed):
    rng = random.Random(seed)
    p = 9
    scores = [rng.choice([0.1, 0.5, 0.5, 0.9, rng.random()]) for _ in range(p)]  # ties on purpose
    outcomes = [rng.choice([0.0, 1.0, 0.4375]) for _ in range(p)]  # rewards strictly inside (0, 1) too
    for n in range(1, p + 1):
        assert best_of_n(scores, outcomes, n) == pytest.approx(brute_force(scores, outcomes, n))


def test_oracle_is_unbiased_pass_at_k():
    outcomes = [1, 0, 0, 1, 0, 0, 0, 0]
    c, p = sum(outcomes), len(outcomes)
    for k in range(1, p + 1):
        assert oracle_at_n(outcomes, k) == pytest.approx(1 - math.comb(p - c, k) / math.comb(p, k))


def test_best_of_n_bounds_and_errors():
    scores, outcomes = [0.3, 0.2, 0.9, 0.1], [1.0, 0.0, 0.0, 1.0]
    assert best_of_n(scores, outcomes, 1) == pytest.approx(0.5)  # N = 1 is the pool mean
    assert best_of_n(scores, outcomes, 4) == 0.0  # the whole pool: the 0.9-scored failure
    for n in range(1, 5):
        assert best_of_n(scores, outcomes, n) <= oracle_at_n(outcomes, n) + 1e-12
    with pytest.raises(ValueError, match="between 1 and the pool size"):
        best_of_n(scores, outcomes, 5)


def test_aggregate_and_intervals():
    assert aggregate([], "last") == -math.inf
    with pytest.raises(ValueError, match="last, min or mean"):
        aggregate([1.0], "max")
    rate, lo, hi = wilson(0, 20)
    assert rate == 0 and lo == 0 and 0 < hi < 0.2
    mean, lo, hi = mean_ci([0.0, 1.0] * 50)
    assert mean == 0.5 and hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.25 * 100 / 99 / 100))


def test_efficiency_ratio_paper_definition():
    ns = [1, 2, 4, 8, 16, 32, 64]
    baseline = [0.30, 0.35, 0.40, 0.42, 0.41, 0.40, 0.39]  # peaks at N = 8, then degrades
    method = [0.30, 0.42, 0.45, 0.50, 0.52, 0.55, 0.56]  # reaches 0.42 at N = 2
    assert efficiency_ratio(ns, baseline, method) == 4.0
    assert efficiency_ratio(ns, method, baseline) is None  # the baseline never reaches 0.56
