"""Multi-turn PPO's maths (the paper's Section 5.2), as pure functions over tensors.

An episode is T turns; turn t is the policy's response a_t to the rendered state s_t. Rewards and
values are per turn, advantages come from GAE over turns, and every token of response a_t shares
its turn's advantage in the clipped surrogate (observation and prompt tokens carry no loss).

Rewards from a reward model (`turn_rewards`), for an episode with per-step values M_0..M_{T-1},
the value M_{-1} read at the end of o_0, and the environment's outcome R:
  env       r_t = 0 for t < T-1, r_{T-1} = R                          (the outcome alone)
  orm       r_{T-1} = M_{T-1} (+ R * outcome_coef), 0 before          (a sparse learned reward)
  pvm,      r_t = M_t - M_{t-1} (progress), + R * outcome_coef at the end: the sum over the episode
  agentprm, telescopes to M_{T-1} - M_{-1} (+ R * outcome_coef), so the dense rewards only move
  mc        credit between turns, they add no return of their own beyond the final promise (mc: the
            reward model trained on Monte-Carlo labels, the paper's MC-labelled PRM).
"""

from __future__ import annotations

import torch

REWARD_SOURCES = ("env", "orm", "pvm", "agentprm", "mc")
PROGRESS_SOURCES = ("pvm", "agentprm", "mc")  # dense per-turn rewards M_t - M_{t-1}


def turn_rewards(
    source: str, outcome: float, values: list[float] | None = None, initial: float | None = None,
    outcome_coef: float = 1.0,
) -> list[float]:  # fmt: skip
    """Per-turn rewards of one episode (module docstring). `values` = M_0..M_{T-1} and `initial` =
    M_{-1} are needed for orm (values) and pvm / agentprm (both); `outcome_coef` weighs R for them.

    >>> turn_rewards("env", 1.0, [0.1, 0.2, 0.3])
    [0.0, 0.0, 1.0]
    >>> [round(r, 2) for r in turn_rewards("agentprm", 1.0, [0.4, 0.7, 0.9], initial=0.3)]
    [0.1, 0.3, 1.2]
    >>> [round(r, 2) for r in turn_rewards("mc", 0.0, [0.5, 0.2], initial=0.4)]
    [0.1, -0.3]
    """
    if source not in REWARD_SOURCES:
        raise ValueError(f"unknown reward source {source!r}: choose one of {REWARD_SOURCES}")
    if values is None or len(values) == 0:
        raise ValueError("an episode needs at least one turn (values M_0..M_{T-1})")
    n = len(values)
    rewards = [0.0] * n
    if source == "env":
        rewards[-1] = float(outcome)
        return rewards
    if source == "orm":
        rewards[-1] = float(values[-1]) + outcome_coef * float(outcome)
        return rewards
    if initial is None:
        raise ValueError(f"{source} rewards are progress M_t - M_(t-1): give initial = M_(-1), read at o_0")
    previous = [float(initial), *map(float, values[:-1])]
    rewards = [float(v) - p for v, p in zip(values, previous, strict=True)]
    rewards[-1] += outcome_coef * float(outcome)
    return rewards


