"""`agentprm sft`: supervised fine-tuning of the policy on trajectories (loss on the response
tokens, plus a weighted loss on the prompt tokens with --prompt-loss-weight).

SFT (paper): the policy is initialised on expert trajectories (300, lr 1e-5 for pretrained models).
RFT (the paper's baseline): the same recipe on the policy's OWN successful trajectories, starting
from the SFT model:  agentprm sft --model runs/sft/model --data runs/collect/trajectories.jsonl
                                  --only-success --run-dir runs/rft
With --model tiny|test a tokenizer is trained on the data and the model is created from scratch;
then the defaults are tuned for that preset (lr 1e-3, all trajectories, prompt loss weight 1.0).

The budget is optimizer steps (--epochs, capped by --max-steps; the cosine schedule spans exactly
those steps), never wall-clock time: the same command and seed train the same steps on any
machine. --time-guard-minutes only stops a run that overruns, loudly, with an error.

Resumable: a checkpoint (model, optimizer, scheduler, step) is written atomically every
--save-every steps; re-running the same command continues from it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import time
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

import agentprm.envs as E
from agentprm import rundir
from agentprm import validate as V
from agentprm.envs.math import final_answer
from agentprm.models.loading import load_policy_model
from agentprm.models.presets import PRESETS, build_model
from agentprm.models.tokenizer import env_tokenizer
from agentprm.prm.batch import collate
from agentprm.prompts import training_segments
from agentprm.types import read_trajectories


@dataclasses.dataclass
class Args:
    data: Path = Path("data/babyai_expert.jsonl")
    """trajectories to imitate (JSONL store)"""
    env: str = "babyai"
    """environment of the trajectories (selects the instruction prompt)"""
    model: str = "tiny"
    """a preset (tiny, small, test) created from scratch, an HF folder, or smollm2"""
    run_dir: Path = Path("runs/sft")
    """output: args.json, metrics.jsonl, checkpoint.pt, model/ (HF folder)"""
    only_success: bool = True
    """train only on successful trajectories (SFT on expert data; RFT on own rollouts)"""
    num_trajectories: int | None = None
    """use at most this many trajectories (paper: 300 for pretrained models); None = all"""
    epochs: int = 1
    """passes over the data"""
    lr: float | None = None
    """peak learning rate; default 1e-3 for presets, 1e-5 (paper) for pretrained models"""
    batch_size: int = 8
    """sequences per optimizer step"""
    max_prompt_tokens: int = 512
    """the renderer's budget: older turns are dropped from the left beyond it (same at rollout)"""
    vocab_size: int = 2048
    """tokenizer size for presets"""
    prompt_loss_weight: float | None = None
    """weight of the loss on the prompt's tokens (observations), next to the response loss; default
    1.0 for presets created from scratch (copying object names within observations teaches them
    to copy the goal, benchmarks/README.md), 0 for pretrained models (the paper's SFT)"""
    warmup: float = 0.05
    """share of steps with linear warm-up, then cosine decay to 10%"""
    max_steps: int | None = None
    """at most this many optimizer steps (the schedule is planned over them); default: all --epochs"""
    time_guard_minutes: float | None = None
    """fail (after saving a checkpoint) if training runs longer than this: a guard, never a budget"""
    save_every: int = 50
    """checkpoint every this many steps"""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)"""
    seed: int = 0
    """seeds data order, model init and dropout"""
    overwrite: bool = False
    """start this run dir afresh (delete what it holds) instead of resuming it"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        V.at_least(self, 1, "epochs", "batch_size", "max_prompt_tokens", "save_every", "max_steps", "threads")
        V.at_least(self, 64, "vocab_size")
        V.positive(self, "lr", "time_guard_minutes")
        V.at_least(self, 0.0, "prompt_loss_weight")
        V.within(self, "warmup", 0.0, 1.0, high_open=True)


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches in a seeded random order (less padding than random batches)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(examples: list[tuple[list[int], list[int]]], pad_id: int):
    """-> input_ids, attention, response (Segment.mask: 1 trained response, -1 never trained, 0
    prompt): (B, T) each, right-padded."""
    input_ids, attention = collate([ids for ids, _ in examples], pad_id, "cpu")
    response, _ = collate([mask for _, mask in examples], 0, "cpu")
    return input_ids, attention, response


