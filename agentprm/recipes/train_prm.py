"""`agentprm train-prm`: train M_phi with L = L_Q + beta * L_A on td / mc / pvm / orm labels.

Algorithm 1 (AgentPRM), read top to bottom:
  for every batch of trajectories:
    1. one forward pass per rendered trajectory -> M_0..M_T (value read at the end of each a_t)
    2. labels: td -> TD(lambda)+GAE targets from the CURRENT values (no gradient, deterministic:
       the head has no dropout by default; with --head-dropout > 0 the targets come from a separate
       eval-mode pass), recomputed every batch; mc -> precomputed Math-Shepherd estimates
       (`agentprm mc-label`); pvm / orm -> the outcome
    3. loss L_Q + beta * L_A (td / mc: beta = 1 paper, 0 = ablation; pvm / orm: L_Q only, as the
       paper's baselines), one optimizer step
The budget is optimizer steps (--epochs, capped by --max-steps), never wall-clock time: the same
command and seed train the same number of steps on any machine. --time-guard-minutes only stops a
run that overruns, loudly, with an error.
Paper defaults for pretrained backbones: <= 5 epochs, lr 1e-6. For the tiny preset (initialised from
the SFT policy, as the paper initialises from its backbone) the tuned default is lr 1e-4.

Runs unchanged on one CPU process or under `accelerate launch` (data parallel across processes,
GPUs or nodes; FSDP/DeepSpeed through accelerate's config): every process takes its share of each
global batch and the loss is normalised by the GLOBAL number of labelled steps, so 2 processes with
the same global batch follow the 1-process run. Checkpoints (atomic) every --save-every steps;
re-running resumes. Held-out diagnostics are written by agentprm.diagnostics at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

import agentprm.envs as E
from agentprm import jsonl, rundir
from agentprm import validate as V
from agentprm.diagnostics import (
    final_step_accuracy,
    sibling_accuracy,
    spearman,
    value_histogram,
)
from agentprm.models.presets import PRESETS
from agentprm.models.tokenizer import env_tokenizer
from agentprm.prm.batch import encode, pad, score_encoded, step_values
from agentprm.prm.losses import beta_for, loss_a, loss_q, prm_loss
from agentprm.prm.targets import load_mc, step_targets
from agentprm.prm.value import build_value_model, has_dropout, load_value_model
from agentprm.types import read_trajectories


@dataclasses.dataclass
class Args:
    data: Path = Path("runs/collect/trajectories.jsonl")
    """policy rollouts (paper: N_TD = 16 per training task at temperature 1.0)"""
    env: str = "babyai"
    """environment of the trajectories"""
    labels: str = "td"
    """td (AgentPRM), mc (Math-Shepherd, needs --mc-labels), pvm, orm"""
    mc_labels: Path | None = None
    """JSONL from `agentprm mc-label` (per-step estimates of seed trajectories): the labels with
    --labels mc; with any labels, also the held-out Spearman of M against the soft MC estimates"""
    mc_hard: bool = True
    """MC estimate: hard (any rollout succeeds) or soft (mean outcome)"""
    model: str = "runs/sft/model"
    """initialisation: an HF folder (the SFT policy or a pretrained LM; a value head is added) or a preset"""
    run_dir: Path = Path("runs/prm")
    """output: args.json, metrics.jsonl, checkpoint.pt, split.json, model/ (HF token-classification folder)"""
    beta: float | None = None
    """weight of L_A (progress): default 1.0 for td / mc labels, 0 is the paper's ablation; pvm and orm
    train with L_Q only (a non-zero value is refused)"""
    td_form: str = "standard"
    """TD indexing: standard (GAE's delta_t = r_t + gamma Q_{t+1} - Q_t) or literal (the paper's Eq.
    12-14 as printed, delta_t = r_t + gamma Q_t - Q_{t-1}); see agentprm/prm/labels.py and PAPER.md"""
    head_dropout: float = 0.0
    """dropout before the value head (transformers' default 0.1 made TD targets stochastic)"""
    gamma: float = 1.0
    """discount (not given in the paper; 1.0: the outcome is undiscounted)"""
    lam: float = 0.95
    """GAE lambda (paper: 0.95)"""
    epochs: int = 3
    """passes over the training trajectories (paper: <= 5)"""
    lr: float | None = None
    """default 1e-4 for presets / tiny SFT models, 1e-6 (paper) for larger pretrained backbones"""
    batch_size: int = 16
    """trajectories per optimizer step (global, across processes)"""
    max_prompt_tokens: int = 512
    """the renderer's budget (same as the policy's)"""
    heldout: float = 0.1
    """share of TASKS held out for diagnostics"""
    heldout_tasks: Path | None = None
    """hold out exactly the "heldout" tasks of this split.json (another run's) instead of drawing
    --heldout of them: one held-out set across runs on different data (e.g. more PRM tasks)"""
    save_every: int = 50
    """checkpoint every this many steps"""
    max_steps: int | None = None
    """at most this many optimizer steps (default: --epochs passes over the data)"""
    time_guard_minutes: float | None = None
    """fail (after saving a checkpoint) if training runs longer than this: a guard, never a budget"""
    eval_every: int | None = None
    """every this many steps (and at the last), log the held-out loss (this model's own objective,
    L_Q + beta L_A on its own labels, over the held-out tasks) and sibling accuracy to metrics.jsonl:
    the training curves"""
    keep: str = "last"
    """which weights model/ holds: last, or best = the evaluated step with the lowest held-out loss
    (needs --eval-every and --heldout > 0; selection never looks at test tasks)"""
    threads: int | None = None
    """torch CPU threads per process"""
    seed: int = 0
    """seeds the split, data order and head initialisation"""
    overwrite: bool = False
    """start this run dir afresh (delete what it holds) instead of resuming it"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        V.one_of(self, "labels", ("td", "mc", "pvm", "orm"))
        V.one_of(self, "td_form", ("standard", "literal"))
        V.one_of(self, "keep", ("last", "best"))
        V.at_least(
            self,
            1,
            "epochs",
            "batch_size",
            "max_prompt_tokens",
            "save_every",
            "max_steps",
            "threads",
            "eval_every",
        )
        if self.keep == "best" and (
            self.eval_every is None or (self.heldout <= 0 and self.heldout_tasks is None)
        ):
            raise ValueError("--keep best chooses by held-out loss: give --eval-every N and --heldout > 0")
        V.at_least(self, 0.0, "beta")
        V.positive(self, "lr", "time_guard_minutes")
        V.within(self, "gamma", 0.0, 1.0, low_open=True)
        V.within(self, "lam", 0.0, 1.0)
        V.within(self, "heldout", 0.0, 1.0, high_open=True)
        V.within(self, "head_dropout", 0.0, 1.0, high_open=True)


def split_tasks(tasks: list[int], heldout: float, seed: int) -> tuple[set[int], set[int]]:
    """Held-out split by task (never by trajectory: siblings of one task stay together)."""
    tasks = sorted(set(tasks))
    rng = random.Random(seed)
    rng.shuffle(tasks)
    k = int(round(heldout * len(tasks)))
    return set(tasks[k:]), set(tasks[:k])


def targets_for(
    args: Args, enc, values: list[torch.Tensor], trajs, mc_table, q_prev: list[torch.Tensor] | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(Qhat, mask) per trajectory of the batch, shaped like its values and on their device
    (prm.targets.step_targets with this run's labels and TD settings).

    values (and q_prev, Q_{-1} per trajectory, used by td_form="literal") must come from a
    deterministic pass of the current model (`target_values`).
    """
    tgt = step_targets(args.labels, enc, trajs, values, q_prev, mc_table, args.gamma, args.lam, args.td_form)
    return [(t.to(v.device), m.to(v.device)) for (t, m), v in zip(tgt, values, strict=True)]


def target_values(model, batch, pad_id: int, values, q_prev):
    """The (values, Q_{-1}) TD targets are built from: the training pass's own, detached, when that
    pass is deterministic (no active dropout); otherwise a separate eval-mode pass without gradient.
    Either way two calls on the same batch and weights give identical targets."""
    if not has_dropout(model):
        return [v.detach() for v in values], [p.detach() for p in q_prev]
    model.eval()
    try:
        with torch.no_grad():
            return step_values(model, batch, pad_id)
    finally:
        model.train()


def _heldout_pass(
    args: Args, model, enc, held, mc_table, pad_id: int
) -> tuple[list[torch.Tensor], float, float]:
    """(M_0..M_T per held-out trajectory, L_Q, L_A) of the model against its own labels (td targets
    from these same values, with Q_{-1} for the literal form), eval mode, no gradient.
    enc = prm.batch.encode(held), rendered once for scoring and targets."""
    q_prev: list[torch.Tensor] = []  # Q_{-1} per encoded trajectory (the literal TD form uses it)
    values = score_encoded(model, enc, len(held), pad_id, q_prev=q_prev)
    tgt = targets_for(args, enc, [values[e.index] for e in enc], held, mc_table, q_prev)
    v, _ = pad([values[e.index] for e in enc])
    t, _ = pad([x for x, _ in tgt])
    m, _ = pad([x for _, x in tgt])
    return values, float(loss_q(v, t, m)), float(loss_a(v, t, m))


def heldout_loss(args: Args, model, enc, held, mc_table, pad_id: int) -> dict:
    """The model's own objective on held-out trajectories: L_Q, L_A and L_Q + beta L_A against its
    own labels, plus the sibling accuracy. The curve this traces picks --keep best."""
    values, lq, la = _heldout_pass(args, model, enc, held, mc_table, pad_id)
    sib, _ = sibling_accuracy(held, values)
    return {
        "heldout/loss": lq + args.beta * la,
        "heldout/loss_q": lq,
        "heldout/loss_a": la,
        "heldout/sibling_accuracy": sib,
    }


def heldout_diagnostics(args: Args, model, tokenizer, env: str, held, mc_table, run: Path) -> dict:
    """Diagnostics on held-out tasks, written to diagnostics.json and value_distribution.png."""
    enc = encode(env, held, tokenizer, args.max_prompt_tokens)
    values, lq, la = _heldout_pass(args, model, enc, held, mc_table, tokenizer.pad_token_id)
    sib, n_pairs = sibling_accuracy(held, values)
    sib_success, n_success = sibling_accuracy(held, values, by="success")
    mc_rho, mc_n = float("nan"), 0
    if args.mc_labels is not None:  # Spearman of M_t against soft MC estimates of Q on the same states
        soft = load_mc(args.mc_labels, hard=False)
        pairs = [
            (float(values[i][k]), float(soft[(t.task, t.sample)][k]))
            for i, t in enumerate(held)
            if (t.task, t.sample) in soft
            for k in range(t.num_steps)
        ]
        mc_n = len(pairs)
        if pairs:
            mc_rho = spearman([a for a, _ in pairs], [b for _, b in pairs])
    out = {
        "trajectories": len(held),
        "heldout/loss_q": lq,
        "heldout/loss_a": la,
        "heldout/sibling_accuracy": sib,
        "heldout/sibling_pairs": n_pairs,
        "heldout/final_step_accuracy": final_step_accuracy(held, values),
        # the same two on success-vs-failure pairs only (BabyAI rewards also differ between successes)
        "heldout/sibling_accuracy_success": sib_success,
        "heldout/sibling_pairs_success": n_success,
        "heldout/final_step_accuracy_success": final_step_accuracy(held, values, by="success"),
        "heldout/mc_spearman": mc_rho,
        "heldout/mc_states": mc_n,
    }
    rundir.atomic_write_text(run / "diagnostics.json", json.dumps(rundir.jsonable(out), indent=2) + "\n")
    value_histogram(
        held,
        values,
        run / "value_distribution.png",
        f"{env} held-out, {args.labels} labels, beta={args.beta}",
    )
    print(
        "held-out: "
        + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in out.items())
    )
    return out


