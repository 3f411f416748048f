"""The PRM M_phi(s_t, a_t): a causal transformer with a scalar head, one value per step.

It is an ordinary token-classification model with one label (transformers'
*ForTokenClassification: backbone + Linear(hidden, 1) on every position), so the saved folder loads
with AutoModelForTokenClassification alone and can be served by anyone. The value of step t is the
head's output at the end-of-turn token closing a_t (see prompts.Segment): with causal attention it
sees exactly (s_t, a_t), so ONE forward pass over a rendered trajectory gives every M_t.

The head has no dropout unless asked (`head_dropout`): transformers' token-classification head
applies dropout 0.1 by default, which made the training-mode values (and TD targets built from
them) stochastic. With `head_dropout=0` and Qwen2's attention dropout 0, a training-mode forward
pass is deterministic.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    Qwen2Config,
    Qwen2ForTokenClassification,
)

from agentprm import jsonl
from agentprm.models.loading import default_dtype, load_tokenizer
from agentprm.models.presets import PRESETS


def build_value_model(
    preset: str, tokenizer, seed: int = 0, head_dropout: float = 0.0
) -> Qwen2ForTokenClassification:
    """A fresh value model of a preset size (fp32, seeded), dropout `head_dropout` before the head."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)} or give an HF folder")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        classifier_dropout=head_dropout,
        **PRESETS[preset],
    )
    torch.manual_seed(seed)
    return Qwen2ForTokenClassification(config).float()


def reward_model_folder(path: str | os.PathLike) -> Path:
    """The HF folder of a reward model given as a train-prm run dir (its model/) or as the folder."""
    path = Path(path)
    return path / "model" if (path / "model" / "config.json").exists() else path


def train_prm_run_args(path: str | os.PathLike) -> dict | None:
    """How a reward model given as a train-prm run dir was trained: its args.json (labels, beta,
    max_prompt_tokens, ...) with steps, total_steps and train_tokens from its summary.json when there
    is one; None for a bare HF folder. Evaluate reports it, serve takes its renderer budget."""
    path = Path(path)
    if reward_model_folder(path) == path or not (path / "args.json").exists():
        return None
    info = jsonl.read_object(path / "args.json")
    if (path / "summary.json").exists():
        summary = jsonl.read_object(path / "summary.json")
        info.update({k: summary.get(k) for k in ("steps", "total_steps", "train_tokens")})
    return info


def load_value_model(
    path: str | os.PathLike,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    head_dropout: float = 0.0,
):
    """(model, tokenizer) from an HF folder: a saved PRM, or a policy/backbone (a new head is added).

    Initialising the PRM from the SFT policy (or a pretrained LM) is the paper's setting. The head's
    dropout is set to `head_dropout` whatever the folder's config says (0: deterministic values).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not an HF model folder (no config.json)")
    torch.manual_seed(seed)  # the new head's initialisation, when there is one
    config = AutoConfig.from_pretrained(path, num_labels=1)
    config.classifier_dropout = head_dropout  # Qwen2Config has no such field: the head reads it if set
    model = AutoModelForTokenClassification.from_pretrained(
        path, config=config, dtype=dtype or default_dtype(device)
    )
    tok = load_tokenizer(path)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return model.to(device), tok


def has_dropout(model) -> bool:
    """True when a training-mode forward pass of `model` is stochastic (an active dropout anywhere)."""
    config = getattr(model, "config", None)
    if model.training and float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0:
        return True
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 and m.training for m in model.modules())


def token_values(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) token ids -> (B, L) head outputs (fp32) at every position."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, L, 1)
    return logits[..., 0].float()
