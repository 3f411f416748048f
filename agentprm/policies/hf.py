"""Local transformers policy: batched generation with left padding, one call for many states.

Works with any HF causal-LM folder (the tiny presets saved by `agentprm sft`, SmolLM2-135M converted
from its GGUF, Qwen2.5-*-Instruct on GPU). fp32 on CPU, bf16 on CUDA. Generation stops at the end
of the assistant turn (the tokenizer's eos, "<|im_end|>" for ChatML models).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, StaticCache, StoppingCriteria, StoppingCriteriaList

from agentprm.policies.prefix_cache import (
    CachedDecoder,
    PrefixStore,
    build_batch,
    cut_after_action,
    turn_over,
)
from agentprm.policy import Generation, Messages, SamplingParams, cut_at_stop, derive_seed
from agentprm.prompts import to_text, token_counter, token_encoder


class _TurnOver(StoppingCriteria):
    """Stops each sequence once its new text holds a completed action line (after_action) or one of
    the stop strings (per-sequence flags, prefix_cache.turn_over).

    Cheap per step: only sequences whose newest token is a trigger (a newline for the action line,
    a token that can complete a stop string) are decoded and checked.
    """

    def __init__(
        self, tokenizer, prompt_width: int, triggers: torch.Tensor, stop: tuple[str, ...], after_action: bool
    ):
        self.tokenizer, self.prompt_width, self.triggers = tokenizer, prompt_width, triggers
        self.stop, self.after_action = stop, after_action
        self.done: torch.Tensor | None = None
        self.lengths: dict[int, int] = {}  # row -> new tokens up to the token that ended its turn

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        last = input_ids[:, -1]
        check = torch.isin(last, self.triggers.to(last.device)) & ~self.done
        for b in check.nonzero().flatten().tolist():
            if turn_over(self.tokenizer, input_ids[b, self.prompt_width :], self.stop, self.after_action):
                self.done[b] = True
                self.lengths[b] = input_ids.shape[1] - self.prompt_width
        return self.done.clone()


class HFPolicy:
    """Policy over a transformers causal LM and its tokenizer (with a chat template).

    Args:
        model, tokenizer: loaded objects (see agentprm.models.loading.load_policy_model).
        batch_size: prompts per generate() call (each expanded to n samples).
        max_prompt_tokens: the renderer's token budget (left truncation); None = no limit.
        static_cache: let generate decode into a preallocated KV cache (transformers' StaticCache)
            instead of one re-concatenated every step; ~2x faster decode steps at batch 64 on CPU.
            Only for the path without prefix_cache: the own decode loop always preallocates.
        prefix_cache: keep every generation's KV cache and prefill only the new tokens of a prompt
            that extends an earlier one (the next round of an episode); see policies/prefix_cache.py.
            Rows then decode in prefix_cache.CachedDecoder's own loop, not transformers' generate.
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
        stop_after_action: bool = True,
        prefix_cache: bool = False,
        cache_entries: int | None = None,
        static_cache: bool = False,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self.name = name or f"hf:{getattr(model.config, '_name_or_path', '') or type(model).__name__}"
        # One memo for prompt fitting (rollout's count_tokens) and generate's own encoding.
        self._encode = token_encoder(tokenizer)
        self.count_tokens = token_counter(tokenizer, self._encode)
        # Small models may run on past their action instead of ending the turn: stop there too.
        self.stop_after_action = stop_after_action
        # Each token's own text, to find the tokens that can end an action line or a stop string.
        self._token_texts = {i: tokenizer.decode([i]) for i in tokenizer.get_vocab().values()}
        self._newline_set = {i for i, text in self._token_texts.items() if "\n" in text} or {
            tokenizer.eos_token_id
        }
        self._triggers: dict[tuple[str, ...], set[int]] = {(): set()}
        self.device = next(model.parameters()).device
        # Entries are needed for one round only: a few batches' worth bounds the memory.
        self.decoder = (
            CachedDecoder(
                model,
                tokenizer,
                PrefixStore(max_entries=cache_entries or 4 * batch_size),
                self._newline_set,
                stop_after_action,
            )
            if prefix_cache
            else None
        )
        self.static_cache = static_cache

    def triggers(self, stop: tuple[str, ...]) -> set[int]:
        """The token ids that can complete one of the stop strings: those holding a stop string's
        last character (a byte-level piece of a multi-byte character decodes to U+FFFD: those too,
        for non-ASCII stops)."""
        if stop not in self._triggers:
            ends = {s[-1] for s in stop if s} | ({"\ufffd"} if any(not s.isascii() for s in stop) else set())
            self._triggers[stop] = {
                i for i, text in self._token_texts.items() if any(c in text for c in ends)
            }
        return self._triggers[stop]

    @property
    def store(self) -> PrefixStore | None:
        """The prefix store (None without prefix_cache)."""
        return self.decoder.store if self.decoder else None

    @torch.no_grad()
    def generate(
        self, states: list[Messages], params: SamplingParams, seeds: list[int] | None = None
    ) -> list[list[Generation]]:
        """params.n Generations per state.

        With per-state `seeds` (what rollout, MC labelling and search pass) and the prefix-cached
        decoder, sample j of state i draws from its own stream seeded by derive_seed(seeds[i], j):
        a response depends on its request only, not on the batch it landed in, so a resumed run
        draws what an uninterrupted one does. Otherwise (no seeds, or transformers' generate
        without the prefix cache) each chunk draws from torch's generator seeded by params.seed."""
        if seeds is not None and len(seeds) != len(states):
            raise ValueError(f"{len(seeds)} seeds for {len(states)} states: give one seed per state")
        texts = [to_text(self.tokenizer, m) for m in states]
        # Batch similar lengths together (less left padding), then restore the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        texts = [texts[i] for i in order]
        sorted_seeds = [seeds[i] for i in order] if seeds is not None else None
        results: list[list[Generation]] = []
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            rows = [list(self._encode(t)) for t in chunk]
            prompt_lens = [len(r) for r in rows]
            hits = [self.store.lookup(r) for r in rows] if self.store else [(0, None)] * len(rows)
            if self.decoder:
                hits = self.decoder.prefill(rows, hits)
            # n samples per prompt = n copies of its row (rows b*n .. b*n+n-1).
            rows_n = [r for r in rows for _ in range(params.n)]
            hits_n = [h for h in hits for _ in range(params.n)]
            # After prefill every row has exactly one uncached token: decode with our own loop.
            own = self.store is not None and all(
                0 < n == len(r) - 1 for r, (n, _) in zip(rows_n, hits_n, strict=True)
            )
            room = params.max_new_tokens if own else 0
            ids, att, kv = build_batch(rows_n, hits_n, self.tokenizer.pad_token_id, self.device, room)
            if params.seed is not None:
                torch.manual_seed(params.seed + start)
            row_seeds = None
            if sorted_seeds is not None:
                chunk_seeds = sorted_seeds[start : start + self.batch_size]
                row_seeds = [derive_seed(s, j) for s in chunk_seeds for j in range(params.n)]
            if own:
                new = self.decoder.decode(rows_n, ids, att, kv, params, row_seeds, self.triggers(params.stop))
            else:
                new = self._generate(rows_n, ids, att, kv, params)
            for b in range(len(chunk)):
                gens = []
                for j in range(params.n):
                    out_ids = new[b * params.n + j]
                    if eos in out_ids:
                        out_ids, reason = out_ids[: out_ids.index(eos) + 1], "stop"
                    else:
                        reason = "length"
                    text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
                    text, cut = cut_at_stop(text, params.stop)
                    if self.stop_after_action:
                        text, after = cut_after_action(text)
                        cut = cut or after
                    if cut:
                        reason = "stop"
                    gens.append(
                        Generation(
                            text=text,
                            prompt_tokens=int(prompt_lens[b]),
                            completion_tokens=len(out_ids),
                            finish_reason=reason,
                        )
                    )
                results.append(gens)
        restored: list[list[Generation]] = [[] for _ in results]
        for pos, i in enumerate(order):
            restored[i] = results[pos]
        return restored

    def _generate(self, rows, ids, att, kv, params: SamplingParams) -> list[list[int]]:
        """transformers' generate over the batch -> each row's new token ids, ending at its eos,
        action line or stop string (generate pads a finished row until the whole batch is done: cut
        here)."""
        sample = params.temperature > 0
        triggers = self.triggers(params.stop) | (self._newline_set if self.stop_after_action else set())
        stop = _TurnOver(
            self.tokenizer,
            ids.shape[1],
            torch.tensor(sorted(triggers), dtype=torch.long),
            params.stop,
            self.stop_after_action,
        )
        out = self.model.generate(
            input_ids=ids,
            attention_mask=att,
            past_key_values=self._cache(kv, ids.shape, params.max_new_tokens),
            do_sample=sample,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None,
            top_k=0 if sample else None,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            return_dict_in_generate=True,
            stopping_criteria=StoppingCriteriaList([stop] if triggers else []),
        )
        new = out.sequences[:, ids.shape[1] :].tolist()
        eos = self.tokenizer.eos_token_id
        for b, gen in enumerate(new):
            end = min(gen.index(eos) + 1 if eos in gen else len(gen), stop.lengths.get(b, len(gen)))
            new[b] = gen[:end]
            if self.decoder is not None:
                self.decoder.store_row(rows[b], att[b], new[b], out.past_key_values, b)
        return new

    def _cache(self, kv, shape, max_new_tokens: int):
        """The generation cache, holding the reused prefixes' keys/values when there are any."""
        if not self.static_cache:
            return DynamicCache(ddp_cache_data=kv) if kv is not None else None
        cache = StaticCache(config=self.model.config, max_cache_len=shape[1] + max_new_tokens)
        if kv is not None:
            for layer, (k, v) in enumerate(kv):
                cache.update(k, v, layer)  # fills positions 0..width_c-1
        return cache