def _math_mask(seg, tokenizer, final: bool) -> list[int]:
    """A math segment's loss mask (-1: no loss at all): its steps are trained; the solution before
    them and, unless its last step is the final answer, the end-of-turn token are not.

    A segment (training_segments with whole=True) is "<|im_start|>assistant\\n a_0 ... a_{t-1}" then
    its steps, each with its "\\n", and the end-of-turn token. A generated step ends at the stop
    string "\\n" (agentprm.envs.stop_strings), so only the last line of a solution ends the turn: an
    end-of-turn token trained after another step would teach empty steps, since step t+1 follows the
    same text "...a_t\\n". The steps before the segment (left out of its prompt only when a token
    budget cuts the solution) are trained in their own segment: a prompt loss on them here would
    train them twice.

    >>> from types import SimpleNamespace as NS
    >>> tok = NS(convert_tokens_to_ids=lambda t: 7)  # 7 = "<|im_start|>"
    >>> seg = NS(ids=[7, 1, 2, 7, 3, 4, 5, 6], mask=[0, 0, 0, 0, 0, 0, 1, 1], step_ends=[7])
    >>> _math_mask(seg, tok, final=False), _math_mask(seg, tok, final=True)
    ([0, 0, 0, 0, -1, -1, 1, -1], [0, 0, 0, 0, -1, -1, 1, 1])
    """
    mask = list(seg.mask)
    if not final:
        for k in seg.step_ends:
            mask[k] = -1 if mask[k] == 1 else mask[k]
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")  # ChatML (the tiny models, Qwen, SmolLM2)
    if start not in seg.ids:  # another chat template: leave the prompt's mask as it is
        return mask
    last = max(k for k, i in enumerate(seg.ids) if i == start)  # the assistant message's start
    first = mask.index(1) if 1 in mask else len(mask)
    return [-1 if last < k < first and m == 0 else m for k, m in enumerate(mask)]


def sft_loss(logits, input_ids, attention, response, prompt_weight: float = 0.0):
    """Next-token cross-entropy -> (loss to minimise, response loss, prompt loss).

    logits (B, T, V), input_ids / attention / response (B, T). The response loss is the token mean
    over the response tokens (response == 1), the prompt loss over the prompt tokens (response ==
    0, attention == 1); tokens with response == -1 (a rejected response) get no loss. The
    minimised loss is response + prompt_weight * prompt.

    >>> ids = torch.tensor([[1, 2, 3]]); logits = torch.zeros(1, 3, 4)
    >>> total, r, p = sft_loss(logits, ids, torch.ones(1, 3), torch.tensor([[0, 0, 1]]), 0.5)
    >>> round(r.item(), 4), round(p.item(), 4), round(total.item(), 4)  # uniform: ln 4 each
    (1.3863, 1.3863, 2.0794)
    """
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), input_ids[:, 1:].flatten(), reduction="none"
    ).view(input_ids.shape[0], -1)  # (B, T-1): predicting token t+1
    resp = (response[:, 1:] == 1).float()
    prompt = attention[:, 1:].float() * (response[:, 1:] == 0).float()
    r = (ce * resp).sum() / resp.sum().clamp(min=1)
    p = (ce * prompt).sum() / prompt.sum().clamp(min=1)
    return r + prompt_weight * p, r, p


