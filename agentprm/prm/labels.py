"""Step labels Qhat_t for a trajectory of T+1 steps (t = 0..T): pure functions, no model inside.

Notation: Q_t = M(s_t, a_t), the model's promise for step t; r = r(u, tau) the outcome, given after
the last step (r_t = 0 before). Every function returns (targets, mask), both shape (T+1,): the loss
uses targets where mask is 1.

  orm:    only the final step is labelled, with r (an outcome reward model).
  pvm:    every step is labelled with r (a "process value model": Monte Carlo return, gamma = 1).
  mc:     Math-Shepherd: Qhat_t from N_mc rollouts of the policy started after step t
          (hard: 1 if any succeeds; soft: their mean outcome). The rollouts are run by
          agentprm.recipes.mc_label; here only the estimate from their outcomes.
  td_gae: AgentPRM's own labels: TD(lambda) targets by GAE, from the CURRENT model's Q (no
          gradient, a deterministic eval-mode pass), recomputed every batch (Algorithm 1).
          form="standard" (the default) indexes each TD error by its earlier step, as GAE does:
              delta_t = r_t + gamma * Q_{t+1} - Q_t          (Q_{T+1} = 0: the episode is over)
              Ahat_t  = sum_k (gamma * lam)^k delta_{t+k}
              Qhat_t  = Ahat_t + Q_t                         (so Qhat_T = r exactly)
          lam = 1 gives the Monte Carlo return (PVM's labels when gamma = 1); lam = 0 gives
          TD(0), Qhat_t = gamma * Q_{t+1}.
          form="literal" is the paper's Eq. 12-14 as printed (PAPER.md, "TD indexing"), indexed by the later step:
              delta_t = r_t + gamma * Q_t - Q_{t-1}          (Q_{-1}: the value read at the end of o_0)
              Ahat_t  = sum_k (gamma * lam)^k delta_{t+k},   Qhat_t = Ahat_t + Q_{t-1},  Qhat_T = r
          Its target for step t bootstraps from Q_t itself: at lam = 0 and gamma = 1, Qhat_t = Q_t
          for t < T (no learning signal); at lam = 1, Qhat_t = r + Q_T (the outcome plus the last
          value). PAPER.md gives the algebra; the flag exists so a user can compare the two.
          gamma is not given in the paper: default 1.0.
A truncated episode (round cap hit) ends with r = 0: the task was not completed, which is exactly
the outcome the environment reports, so it is treated as terminal too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _vec(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float32)
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {tuple(t.shape)}")
    return t


def orm(outcome: float, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Outcome-only labels: the outcome on the last step, no target elsewhere.

    >>> orm(0.5, 3)
    (tensor([0.0000, 0.0000, 0.5000]), tensor([0., 0., 1.]))
    """
    targets = torch.zeros(num_steps)
    mask = torch.zeros(num_steps)
    targets[-1], mask[-1] = float(outcome), 1.0
    return targets, mask


def pvm(outcome: float, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Process value model labels: every step's target is the outcome.

    >>> pvm(0.5, 2)
    (tensor([0.5000, 0.5000]), tensor([1., 1.]))
    """
    return torch.full((num_steps,), float(outcome)), torch.ones(num_steps)


def mc(outcomes_per_step: Sequence[Sequence[float]], hard: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Math-Shepherd estimate from the rollout outcomes after each step.

    outcomes_per_step[t] holds the N_mc outcomes (rewards in [0, 1]) of rollouts continued after
    step t. hard: 1.0 if any rollout succeeded (outcome >= 1.0 for success-style tasks; for BabyAI's
    graded reward, > 0) else 0.0; soft: the mean outcome, kept as a float.
    >>> mc([[0.0, 1.0], [0.0, 0.0]], hard=True)[0].tolist()
    [1.0, 0.0]
    >>> mc([[0.0, 0.8], [0.2, 0.2]], hard=False)[0].tolist()  # doctest: +ELLIPSIS
    [0.4..., 0.2...]
    """
    if not outcomes_per_step or any(len(o) == 0 for o in outcomes_per_step):
        raise ValueError("mc needs at least one rollout outcome for every step")
    if hard:
        targets = [1.0 if any(float(x) > 0 for x in o) else 0.0 for o in outcomes_per_step]
    else:
        targets = [sum(float(x) for x in o) / len(o) for o in outcomes_per_step]
    return torch.tensor(targets, dtype=torch.float32), torch.ones(len(targets))


def td_gae(
    q: Sequence[float] | torch.Tensor,
    outcome: float,
    gamma: float = 1.0,
    lam: float = 0.95,
    form: str = "standard",
    q_prev: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TD(lambda) targets by GAE from the model's own Q_0..Q_T, shape (T+1,) (module docstring).

    q_prev is Q_{-1}, needed by form="literal" only. Gradients never flow through the targets.
    Example (worked by hand in tests/test_labels.py): Q = [0.2, 0.6], r = 1, gamma = 1, lam = 0.5:
        delta = [0.6 - 0.2, 1 - 0.6] = [0.4, 0.4];  Ahat = [0.4 + 0.5 * 0.4, 0.4] = [0.6, 0.4]
        Qhat  = [0.2 + 0.6, 0.6 + 0.4] = [0.8, 1.0]
    >>> td_gae([0.2, 0.6], 1.0, lam=0.5)[0].tolist()
    [0.800000011920929, 1.0]
    >>> td_gae([0.2, 0.6], 1.0, lam=0.0, form="literal", q_prev=0.1)[0].tolist()  # Qhat_0 = Q_0
    [0.20000000298023224, 1.0]
    """
    q = _vec(q, "q").detach()
    n = q.numel()
    rewards = torch.zeros(n)
    rewards[-1] = float(outcome)
    if form == "standard":
        base = q  # Qhat_t = Ahat_t + Q_t
        delta = rewards + gamma * torch.cat([q[1:], torch.zeros(1)]) - q  # (T+1,)
    elif form == "literal":
        if q_prev is None:
            raise ValueError("td_gae(form='literal') needs q_prev = Q_{-1}, the value read at the end of o_0")
        base = torch.cat([torch.as_tensor(q_prev, dtype=torch.float32).detach().reshape(1).cpu(), q[:-1]])
        delta = rewards + gamma * q - base  # delta_t = r_t + gamma Q_t - Q_{t-1}
    else:
        raise ValueError(f"td_gae form must be 'standard' or 'literal', not {form!r}")
    adv = torch.zeros(n)
    running = 0.0
    for t in range(n - 1, -1, -1):  # Ahat_t = delta_t + gamma * lam * Ahat_{t+1}
        running = delta[t] + gamma * lam * running
        adv[t] = running
    targets = adv + base
    targets[-1] = float(outcome)  # the terminal step's target is the real outcome (standard: already)
    return targets, torch.ones(n)
