"""Local transformers policy: batched generation with left padding, one call for many states.

Works with any HF causal-LM folder (the tiny presets saved by `agentprm sft`, SmolLM2-135M converted
from its GGUF, Qwen2.5-*-Instruct on GPU). fp32 on CPU, bf16 on CUDA. Generation stops at the end
of the assistant turn (the tokenizer's eos, "<|im_end|>" for ChatML models).
"""

from __future__ import annotations

import torch

from agentprm.policy import Generation, Messages, SamplingParams
from agentprm.prompts import to_text, token_counter


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    # bf16 matmuls are 5-7x slower than fp32 on this kind of CPU; bf16 is the norm on GPUs.
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


class HFPolicy:
    """Policy over a transformers causal LM and its tokenizer (with a chat template).

    Args:
        model, tokenizer: loaded objects (see agentprm.models.loading.load_policy_model).
        batch_size: prompts per generate() call (each expanded to n samples).
        max_prompt_tokens: the renderer's token budget (left truncation); None = no limit.
    Example:
        policy = HFPolicy(model, tok)
        outs = policy.generate([messages], SamplingParams(n=2, temperature=1.0))
        outs[0][0].text  # "Thought:\\n...\\n\\nAction:\\nturn left"
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        batch_size: int = 32,
        max_prompt_tokens: int | None = None,
        name: str | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self.name = name or f"hf:{getattr(model.config, '_name_or_path', '') or type(model).__name__}"
        self.count_tokens = token_counter(tokenizer)
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def generate(self, states: list[Messages], params: SamplingParams) -> list[list[Generation]]:
        texts = [to_text(self.tokenizer, m) for m in states]
        out: list[list[Generation]] = []
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(
                self.device
            )
            prompt_lens = enc["attention_mask"].sum(dim=1).tolist()  # (B,)
            if params.seed is not None:
                torch.manual_seed(params.seed + start)
            sample = params.temperature > 0
            generated = self.model.generate(
                **enc,
                do_sample=sample,
                temperature=params.temperature if sample else None,
                top_p=params.top_p if sample else None,
                top_k=0 if sample else None,
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=params.n,
                eos_token_id=eos,
                pad_token_id=self.tokenizer.pad_token_id,
            )  # (B * n, prompt_len + new)
            new = generated[:, enc["input_ids"].shape[1] :]
            for b in range(len(chunk)):
                gens = []
                for j in range(params.n):
                    ids = new[b * params.n + j].tolist()
                    if eos in ids:
                        ids, reason = ids[: ids.index(eos) + 1], "stop"
                    else:
                        reason = "length"
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    gens.append(
                        Generation(
                            text=text,
                            prompt_tokens=int(prompt_lens[b]),
                            completion_tokens=len(ids),
                            finish_reason=reason,
                        )
                    )
                out.append(gens)
        return out
