"""Model presets built from transformers' Qwen2 config, created from scratch (fp32, seeded).

tiny: ~4.5M parameters with a 2048-token vocabulary, the demo's default (about 1.6 s per 16x256
      training step on a 2-core CPU).
small: ~12M parameters (2048-token vocabulary), ~2.6x tiny's compute: a bigger backbone for testing
      whether a reward model's capacity limits it (benchmarks/prm_capacity.py).
test: ~0.1M parameters, for unit tests.
"""

from __future__ import annotations

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

PRESETS = {
    "tiny": dict(
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=5,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    ),
    "small": dict(
        hidden_size=384,
        intermediate_size=1152,
        num_hidden_layers=6,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    ),
    "test": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
    ),
}


def build_model(preset: str, tokenizer, seed: int = 0) -> Qwen2ForCausalLM:
    """A fresh causal LM of `preset` size for `tokenizer`'s vocabulary (weights seeded by `seed`).

    >>> from agentprm.models.tokenizer import train_tokenizer
    >>> tok = train_tokenizer(["Action: turn left"] * 10, vocab_size=300)
    >>> sum(p.numel() for p in build_model("test", tok).parameters()) < 200_000
    True
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)} or give an HF folder")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **PRESETS[preset],
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).float()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