def main(args: Args) -> dict:
    try:
        args = dataclasses.replace(args, beta=beta_for(args.labels, args.beta))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if args.threads:
        torch.set_num_threads(args.threads)
    main_proc = accelerator.is_main_process
    run = rundir.prepare(args.run_dir, args) if main_proc else Path(args.run_dir)
    rundir.listen_for_checkpoint_signal()  # every process (prepare does it on the main one)
    env = E.short_name(args.env)
    random.seed(args.seed)

    # 1. Data: rollouts, split by task into train / held-out.
    trajs = [t for t in read_trajectories(args.data) if t.env == env and t.num_steps > 0]
    if args.labels == "mc" and args.mc_labels is None:
        raise SystemExit("--labels mc needs --mc-labels FILE (from `agentprm mc-label`)")
    mc_table = load_mc(args.mc_labels, args.mc_hard) if args.labels == "mc" else None
    if args.labels == "mc":
        trajs = [
            t for t in trajs if (t.task, t.sample) in mc_table
        ]  # MC labels exist for seed trajectories only
    if args.heldout_tasks is not None:
        present = {t.task for t in trajs}
        held_tasks = set(jsonl.read_object(args.heldout_tasks, ("heldout",))["heldout"]) & present
        train_tasks = present - held_tasks
    else:
        train_tasks, held_tasks = split_tasks([t.task for t in trajs], args.heldout, args.seed)
    if main_proc:
        (run / "split.json").write_text(
            json.dumps({"train": sorted(train_tasks), "heldout": sorted(held_tasks)})
        )
    train = [t for t in trajs if t.task in train_tasks]
    if not train:
        raise SystemExit(f"no training trajectories for {env} in {args.data}")

    # 2. Model: value head on the SFT policy / a pretrained backbone, or a preset from scratch.
    preset = args.model in PRESETS
    if preset:
        tokenizer = env_tokenizer(env, trajs)
        model = build_value_model(args.model, tokenizer, seed=args.seed, head_dropout=args.head_dropout)
    else:
        model, tokenizer = load_value_model(
            args.model, device="cpu", seed=args.seed, head_dropout=args.head_dropout
        )
    lr = (
        args.lr
        if args.lr is not None
        else (1e-4 if preset or sum(p.numel() for p in model.parameters()) < 5e7 else 1e-6)
    )
    encoded = encode(env, train, tokenizer, args.max_prompt_tokens)
    steps_per_epoch = math.ceil(len(encoded) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    if main_proc:
        print(
            f"train-prm ({args.labels}, beta={args.beta}): {len(encoded)} train trajectories of "
            f"{len(train_tasks)} tasks, {len(held_tasks)} held-out tasks, {total} steps, lr {lr}, "
            f"{accelerator.num_processes} process(es)"
        )

    held = [t for t in trajs if t.task in held_tasks]
    if args.eval_every and not held:
        raise SystemExit("--eval-every needs held-out tasks: --heldout > 0 with more than one task")
    held_enc = encode(env, held, tokenizer, args.max_prompt_tokens) if args.eval_every else []

    # 3. Resume.
    step, train_tokens = 0, 0
    ckpt_path = Path(args.run_dir) / "checkpoint.pt"
    best_path = Path(args.run_dir) / "best.pt"  # weights of the lowest held-out loss so far
    best = {"step": None, "loss": math.inf}
    if best_path.exists():
        best = {
            k: v
            for k, v in torch.load(best_path, weights_only=False, map_location="cpu").items()
            if k != "model"
        }
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        accelerator.unwrap_model(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = ckpt["step"]
        rundir.set_rng_state(ckpt.get("rng"))
        train_tokens = int(ckpt.get("train_tokens", 0))
        if main_proc:
            rundir.rewind_metrics(run, "step", step)  # what ran after the checkpoint is redone
            print(f"resumed from {ckpt_path} at step {step}/{total}")

    def evaluate_heldout() -> None:
        """Held-out loss at this step (main process; the others wait); keeps the best weights."""
        accelerator.wait_for_everyone()
        if main_proc:
            unwrapped = accelerator.unwrap_model(model)
            out = heldout_loss(args, unwrapped, held_enc, held, mc_table, tokenizer.pad_token_id)
            rundir.log_metrics(run, {"step": step, **out})
            if out["heldout/loss"] < best["loss"]:
                best.update(step=step, loss=out["heldout/loss"])
                rundir.save_checkpoint({"model": unwrapped.state_dict(), **best}, best_path)
        accelerator.wait_for_everyone()

    def checkpoint() -> None:
        accelerator.wait_for_everyone()
        if main_proc:
            rundir.save_checkpoint(
                {
                    "model": accelerator.unwrap_model(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "rng": rundir.rng_state(),
                    "train_tokens": train_tokens,
                },
                ckpt_path,
            )

    # 4. Train (Algorithm 1).
    model.train()
    rank, world = accelerator.process_index, accelerator.num_processes
    start = time.time()
    guard = start + 60 * args.time_guard_minutes if args.time_guard_minutes else None
    columns = [
        TextColumn("train-prm"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=True, disable=not main_proc) as bar:
        job = bar.add_task("prm", total=total, completed=step, loss=float("nan"))
        while step < total:
            epoch, offset = divmod(step, steps_per_epoch)
            order = list(range(len(encoded)))
            random.Random(args.seed * 1000 + epoch).shuffle(order)
            for b in range(offset, steps_per_epoch):
                global_batch = [encoded[i] for i in order[b * args.batch_size : (b + 1) * args.batch_size]]
                local = global_batch[rank::world]
                values, q_prev = step_values(model, local, tokenizer.pad_token_id) if local else ([], [])
                if args.labels == "td" and local:  # targets from a deterministic pass (no gradient)
                    tv, tp = target_values(model, local, tokenizer.pad_token_id, values, q_prev)
                else:
                    tv, tp = values, q_prev
                tgt = targets_for(args, local, tv, train, mc_table, tp)
                # Normalise by GLOBAL counts so every process's gradient is its share of the global mean
                # (DDP averages gradients over processes, hence the factor `world`).
                if local:
                    v, _ = pad(values)
                    t, _ = pad([x for x, _ in tgt])
                    m, _ = pad([x for _, x in tgt])
                    pair = m[:, 1:] * m[:, :-1]
                    n_tokens = sum(len(s.ids) for e in local for s in e.segments)
                    counts = torch.tensor([m.sum(), pair.sum(), n_tokens], device=accelerator.device)
                else:
                    counts = torch.zeros(3, device=accelerator.device)
                counts = accelerator.reduce(counts.float(), reduction="sum")
                train_tokens += int(counts[2])
                counts = counts[:2].clamp(min=1)
                if local:
                    loss, parts = prm_loss(v, t, m, args.beta, counts=counts, world=world)
                    lq, la = (
                        torch.tensor(parts[k], device=accelerator.device)
                        for k in ("train/loss_q", "train/loss_a")
                    )
                else:  # keep every process in the collective even with an empty share
                    lq = la = sum(p.sum() * 0.0 for p in model.parameters())
                    loss = lq + args.beta * la
                optimizer.zero_grad(set_to_none=True)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                step += 1
                logs = accelerator.reduce(torch.stack([lq.detach(), la.detach()]), reduction="mean")
                if main_proc:
                    bar.update(job, completed=step, loss=float(logs[0] + args.beta * logs[1]))
                    rundir.log_metrics(
                        run,
                        {
                            "step": step,
                            "epoch": epoch,
                            "train/loss": float(logs[0] + args.beta * logs[1]),
                            "train/loss_q": float(logs[0]),
                            "train/loss_a": float(logs[1]),
                        },
                    )
                # evaluate before checkpointing: a checkpoint at step s implies its evaluation is logged
                # (a kill in between re-evaluates from the last checkpoint; the report keeps one per step)
                if args.eval_every and (step % args.eval_every == 0 or step == total):
                    evaluate_heldout()
                # kill -USR1 (a session or job about to end): every process checkpoints together
                asked = rundir.checkpoint_asked()
                if world > 1:
                    asked = bool(
                        accelerator.reduce(
                            torch.tensor(float(asked), device=accelerator.device), reduction="sum"
                        )
                        > 0
                    )
                if step % args.save_every == 0:
                    checkpoint()
                elif asked:
                    checkpoint()
                    if main_proc:
                        print(f"train-prm: checkpoint at step {step}/{total} (asked by SIGUSR1)", flush=True)
                if step >= total:
                    break
                rundir.check_time_guard(
                    guard, f"train-prm ({args.run_dir})", args.time_guard_minutes, step, total, checkpoint
                )
    checkpoint()

    # 5. Save the PRM as an HF token-classification folder (atomic rename).
    summary = {
        "steps": step,
        "total_steps": total,
        "train_tokens": train_tokens,
        "labels": args.labels,
        "beta": args.beta,
        "minutes": round((time.time() - start) / 60, 2),
        "keep": args.keep,
    }
    accelerator.wait_for_everyone()
    if main_proc:
        unwrapped = accelerator.unwrap_model(model)
        if args.eval_every:
            summary.update(best_step=best["step"], best_heldout_loss=best["loss"])
        if args.keep == "best" and best["step"] is not None:
            unwrapped.load_state_dict(torch.load(best_path, weights_only=False, map_location="cpu")["model"])
            summary["selected_step"] = best["step"]
        out = rundir.save_model(unwrapped, tokenizer, run / "model")
        summary["model"] = str(out)
        # what report / evaluate read: each reward model's optimizer steps and training tokens
        rundir.atomic_write_text(run / "summary.json", json.dumps(rundir.jsonable(summary), indent=2) + "\n")
        # 6. Held-out diagnostics of the saved weights: loss terms, sibling-pair and final-step
        # ranking, Figure 7.
        if held:
            summary["heldout"] = heldout_diagnostics(args, unwrapped, tokenizer, env, held, mc_table, run)
        rundir.log_metrics(run, {"stage": "done", **summary})
        print(f"train-prm done: {summary}")
    return summary
