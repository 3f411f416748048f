"""Label and loss functions against numbers worked out by hand (the comments show the arithmetic)."""

from __future__ import annotations

import pytest
import torch

from agentprm.prm.labels import mc, orm, pvm, td_gae
from agentprm.prm.losses import loss_a, loss_q, prm_loss


def close(a, b):
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=1e-6
    )


def test_orm_and_pvm():
    t, m = orm(0.4375, 3)  # a BabyAI-style graded reward strictly between 0 and 1
    assert t.tolist() == [0.0, 0.0, 0.4375] and m.tolist() == [0.0, 0.0, 1.0]
    t, m = pvm(0.4375, 3)
    assert t.tolist() == [0.4375] * 3 and m.tolist() == [1.0] * 3
    assert orm(1.0, 1)[0].tolist() == [1.0]  # a one-step trajectory


def test_mc_hard_and_soft_stay_floats():
    outcomes = [[0.0, 0.0, 0.7, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.5]]
    hard, _ = mc(outcomes, hard=True)
    assert hard.tolist() == [1.0, 0.0, 1.0]
    soft, _ = mc(outcomes, hard=False)
    # 0.7 / 4 = 0.175; 0; 3.5 / 4 = 0.875: never cast to int
    assert close(soft, [0.175, 0.0, 0.875]) and soft.dtype == torch.float32
    with pytest.raises(ValueError):
        mc([[1.0], []])


def test_td_gae_by_hand():
    # Q = [0.2, 0.6], r = 1, gamma = 1, lam = 0.5
    # delta_0 = 0 + 0.6 - 0.2 = 0.4 ; delta_1 = 1 + 0 - 0.6 = 0.4
    # Ahat_1 = 0.4 ; Ahat_0 = 0.4 + 0.5 * 0.4 = 0.6
    # Qhat = [0.2 + 0.6, 0.6 + 0.4] = [0.8, 1.0]
    q_hat, mask = td_gae([0.2, 0.6], 1.0, gamma=1.0, lam=0.5)
    assert close(q_hat, [0.8, 1.0]) and mask.tolist() == [1.0, 1.0]


def test_td_gae_discounted_three_steps():
    # Q = [0.1, 0.3, 0.5], r = 0.6 (graded), gamma = 0.9, lam = 0.95 (gamma*lam = 0.855)
    # delta_0 = 0.9*0.3 - 0.1 = 0.17 ; delta_1 = 0.9*0.5 - 0.3 = 0.15 ; delta_2 = 0.6 - 0.5 = 0.1
    # Ahat_2 = 0.1 ; Ahat_1 = 0.15 + 0.855*0.1 = 0.2355 ; Ahat_0 = 0.17 + 0.855*0.2355 = 0.3713525
    # Qhat = [0.4713525, 0.5355, 0.6]
    q_hat, _ = td_gae([0.1, 0.3, 0.5], 0.6, gamma=0.9, lam=0.95)
    assert close(q_hat, [0.4713525, 0.5355, 0.6])


def test_td_gae_limits():
    q = [0.3, 0.1, 0.9, 0.4]
    # lam = 1, gamma = 1: Monte Carlo return = the outcome everywhere (PVM's labels)
    assert close(td_gae(q, 0.75, gamma=1.0, lam=1.0)[0], [0.75] * 4)
    # lam = 0: TD(0), Qhat_t = gamma * Q_{t+1}, last = r
    assert close(td_gae(q, 0.75, gamma=1.0, lam=0.0)[0], [0.1, 0.9, 0.4, 0.75])
    # a single step (length-1 trajectory): the target is the outcome
    assert close(td_gae([0.42], 0.0)[0], [0.0])
    # a truncated max-length episode (20 rounds, outcome 0): last target 0, no gradient kept
    q20 = torch.linspace(0.1, 0.6, 20, requires_grad=True)
    q_hat, _ = td_gae(q20, 0.0)
    assert q_hat[-1].item() == 0.0 and not q_hat.requires_grad


def test_losses_by_hand():
    values = torch.tensor([[0.2, 0.5, 0.9], [0.4, 0.0, 0.0]])
    targets = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # second trajectory has one step
    # L_Q: squared errors 0.04, 0.25, 0.01, 0.36 -> halves 0.02, 0.125, 0.005, 0.18 -> mean 0.0825
    assert close(loss_q(values, targets, mask), 0.0825)
    # L_A: pairs only in the first trajectory: (0.3 - 1.0)^2/2 = 0.245, (0.4 - 0)^2/2 = 0.08 -> 0.1625
    assert close(loss_a(values, targets, mask), 0.1625)
    loss, logs = prm_loss(values, targets, mask, beta=1.0)
    assert close(loss, 0.245) and set(logs) == {"train/loss", "train/loss_q", "train/loss_a"}
    assert close(prm_loss(values, targets, mask, beta=0.0)[0], 0.0825)  # the ablation
