"""PRM diagnostics on hand-built trajectories: sibling pairs, final-step accuracy, success-only pairs."""

from __future__ import annotations

import math

import pytest
import torch

from agentprm.diagnostics import (
    bootstrap_steps,
    final_step_accuracy,
    mc_halves,
    sibling_accuracy,
    sibling_pairs,
    sign_agreement,
    spearman,
    spearman_brown,
    step_pairs,
)
from agentprm.types import Step, Trajectory


def traj(task, sample, responses, reward, success):
    return Trajectory(
        env="babyai",
        task=task,
        sample=sample,
        initial_observation="o0",
        steps=[Step(r, r, f"o{k + 1}") for k, r in enumerate(responses)],
        reward=reward,
        success=success,
        terminated=True,
        truncated=False,
        policy="t",
    )


def test_sibling_pairs_branch_at_first_difference():
    trajs = [
        traj(0, 0, ["a", "b", "c"], 0.9, True),  # branches from sample 1 at step 1
        traj(0, 1, ["a", "x"], 0.0, False),
        traj(0, 2, ["a", "b", "d"], 0.8, True),  # differs from sample 0 at step 2, only in reward
        traj(1, 0, ["a"], 0.0, False),  # another task: never paired with task 0
    ]
    assert sorted(sibling_pairs(trajs)) == [(0, 1, 1), (0, 2, 2), (1, 2, 1)]
    assert sorted(sibling_pairs(trajs, by="success")) == [(0, 1, 1), (1, 2, 1)]
    # values: the failing branch x scores higher than b at step 1 (wrong), c > d at step 2 (right)
    values = [
        torch.tensor([0.5, 0.4, 0.9]),
        torch.tensor([0.5, 0.6]),
        torch.tensor([0.5, 0.4, 0.3]),
        torch.tensor([0.1]),
    ]
    acc, n = sibling_accuracy(trajs, values)
    assert n == 3 and math.isclose(acc, 1 / 3)  # (0,1): wrong, (0,2): right, (1,2): wrong
    acc, n = sibling_accuracy(trajs, values, by="success")
    assert n == 2 and acc == 0.0
    # final step: 0.9 (0.9 reward) vs 0.6 (fail) right; 0.9 vs 0.3 (0.8) right; 0.6 (fail) vs 0.3 (0.8) wrong
    assert math.isclose(final_step_accuracy(trajs, values), 2 / 3)
    assert final_step_accuracy(trajs, values, by="success") == 0.5
    assert spearman([1, 2, 3], [10, 30, 20]) == 0.5


def test_mc_halves_and_ceiling():
    # odd counts: the first half takes floor(n/2) rollouts, the second the rest
    first, second = mc_halves([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], [0.7]])
    assert first == [1.0, 0.0, 0.7] and second == [0.5, 0.5, 0.7]
    # two halves that agree perfectly are perfectly reliable; unrelated halves give 0
    assert spearman_brown(1.0) == 1.0 and spearman_brown(0.0) == 0.0
    assert math.isclose(spearman_brown(0.25), 0.4)
    with pytest.raises(ValueError):  # a step with no outcomes is not a record, as in labels.mc
        mc_halves([[]])


def test_step_agreement_reads_progress_from_consecutive_steps():
    qmc = [[0.2, 0.6, 1.0], [0.5, 0.1], [0.3, 0.3, 0.9, 0.0]]
    # progress pairs start at t = 1 in every trajectory: 2 + 1 + 3 steps
    a, b = step_pairs(qmc, qmc, range(3), progress=True)
    assert len(a) == 6 and b == pytest.approx([0.4, 0.4, -0.4, 0.0, 0.6, -0.9])
    # a model that is the MC estimate plus a per-trajectory offset: promise ranks differ, progress is exact
    shifted = [[q + 10.0 * i for q in row] for i, row in enumerate(qmc)]
    assert spearman(*step_pairs(shifted, qmc, range(3), progress=True)) == pytest.approx(1.0)
    assert spearman(*step_pairs(shifted, qmc, range(3), progress=False)) < 0.9
    # sign agreement skips MC progress 0 (task 2's flat step) and counts a reversed model at 0
    flipped = [[-q for q in row] for row in qmc]
    assert sign_agreement(*step_pairs(qmc, qmc, range(3), progress=True)) == 1.0
    assert sign_agreement(*step_pairs(flipped, qmc, range(3), progress=True)) == 0.0
    assert math.isnan(sign_agreement([0.5], [0.0]))
    # the interval is over trajectories and holds the point; one trajectory per draw can be nan
    point, low, high = bootstrap_steps(spearman, shifted, qmc, progress=False, n_boot=200)
    assert low <= point <= high
    assert all(math.isnan(x) for x in bootstrap_steps(spearman, [], [], progress=True))


def test_mc_agreement_arguments_are_checked_at_the_edge(tmp_path):
    from agentprm.recipes import mc_agreement

    for bad, message in [
        (dict(reward_models=()), "at least one NAME=DIR"),
        (dict(reward_models=("runs/prm-td",)), "write NAME=DIR"),
        (dict(reward_models=("td=x",), splits=("test",)), "choose from heldout, train"),
        (dict(reward_models=("td=x",), weights="best"), "--weights"),
    ]:
        with pytest.raises(ValueError, match=message):
            mc_agreement.Args(**bad)
    with pytest.raises(SystemExit, match="--mc-labels .*: no such file"):
        mc_agreement.main(
            mc_agreement.Args(
                reward_models=("td=x",), data=tmp_path, mc_labels=tmp_path / "none.jsonl",
                split=tmp_path / "s.json", run_dir=tmp_path / "out",
            )
        )  # fmt: skip
