"""Batching trajectories for the PRM: render, one forward pass per sequence, per-step values back.

A trajectory becomes one or more prompts.Segment sequences (one when it fits the token budget).
`step_values` runs the value model once over all segments of a batch and returns, for each
trajectory, M_0..M_T in step order (and Q_{-1}, the value read at the end of o_0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentprm.prm.value import token_values
from agentprm.prompts import Segment, training_segments


@dataclass(frozen=True)
class Encoded:
    """A trajectory ready for the PRM: its segments and its outcome."""

    index: int  # position in the caller's trajectory list
    segments: list[Segment]
    num_steps: int
    outcome: float
    success: bool


def encode(env: str, trajs, tokenizer, budget: int | None) -> list[Encoded]:
    """Render and tokenize every trajectory (those with no steps are skipped: nothing to score)."""
    out = []
    for i, t in enumerate(trajs):
        if t.num_steps == 0:
            continue
        out.append(
            Encoded(i, training_segments(env, t, tokenizer, budget), t.num_steps, float(t.reward), t.success)
        )
    return out


def collate(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> right-padded (B, L) input_ids and attention_mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        att[b, : len(r)] = 1
    return ids.to(device), att.to(device)


def row_values(
    model, rows: list[list[int]], pad_id: int, pad_together: bool | None = None
) -> list[torch.Tensor]:
    """Head output at every position of each token-id row: list of (len(row),) fp32 tensors.

    Rows of equal length share one forward pass (no padding, so attention keeps its causal fast
    path). Rows of different lengths are right-padded into one pass only when `pad_together`
    (default: on CUDA). On CPU a padded batch falls back to sdpa's masked kernel, which
    materialises the (L, L) scores and is 2-3x slower than encoding the rows one by one
    (benchmarks/prm_speed.py).

    Example: row_values(model, [[5, 6, 7], [5, 6]], pad_id=0) -> [tensor (3,), tensor (2,)]
    """
    device = next(model.parameters()).device
    if pad_together is None:
        pad_together = device.type == "cuda"
    groups: dict[int, list[int]] = {}
    for b, r in enumerate(rows):
        groups.setdefault(-1 if pad_together else len(r), []).append(b)
    out: list[torch.Tensor | None] = [None] * len(rows)
    for members in groups.values():
        ids, att = collate([rows[b] for b in members], pad_id, device)
        values = token_values(model, ids, att)  # (len(members), L)
        for k, b in enumerate(members):
            out[b] = values[k, : len(rows[b])]
    return out


def step_values(model, batch: list[Encoded], pad_id: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """([M_0..M_T] per trajectory, [Q_{-1}] per trajectory), with gradient.

    One forward pass per segment length (`row_values`); each trajectory is usually one segment.
    """
    segments = [s for e in batch for s in e.segments]
    device = next(model.parameters()).device
    values = row_values(model, [s.ids for s in segments], pad_id)
    per_segment = [
        v[torch.as_tensor(s.step_ends, dtype=torch.long, device=device)]
        for v, s in zip(values, segments, strict=True)
    ]
    q_prev = [v[max(s.state_end, 0)].reshape(1) for v, s in zip(values, segments, strict=True)]
    out_values, out_prev, k = [], [], 0
    for e in batch:
        full = torch.zeros(e.num_steps, device=device)
        prev = None
        for s in e.segments:
            full = full.index_put((torch.as_tensor(s.steps, device=device),), per_segment[k])
            if s.state_end >= 0:
                prev = q_prev[k]
            k += 1
        out_values.append(full)
        out_prev.append(prev if prev is not None else full[:1].detach())
    return out_values, out_prev


def pad(rows: list[torch.Tensor], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (T_i,) -> (B, S) zero-padded values and a (B, S) 0/1 mask of real steps."""
    width = width or max(r.numel() for r in rows)
    device = rows[0].device
    out = torch.zeros((len(rows), width), device=device)
    mask = torch.zeros((len(rows), width), device=device)
    for b, r in enumerate(rows):
        out[b, : r.numel()] = r
        mask[b, : r.numel()] = 1
    return out, mask


@torch.no_grad()
def score_encoded(
    model, enc, num_trajs: int, pad_id: int, batch_size: int = 16, q_prev: list | None = None
) -> list[torch.Tensor]:
    """M_0..M_T (no gradient, eval mode) for each of num_trajs trajectories already encoded by
    `encode`; a trajectory without steps gets an empty tensor.

    If a list is given as q_prev, each encoded trajectory's Q_{-1} (value at the end of o_0) is
    appended to it, in the order of `enc`, from the same pass.
    """
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = [torch.zeros(0) for _ in range(num_trajs)]
    for start in range(0, len(enc), batch_size):
        batch = enc[start : start + batch_size]
        values, prev = step_values(model, batch, pad_id)
        for e, v in zip(batch, values, strict=True):
            out[e.index] = v.float().cpu()
        if q_prev is not None:
            q_prev.extend(p.float().cpu() for p in prev)
    model.train(was_training)
    return out
