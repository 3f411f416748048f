"""`agentprm export-labels`: the PRM's training labels as a Hugging Face dataset for TRL's PRMTrainer.

Each trajectory's per-step targets Qhat_t are the ones `agentprm train-prm` trains on (td, mc, pvm,
orm: agentprm/prm/labels.py), written in TRL's "stepwise supervision" format (--format trl-stepwise),
one row per rendered sequence:
    prompt       str: the chat-template text before the first labelled response (instruction,
                 "OK.", o_0, then, in a later row or for orm, the earlier turns the prompt keeps)
    completions  list[str], ONE PER STEP: completions[0] is a_t; each later one is the rest of the
                 previous turn, the observation o_t that followed and a_t, so that
                 prompt + sep.join(completions) + sep is the rendered text up to the last action's
                 end-of-turn token, where sep = the tokenizer's eos token (`step_separator`)
    labels       list[bool]: targets[i] >= --threshold
    targets      list[float]: the real-valued Qhat_t
    steps        list[int]: the step index t of each completion
    env, task, sample, outcome (r), success: which trajectory the row comes from
Example row (babyai, ChatML template, a trajectory of two steps, pvm labels):
    {"prompt": "<|im_start|>user\\n<instruction><|im_end|>\\n<|im_start|>assistant\\nOK. ...<|im_end|>\\n"
               "<|im_start|>user\\n<o_0><|im_end|>\\n<|im_start|>assistant\\n",
     "completions": ["<a_0>", "\\n<|im_start|>user\\n<o_1><|im_end|>\\n<|im_start|>assistant\\n<a_1>"],
     "labels": [True, True], "targets": [0.99, 0.99], "steps": [0, 1], "env": "babyai", "task": 405,
     "sample": 0, "outcome": 0.99, "success": True}

Why this shape (TRL's PRMTrainer.tokenize_row, trl <= 1.13): the stepwise type exists in the standard
(text) format only and the prompt is tokenized as it is, with no chat template, so the prompt is text
rendered by --model's chat template (prompts.to_text). TRL appends `step_separator` to every completion
and classifies its LAST token; with step_separator = eos that token is the end-of-turn token closing
a_t, which is where our PRM reads M(s_t, a_t) (prompts.readout_index): the label of step t is predicted
from exactly (s_t, a_t). Train with
    PRMConfig(step_separator=<the `step_separator` this command prints>)
on AutoModelForTokenClassification(num_labels=2) and the same tokenizer (the tiny models' tokenizer
loads with PreTrainedTokenizerFast.from_pretrained, see models.loading.load_tokenizer).
TRL versions: PRMTrainer lives in trl.experimental.prm up to trl 1.13; later releases removed it
(huggingface/trl#7133), and with it TRL's only consumer of this format: pin trl<=1.13 to train.

Binarisation: TRL classifies each step (labels are booleans, cross-entropy over 2 classes), while
our targets are real-valued (td: TD(lambda) values; mc soft: mean outcomes; pvm/orm: the outcome, which
BabyAI grades in [0, 1]). labels = targets >= --threshold (default 0.5: success-like); the real
values stay in `targets` for a regression loss of your own.
Rows follow train-prm's rendering, including the --max-prompt-tokens left-truncation: a trajectory
that fits is one row; a longer one is one row per training sequence (prompts.training_segments).
Steps without a target (orm: all but the last) go into the prompt, so every completion is labelled
and an orm row is the full history with its last action as the single completion.
td: the targets come from --model's predictions (a trained PRM, or the policy with a fresh head), one
deterministic eval-mode pass, exactly as train-prm builds them from its current model. train-prm
recomputes them every batch as the model learns (Algorithm 1); exported, they are a fixed snapshot.
Everything is exported (no held-out split): `task` is there to split by task.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import torch

import agentprm.envs as E
from agentprm import rundir
from agentprm import validate as V
from agentprm.models.loading import load_tokenizer
from agentprm.models.presets import PRESETS
from agentprm.prm.batch import encode, score_encoded
from agentprm.prm.targets import load_mc, step_targets
from agentprm.prm.value import load_value_model
from agentprm.prompts import Segment, fit_drops, segment_text, token_counter
from agentprm.types import Trajectory, read_trajectories


@dataclasses.dataclass
class Args:
    data: Path = Path("runs/collect/trajectories.jsonl")
    """trajectories from `agentprm collect`"""
    env: str = "babyai"
    """environment of the trajectories"""
    labels: str = "td"
    """td (AgentPRM, needs --model's predictions), mc (Math-Shepherd, needs --mc-labels), pvm, orm"""
    mc_labels: Path | None = None
    """JSONL from `agentprm mc-label`: the labels with --labels mc (only its seed trajectories are exported)"""
    mc_hard: bool = True
    """MC estimate: hard (any rollout succeeds) or soft (mean outcome), as train-prm --mc-hard"""
    model: str = "runs/prm/model"
    """HF folder whose chat template renders the text (use the tokenizer of the model you will train);
    with --labels td also the PRM whose predictions the TD targets bootstrap from"""
    format: str = "trl-stepwise"
    """output format: trl-stepwise (TRL's stepwise supervision: prompt, completions, labels)"""
    threshold: float = 0.5
    """labels = targets >= threshold (TRL classifies steps; `targets` keeps the real values)"""
    td_form: str = "standard"
    """TD indexing, as train-prm --td-form: standard or literal"""
    gamma: float = 1.0
    """discount, as train-prm --gamma"""
    lam: float = 0.95
    """GAE lambda, as train-prm --lam (paper: 0.95)"""
    max_prompt_tokens: int | None = 512
    """the renderer's budget, as train-prm --max-prompt-tokens (None: never truncate, one row per trajectory)"""
    out: Path = Path("runs/labels/trl")
    """output folder: datasets.Dataset.save_to_disk (+ args.json); a previous export there is replaced"""
    batch_size: int = 16
    """trajectories per forward pass (td)"""
    device: str | None = None
    """device of the td pass (default: cuda when available, else cpu); fp32 either way, as train-prm"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        V.one_of(self, "labels", ("td", "mc", "pvm", "orm"))
        V.one_of(self, "format", ("trl-stepwise",))
        V.one_of(self, "td_form", ("standard", "literal"))
        V.within(self, "threshold", 0.0, 1.0, low_open=True)
        V.within(self, "gamma", 0.0, 1.0, low_open=True)
        V.within(self, "lam", 0.0, 1.0)
        V.at_least(self, 1, "max_prompt_tokens", "batch_size")
        if self.labels == "mc" and self.mc_labels is None:
            raise ValueError("--labels mc needs --mc-labels FILE (from `agentprm mc-label`)")


def stepwise_rows(
    env: str,
    traj: Trajectory,
    segments: list[Segment],
    tokenizer,
    budget: int | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    threshold: float,
) -> list[dict]:
    """TRL stepwise-supervision rows (module docstring) of one trajectory: one per training segment
    with at least one labelled step; targets and mask are its (T+1,) labels.

    Each segment is re-rendered exactly as prompts.training_segments renders it (same dropped turns),
    and the text is cut at each response's start and end: the cut points are the span rule that
    training_segments uses for its loss mask and readout.
    """
    sep = tokenizer.eos_token
    responses = [s.response for s in traj.steps]
    drops = fit_drops(env, traj.state(traj.num_steps), token_counter(tokenizer), budget)[:-1]
    rows = []
    for seg in segments:
        first, last = seg.steps[0], seg.steps[-1]
        text, spans = segment_text(env, traj, first, last, drops[first], tokenizer)
        starts, ends = [], []
        for step, (start, end) in zip(seg.steps, spans, strict=True):
            if text[start:end] != responses[step] or text[end : end + len(sep)] != sep:
                raise ValueError(
                    f"the chat template of {tokenizer.name_or_path or 'this tokenizer'} does not close a "
                    f"response with its eos token {sep!r}: TRL's step separator cannot mark the PRM's "
                    "readout; use a model whose template ends each turn with eos (e.g. ChatML)"
                )
            starts.append(start)
            ends.append(end)
        keep = [k for k, step in enumerate(seg.steps) if mask[step] > 0]
        if not keep:  # nothing to learn here (orm: every segment but the last)
            continue
        if keep != list(range(keep[0], len(seg.steps))):
            raise ValueError("only steps before the first labelled one can be left unlabelled (orm)")
        completions = [text[starts[keep[0]] : ends[keep[0]]]]
        completions += [text[ends[k - 1] + len(sep) : ends[k]] for k in keep[1:]]
        tgt = [float(targets[seg.steps[k]]) for k in keep]
        rows.append(
            {
                "prompt": text[: starts[keep[0]]],
                "completions": completions,
                "labels": [x >= threshold for x in tgt],
                "targets": tgt,
                "steps": [seg.steps[k] for k in keep],
                "env": env,
                "task": traj.task,
                "sample": traj.sample,
                "outcome": float(traj.reward),
                "success": bool(traj.success),
            }
        )
    return rows


def _features(datasets):
    return datasets.Features(
        {
            "prompt": datasets.Value("string"),
            "completions": datasets.List(datasets.Value("string")),
            "labels": datasets.List(datasets.Value("bool")),
            "targets": datasets.List(datasets.Value("float32")),
            "steps": datasets.List(datasets.Value("int32")),
            "env": datasets.Value("string"),
            "task": datasets.Value("int64"),
            "sample": datasets.Value("int64"),
            "outcome": datasets.Value("float32"),
            "success": datasets.Value("bool"),
        }
    )


def main(args: Args) -> dict:
    try:
        import datasets
    except ImportError:
        raise SystemExit("export-labels writes a Hugging Face dataset: pip install 'datasets>=4.7'") from None
    out = Path(args.out)
    if out.exists() and not (out / "dataset_info.json").exists():
        raise ValueError(f"--out {out} exists and is not a dataset folder: choose another --out")
    if args.model in PRESETS or not (Path(args.model) / "config.json").exists():
        raise ValueError(
            f"--model {args.model} is not an HF model folder: give the folder whose tokenizer renders the "
            "text (runs/sft/model) or, for td, a trained PRM (runs/prm/model)"
        )
    env = E.short_name(args.env)

    # 1. Trajectories: the ones train-prm would train on (MC: the seeds that have labels).
    trajs = [t for t in read_trajectories(args.data) if t.env == env and t.num_steps > 0]
    mc_table = load_mc(args.mc_labels, args.mc_hard) if args.labels == "mc" else None
    if mc_table is not None:
        trajs = [t for t in trajs if (t.task, t.sample) in mc_table]
    if not trajs:
        raise ValueError(f"no {env} trajectories with steps (and labels) in {args.data}")
    unknown = [t.key for t in trajs if math.isnan(t.reward)]
    if unknown:
        raise ValueError(
            f"{len(unknown)} trajectories have no outcome (reward null), e.g. {unknown[0]}: drop them"
        )

    # 2. Rendering, and for td the model's values M_0..M_T and Q_{-1} (eval mode, no gradient).
    values = q_prev = None
    if args.labels == "td":
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, tokenizer = load_value_model(args.model, device=device, dtype=torch.float32)
        enc = encode(env, trajs, tokenizer, args.max_prompt_tokens)
        q_prev = []
        values = score_encoded(model, enc, len(trajs), tokenizer.pad_token_id, args.batch_size, q_prev=q_prev)
    else:
        tokenizer = load_tokenizer(args.model)
        enc = encode(env, trajs, tokenizer, args.max_prompt_tokens)

    # 3. Per-step targets (train-prm's), then one row per labelled training sequence.
    ordered = None if values is None else [values[e.index] for e in enc]  # step_targets: enc order
    targets = step_targets(
        args.labels, enc, trajs, ordered, q_prev, mc_table, args.gamma, args.lam, args.td_form
    )
    rows = []
    for e, (t, m) in zip(enc, targets, strict=True):
        rows += stepwise_rows(
            env, trajs[e.index], e.segments, tokenizer, args.max_prompt_tokens, t, m, args.threshold
        )

    # 4. Save aside, then rename: a reader never sees half a dataset.
    sep = tokenizer.eos_token
    features = _features(datasets)
    info = datasets.DatasetInfo(
        description=(
            f"agentprm {args.labels} labels of {args.data} for TRL's PRMTrainer (stepwise supervision): "
            f"PRMConfig(step_separator={sep!r}); labels = targets >= {args.threshold}"
        ),
        features=features,
    )
    ds = datasets.Dataset.from_list(rows, features=features, info=info)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    ds.save_to_disk(str(tmp))
    (tmp / "args.json").write_text(json.dumps(rundir.jsonable(args), indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    n_labels = sum(len(r["labels"]) for r in rows)
    summary = {
        "rows": len(rows),
        "trajectories": len(trajs),
        "labelled_steps": n_labels,
        "positive_share": sum(sum(r["labels"]) for r in rows) / max(n_labels, 1),
        "step_separator": sep,
        "out": str(out),
    }
    print(
        f"export-labels: {len(rows)} rows ({len(trajs)} trajectories, {n_labels} steps, "
        f"{summary['positive_share']:.1%} labelled True) in {out}; train with TRL's PRMTrainer and "
        f"PRMConfig(step_separator={sep!r})"
    )
    return summary