def turn_gae(
    rewards: list[float], values: list[float], gamma: float = 1.0, lam: float = 0.95, bootstrap: float = 0.0
) -> tuple[list[float], list[float]]:
    """GAE over the turns of one episode -> (advantages A_t, returns A_t + V(s_t)).

    values[t] = V(s_t), the critic's value of the state before turn t; `bootstrap` = V(s_T) after the
    last turn (0 when the episode ended; the critic's value when the round cap cut it).
    delta_t = r_t + gamma V(s_{t+1}) - V(s_t); A_t = delta_t + gamma lam A_{t+1}.

    >>> adv, ret = turn_gae([0.0, 0.0, 1.0], [0.5, 0.5, 0.5], gamma=1.0, lam=1.0)
    >>> adv, ret   # lam = 1: the return-to-go minus V
    ([0.5, 0.5, 0.5], [1.0, 1.0, 1.0])
    """
    if len(rewards) != len(values):
        raise ValueError(f"{len(rewards)} rewards but {len(values)} values")
    adv = [0.0] * len(rewards)
    running, next_value = 0.0, bootstrap
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
        next_value = values[t]
    return adv, [a + v for a, v in zip(adv, values, strict=True)]


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log pi(token_{k+1} | tokens_<=k): (B, L, V) logits, (B, L) ids -> (B, L) with position k+1 holding
    the log-probability of token k+1 (position 0 gets 0: nothing predicts the first token).

    >>> lp = token_logprobs(torch.zeros(1, 2, 4), torch.tensor([[1, 3]]))
    >>> [round(x, 4) for x in lp[0].tolist()]   # uniform over 4: ln 1/4
    [0.0, -1.3863]
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return torch.nn.functional.pad(logp, (1, 0))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over mask == 1 (0 when the mask is empty).

    >>> masked_mean(torch.tensor([1., 3.]), torch.tensor([1., 0.])).item()
    1.0
    """
    mask = mask.float()
    return (x * mask).sum() / mask.sum().clamp(min=1)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, token mean over mask -> (loss to minimise, clipped share).

    ratio = exp(logp - old_logp); loss = -min(ratio A, clip(ratio, 1 - clip, 1 + clip) A).
    >>> loss, frac = policy_loss(torch.log(torch.tensor([1.5])), torch.zeros(1), torch.ones(1), torch.ones(1))
    >>> round(loss.item(), 4), frac.item()   # ratio 1.5 clipped to 1.2 for a positive advantage
    (-1.2, 1.0)
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip) * advantages
    loss = masked_mean(-torch.minimum(unclipped, clipped), mask)
    frac = masked_mean(((ratio - 1).abs() > clip).float(), mask)
    return loss, frac


def kl_to_reference(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(pi || pi_ref) per token by the k3 estimator exp(d) - d - 1 with d = ref_logp - logp
    (non-negative, unbiased, 0 where the two agree), token mean over mask.

    >>> kl_to_reference(torch.zeros(3), torch.zeros(3), torch.ones(3)).item()
    0.0
    """
    return masked_mean(kl_per_token(logp, ref_logp), mask)


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """The k3 term exp(d) - d - 1, d = ref_logp - logp, of every token (kl_to_reference's mean).
    Unbounded for d > 0: a token the policy has made far less likely than the reference finds it
    gives exp(d), which is why the PPO recipe logs its largest value (train/kl_max).

    >>> [round(x, 3) for x in kl_per_token(torch.tensor([0.0, -3.0]), torch.tensor([0.0, 0.0])).tolist()]
    [0.0, 16.086]
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
) -> torch.Tensor:
    """Clipped critic loss: 1/2 max((V - R)^2, (clip(V, V_old +- clip) - R)^2), mean over mask.

    >>> round(value_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([1.0]), torch.ones(1), clip=0.2).item(), 4)
    0.32
    """
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    worst = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return masked_mean(0.5 * worst, mask)


def entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the next-token distributions at the positions that predict masked tokens:
    logits (B, L, V), mask (B, L) over the predicted tokens (as token_logprobs aligns them).

    >>> round(entropy(torch.zeros(1, 2, 4), torch.tensor([[0., 1.]])).item(), 4)   # ln 4
    1.3863
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    h = -(logp.exp() * logp).sum(-1)
    return masked_mean(torch.nn.functional.pad(h, (1, 0)), mask)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over mask (advantage normalisation); positions outside the mask stay 0.

    >>> whiten(torch.tensor([1.0, 3.0, 9.0]), torch.tensor([1.0, 1.0, 0.0])).tolist()
    [-1.0, 1.0, 0.0]
    """
    mask = mask.float()
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) / torch.sqrt(var + eps) * mask