def lr_factor(step: int, total: int, warm: int) -> float:
    """The learning-rate multiplier at optimizer step `step` of `total`: linear warm-up over `warm`
    steps, then a cosine from 1 down to 0.1 at the last step (planned over the step budget).

    >>> [round(lr_factor(s, total=10, warm=2), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.55, 0.1]
    """
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def main(args: Args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    run = rundir.prepare(args.run_dir, args)
    env = E.short_name(args.env)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    # 1. Data: the trajectories to imitate.
    trajs = [t for t in read_trajectories(args.data) if t.env == env and (t.success or not args.only_success)]
    trajs = trajs[: args.num_trajectories]
    if not trajs:
        raise SystemExit(
            f"no usable trajectories for {env} in {args.data} (only_success={args.only_success})"
        )

    # 2. Model and tokenizer: a preset from scratch (tokenizer trained on this data) or a loaded LM.
    preset = args.model in PRESETS
    if preset:
        tokenizer = env_tokenizer(env, trajs, vocab_size=args.vocab_size)
        model = build_model(args.model, tokenizer, seed=args.seed)
    else:
        model, tokenizer = load_policy_model(args.model)
    device = next(model.parameters()).device
    lr = args.lr if args.lr is not None else (1e-3 if preset else 1e-5)
    prompt_weight = (
        args.prompt_loss_weight if args.prompt_loss_weight is not None else (1.0 if preset else 0.0)
    )

    # 3. Encode: each step is trained on exactly the prompt the policy will see (one renderer).
    def mask(traj, seg) -> list[int]:
        if E.family(env) not in E.MATH_ENVS:
            return seg.mask
        return _math_mask(seg, tokenizer, final_answer(traj.steps[seg.steps[-1]].response) is not None)

    examples = [
        (seg.ids, mask(t, seg))
        for t in trajs
        for seg in training_segments(env, t, tokenizer, args.max_prompt_tokens, whole=True)
    ]
    lengths = [len(ids) for ids, _ in examples]
    steps_per_epoch = math.ceil(len(examples) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    print(
        f"sft: {len(trajs)} trajectories -> {len(examples)} sequences (mean {sum(lengths) / len(lengths):.0f} "
        f"tokens), {total} steps, lr {lr}, prompt loss weight {prompt_weight}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"
    )

    # 4. Optimizer, schedule, and resume from the last checkpoint if there is one.
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, int(args.warmup * total))
    step = 0
    ckpt_path = run / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=False) if ckpt_path.exists() else None
    if ckpt is not None:  # a resumed run keeps the schedule it was planned with
        total, warm = ckpt.get("total", total), ckpt.get("warm", warm)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(lr_factor, total=total, warm=warm)
    )
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step = ckpt["step"]
        rundir.set_rng_state(ckpt.get("rng"))
        if preset:
            tokenizer = ckpt["tokenizer"]
        rundir.rewind_metrics(run, "step", step)  # what ran after the checkpoint is redone
        print(f"resumed from {ckpt_path} at step {step}/{total}")

    def checkpoint() -> None:
        rundir.save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "rng": rundir.rng_state(),
                "total": total,
                "warm": warm,
                "tokenizer": tokenizer,
            },
            ckpt_path,
        )

    # 5. Train: token-mean cross-entropy on response tokens (+ prompt_weight x on prompt tokens).
    model.train()
    loss = None
    start, tokens_seen = time.time(), 0
    guard = start + 60 * args.time_guard_minutes if args.time_guard_minutes else None
    columns = [
        TextColumn("sft"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=True) as bar:
        job = bar.add_task("sft", total=total, completed=step, loss=float("nan"))
        while step < total:
            epoch, offset = divmod(step, steps_per_epoch)
            batches = _batches(lengths, args.batch_size, random.Random(args.seed * 1000 + epoch))
            for batch in batches[offset:]:
                input_ids, attention, response = (
                    x.to(device) for x in _collate([examples[i] for i in batch], tokenizer.pad_token_id)
                )
                logits = model(input_ids=input_ids, attention_mask=attention).logits
                total_loss, loss, prompt_loss = sft_loss(
                    logits, input_ids, attention, response, prompt_weight
                )
                optimizer.zero_grad(set_to_none=True)
                total_loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                tokens_seen += int(attention.sum())
                bar.update(job, completed=step, loss=loss.item())
                if step % 10 == 0 or step == total:
                    rundir.log_metrics(
                        run,
                        {
                            "step": step,
                            "epoch": epoch,
                            "train/loss": loss.item(),
                            "train/prompt_loss": prompt_loss.item(),
                            "train/lr": scheduler.get_last_lr()[0],
                            "train/tokens_per_second": tokens_seen / (time.time() - start),
                        },
                    )
                # kill -USR1 (a session or job about to end), read every step as train-prm does: a
                # signal that lands on a regular checkpoint is answered by it, not by one more
                asked = rundir.checkpoint_asked()
                if step % args.save_every == 0:
                    checkpoint()
                elif asked:
                    checkpoint()
                    print(f"sft: checkpoint at step {step}/{total} (asked by SIGUSR1)", flush=True)
                if step >= total:
                    break
                rundir.check_time_guard(
                    guard, f"sft ({args.run_dir})", args.time_guard_minutes, step, total, checkpoint
                )
    checkpoint()

    # 6. Save the policy as an ordinary HF folder (atomically: written aside, then renamed). Its
    # generation config samples by default: servers that start from it (`transformers serve`) then
    # honour a request's temperature > 0 (they leave do_sample as saved); agentprm's own decoding
    # always sets do_sample itself.
    model.generation_config.do_sample = True
    out = rundir.save_model(model, tokenizer, run / "model")
    summary = {
        "steps": step,
        "total_steps": total,
        "final_loss": None if loss is None else loss.item(),
        "minutes": round((time.time() - start) / 60, 2),
        "model": str(out),
    }
    rundir.log_metrics(run, {"stage": "done", **summary})
    print(f"sft done: {summary}")
    return summary
