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


def prm_loss(
    values: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    beta: float = 1.0,
    counts: torch.Tensor | None = None,
    world: int = 1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_Q + beta * L_A; beta = 1.0 is the paper's setting, beta = 0 its ablation.

    counts (data-parallel training): the GLOBAL numbers of labelled steps and of labelled step
    pairs over every process's share of the batch, shape (2,), each >= 1. Each term is then this
    process's share of the global mean times `world` (DDP averages gradients over processes), so
    2 processes with the same global batch follow 1 process. Without counts: this batch's means.
    Returns the loss and {"train/loss", "train/loss_q", "train/loss_a"} for logging.

    >>> v, t, m = torch.tensor([[0.0, 0.5]]), torch.tensor([[0.0, 1.0]]), torch.ones(1, 2)
    >>> prm_loss(v, t, m)[1]
    {'train/loss': 0.1875, 'train/loss_q': 0.0625, 'train/loss_a': 0.125}
    >>> prm_loss(v, t, m, counts=torch.tensor([4.0, 2.0]), world=2)[1]["train/loss_q"]  # 2 of 4 steps here
    0.0625
    """
    lq = loss_q(values, targets, mask)
    la = loss_a(values, targets, mask)
    if counts is not None:
        pair = mask[:, 1:] * mask[:, :-1]
        lq = lq * mask.sum() / counts[0] * world
        la = la * pair.sum() / counts[1] * world
    loss = lq + beta * la
    return loss, {"train/loss": loss.item(), "train/loss_q": lq.item(), "train/loss_a": la.item()}


STEP_LABELS = ("td", "mc")  # labels that differ between steps: L_A has something to learn
OUTCOME_LABELS = ("pvm", "orm")  # one outcome for every labelled step: promise (L_Q) only


def beta_for(labels: str, beta: float | None) -> float:
    """The weight of L_A a reward model trains with: beta for td / mc labels (default 1.0, the
    paper's), 0 for pvm / orm whatever is asked.

    The paper's PVM and ORM learn promise only. With PVM's constant targets (every step = the
    outcome) L_A would become a penalty on any change of M between steps, and ORM labels one step
    only. A non-zero beta asked for them is refused rather than silently ignored.
    >>> beta_for("td", None), beta_for("td", 0.0), beta_for("pvm", None), beta_for("orm", 0)
    (1.0, 0.0, 0.0, 0.0)
    >>> beta_for("pvm", 1.0)
    Traceback (most recent call last):
    ...
    ValueError: --labels pvm trains with L_Q only (the paper's PVM learns promise); drop --beta or pass --beta 0
    """
    if labels in OUTCOME_LABELS:
        if beta not in (None, 0, 0.0):
            raise ValueError(
                f"--labels {labels} trains with L_Q only (the paper's {labels.upper()} learns promise); "
                "drop --beta or pass --beta 0"
            )
        return 0.0
    if labels in STEP_LABELS:
        beta = 1.0 if beta is None else float(beta)
        if not beta >= 0:
            raise ValueError(f"--beta must be >= 0 (the weight of L_A), got {beta}")
        return beta
    raise ValueError(f"unknown labels {labels!r}: choose td, mc, pvm or orm")
