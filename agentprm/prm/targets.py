"""Per-step PRM targets (Qhat, mask) of encoded trajectories, for every label kind: what train-prm
trains on and export-labels writes. The label maths itself is agentprm.prm.labels."""

from __future__ import annotations

from pathlib import Path

import torch

from agentprm import jsonl
from agentprm.prm import labels as L


def load_mc(path: Path, hard: bool) -> dict[tuple[int, int], torch.Tensor]:
    """(task, sample) -> per-step MC targets from `agentprm mc-label` output; ValueError naming the
    file and the record when a line is not an mc-label record."""
    out = {}
    for rec in jsonl.read(path):
        try:
            out[(rec["task"], rec["sample"])] = L.mc(rec["outcomes"], hard=hard)[0]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path}: record of task {rec.get('task')} sample {rec.get('sample')} is not an "
                f"mc-label record ({exc}); fix or delete that line"
            ) from None
    return out


def step_targets(
    labels: str,
    enc: list,
    trajs: list,
    values: list[torch.Tensor] | None = None,
    q_prev: list[torch.Tensor] | None = None,
    mc_table: dict[tuple[int, int], torch.Tensor] | None = None,
    gamma: float = 1.0,
    lam: float = 0.95,
    td_form: str = "standard",
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(Qhat, mask) per entry of `enc` (prm.batch.encode's output; trajs is the list it indexes), on
    the CPU, shaped like the trajectory's steps.

    values[k] (M_0..M_T of enc[k]) and q_prev[k] (its Q_{-1}, for td_form="literal") must come from a
    deterministic pass of the current model; they are read for td only. mc_table: load_mc's output.
    Example: step_targets("pvm", enc, trajs) for one trajectory of two steps and outcome r ->
    [(tensor([r, r]), tensor([1., 1.]))].
    """
    out = []
    for k, e in enumerate(enc):
        if labels == "td":
            prev = None if q_prev is None else q_prev[k].detach().cpu()
            t, m = L.td_gae(
                values[k].detach().cpu(), e.outcome, gamma=gamma, lam=lam, form=td_form, q_prev=prev
            )
        elif labels == "pvm":
            t, m = L.pvm(e.outcome, e.num_steps)
        elif labels == "orm":
            t, m = L.orm(e.outcome, e.num_steps)
        elif labels == "mc":
            traj = trajs[e.index]
            t = mc_table[(traj.task, traj.sample)]
            if t.numel() != e.num_steps:
                raise ValueError(
                    f"MC labels of task {traj.task} sample {traj.sample} have {t.numel()} steps but the "
                    f"trajectory has {e.num_steps}: the --mc-labels file was made from other trajectories"
                )
            m = torch.ones_like(t)
        else:
            raise ValueError(f"unknown labels {labels!r}: choose td, mc, pvm or orm")
        out.append((t, m))
    return out
