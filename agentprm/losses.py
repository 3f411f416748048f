"""The PRM loss L = L_Q + beta * L_A (eq. 4, 9, 10), on per-step values of a batch of trajectories.

Shapes: values, targets, mask are (B, S): B trajectories padded to S steps; mask is 1 where a step
has a label (and exists). L_A compares consecutive steps t-1, t of the same trajectory where both
are labelled (t >= 1), so padding and ORM's unlabelled steps never contribute.
"""

from __future__ import annotations

import torch


def loss_q(values: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_Q = mean over labelled steps of 1/2 (M_t - Qhat_t)^2 (promise).

    >>> loss_q(torch.tensor([[0.5, 1.0]]), torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)).item()
    0.0625
    """
    mask = mask.float()
    return (0.5 * (values - targets) ** 2 * mask).sum() / mask.sum().clamp(min=1)


def loss_a(values: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_A = mean over t >= 1 of 1/2 ((M_t - M_{t-1}) - (Qhat_t - Qhat_{t-1}))^2 (progress).

    >>> loss_a(torch.tensor([[0.0, 0.5]]), torch.tensor([[0.0, 1.0]]), torch.ones(1, 2)).item()
    0.125
    """
    pair = (mask[:, 1:] * mask[:, :-1]).float()  # (B, S-1): both steps labelled
    progress = values[:, 1:] - values[:, :-1]
    target = targets[:, 1:] - targets[:, :-1]
    return (0.5 * (progress - target) ** 2 * pair).sum() / pair.sum().clamp(min=1)


def prm_loss(values: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, beta: float = 1.0
             ) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
    """L = L_Q + beta * L_A; beta = 1.0 is the paper's setting, beta = 0 its ablation.

    Returns the loss and {"train/loss", "train/loss_q", "train/loss_a"} for logging.
    """
    lq = loss_q(values, targets, mask)
    la = loss_a(values, targets, mask)
    loss = lq + beta * la
    return loss, {"train/loss": loss.item(), "train/loss_q": lq.item(), "train/loss_a": la.item()}
