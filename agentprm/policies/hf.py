"""Local transformers policy: batched generation with left padding, one call for many states.

Works with any HF causal-LM folder (the tiny presets saved by `agentprm sft`, SmolLM2-135M converted
from its GGUF, Qwen2.5-*-Instruct on GPU). fp32 on CPU, bf16 on CUDA. Generation stops at the end
of the assistant turn (the tokenizer's eos, "<|im_end|>" for ChatML models).
"""

from __future__ import annotations

import re

import torch
from transformers import DynamicCache, StaticCache, StoppingCriteria, StoppingCriteriaList

from agentprm.policies.prefix_cache import PrefixStore, build_batch, growing_cache, row_layers
from agentprm.policy import Generation, Messages, SamplingParams
from agentprm.prompts import to_text, token_counter, token_encoder

# A ReAct turn is over once its action line is complete: "Action:" + the command + newline.
_ACTION_DONE = re.compile(r"Action:[ \t]*\n?[ \t]*\S[^\n]*\n")


def cut_after_action(text: str) -> tuple[str, bool]:
    r"""Drop anything a model writes after its completed action line -> (text, was_cut).

    >>> cut_after_action("Thought:\nok\n\nAction:\nturn left\nmore junk")
    ('Thought:\nok\n\nAction:\nturn left', True)
    """
    m = _ACTION_DONE.search(text)
    if m is None:
        return text, False
    return text[: m.end() - 1], True


def _has_action_line(tokenizer, new_ids) -> bool:
    """Whether the generated ids (a list or a 1-D tensor) hold a completed action line."""
    return _ACTION_DONE.search(tokenizer.decode(new_ids, skip_special_tokens=True)) is not None


class _ActionLineDone(StoppingCriteria):
    """Stops each sequence once its new text holds a completed action line (per-sequence flags).

    Cheap per step: only sequences whose newest token contains a newline are decoded and checked.
    """

    def __init__(self, tokenizer, prompt_width: int, newline_ids: torch.Tensor):
        self.tokenizer, self.prompt_width, self.newline_ids = tokenizer, prompt_width, newline_ids
        self.done: torch.Tensor | None = None
        self.lengths: dict[int, int] = {}  # row -> new tokens up to its action line's newline

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        last = input_ids[:, -1]
        check = torch.isin(last, self.newline_ids.to(last.device)) & ~self.done
        for b in check.nonzero().flatten().tolist():
            if _has_action_line(self.tokenizer, input_ids[b, self.prompt_width :]):
                self.done[b] = True
                self.lengths[b] = input_ids.shape[1] - self.prompt_width
        return self.done.clone()


def _choose(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Next tokens (B,) from last-position logits (B, V): argmax at temperature 0, else sampling
    from softmax(logits / temperature) restricted to the top-p nucleus (at least one token)."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_p < 1.0:
        ordered, index = logits.sort(-1)  # ascending, as transformers' TopPLogitsWarper
        drop = ordered.softmax(-1).cumsum(-1) <= 1 - top_p
        drop[:, -1] = False
        logits = logits.scatter(-1, index, ordered.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


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
            Rows then decode in HFPolicy's own loop (`_decode`), not transformers' generate.
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
        vocab = tokenizer.get_vocab()
        self._newline_ids = torch.tensor(
            [i for i in vocab.values() if "\n" in tokenizer.decode([i])] or [tokenizer.eos_token_id]
        )
        self._newline_set = set(self._newline_ids.tolist())
        self.device = next(model.parameters()).device
        # Entries are needed for one round only: a few batches' worth bounds the memory.
        self.store = PrefixStore(max_entries=cache_entries or 4 * batch_size) if prefix_cache else None
        self.static_cache = static_cache

    @torch.no_grad()
    def generate(
        self, states: list[Messages], params: SamplingParams, seeds: list[int] | None = None
    ) -> list[list[Generation]]:
        """params.n Generations per state. Sampling draws each chunk of the batch from torch's
        generator seeded by params.seed (rows differ because each row draws its own tokens);
        per-state `seeds` are for backends that send one request per state, and are not used here."""
        texts = [to_text(self.tokenizer, m) for m in states]
        # Batch similar lengths together (less left padding), then restore the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        texts = [texts[i] for i in order]
        results: list[list[Generation]] = []
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            rows = [list(self._encode(t)) for t in chunk]
            prompt_lens = [len(r) for r in rows]
            hits = [self.store.lookup(r) for r in rows] if self.store else [(0, None)] * len(rows)
            if self.store:
                hits = self._prefill(rows, hits)
            # n samples per prompt = n copies of its row (rows b*n .. b*n+n-1).
            rows_n = [r for r in rows for _ in range(params.n)]
            hits_n = [h for h in hits for _ in range(params.n)]
            # After _prefill every row has exactly one uncached token: decode with our own loop.
            own = self.store is not None and all(
                0 < n == len(r) - 1 for r, (n, _) in zip(rows_n, hits_n, strict=True)
            )
            room = params.max_new_tokens if own else 0
            ids, att, kv = build_batch(rows_n, hits_n, self.tokenizer.pad_token_id, self.device, room)
            if params.seed is not None:
                torch.manual_seed(params.seed + start)
            if own:
                new = self._decode(rows_n, ids, att, kv, params)
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
                    if self.stop_after_action:
                        text, cut = cut_after_action(text)
                        if cut and reason == "length":
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
        """transformers' generate over the batch -> each row's new token ids, ending at its eos or
        action line (generate pads a finished row until the whole batch is done: cut here)."""
        sample = params.temperature > 0
        stop = _ActionLineDone(self.tokenizer, ids.shape[1], self._newline_ids)
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
            stopping_criteria=StoppingCriteriaList([stop] if self.stop_after_action else []),
        )
        new = out.sequences[:, ids.shape[1] :].tolist()
        eos = self.tokenizer.eos_token_id
        for b, gen in enumerate(new):
            end = min(gen.index(eos) + 1 if eos in gen else len(gen), stop.lengths.get(b, len(gen)))
            new[b] = gen[:end]
            if self.store is not None:
                self._store_row(rows[b], att[b], new[b], out.past_key_values, b)
        return new

    def _decode(self, rows, ids, att, kv, params: SamplingParams) -> list[list[int]]:
        """Token-by-token decoding of a batch whose rows all have exactly one uncached prompt token
        (after `_prefill`) -> each row's new token ids, ending at its eos or action line.

        kv: build_batch's buffers with room for max_new_tokens more positions, decoded into in place
        (GrowingLayer: attention reads only the filled positions, nothing is re-concatenated).
        Unlike generate, a row whose turn has ended leaves the batch (rows are dropped from the KV
        cache once a quarter of the batch has finished, and so are the leading positions that are
        padding for every remaining row), so the last steps of a round run on the few rows still
        writing. Each finished row's keys/values (all but its last token, whose KV is never
        computed) go to the prefix store. Greedy output equals generate's
        (tests/test_prefix_cache.py); sampling draws temperature + top-p like generate's warpers.
        """
        eos, width = self.tokenizer.eos_token_id, ids.shape[1]
        cache = growing_cache(kv, width - 1)
        live = list(range(len(rows)))  # the original row of each batch row
        out: list[list[int]] = [[] for _ in rows]
        ended: set[int] = set()  # batch rows whose turn is over but that are still in the batch
        mask, token = att, ids[:, -1:]  # (B, width + t - trimmed) and (B, 1)
        trimmed = 0  # leading cache positions cut off (padding for every row still in the batch)
        position = att.sum(-1, keepdim=True) - 1  # positions of the unpadded sequences
        for _ in range(params.max_new_tokens):
            logits = self.model(
                input_ids=token,
                attention_mask=mask,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
            token = _choose(logits.float(), params.temperature, params.top_p)
            for i, tok in enumerate(token.tolist()):
                if i in ended:
                    continue
                b = live[i]
                out[b].append(tok)
                if tok == eos or (
                    self.stop_after_action
                    and tok in self._newline_set
                    and _has_action_line(self.tokenizer, out[b])
                ):
                    ended.add(i)
                    self._store_row(rows[b], att[b], out[b], cache, i, trimmed)
            if len(ended) == len(live):
                return out
            token, mask, position = (
                token[:, None],
                torch.cat([mask, mask.new_ones((len(live), 1))], -1),
                position + 1,
            )
            if 4 * len(ended) >= len(live):  # drop the finished rows from the batch
                keep = [i for i in range(len(live)) if i not in ended]
                index = torch.tensor(keep, device=self.device)
                token, mask, position = token[index], mask[index], position[index]
                lead = int(mask.any(0).int().argmax())  # columns that are padding in every row
                mask, trimmed = mask[:, lead:], trimmed + lead
                for layer in cache.layers:
                    layer.select(index, lead)
                live, ended = [live[i] for i in keep], set()
        for i, b in enumerate(live):
            if i not in ended:
                self._store_row(rows[b], att[b], out[b], cache, i, trimmed)
        return out

    def _store_row(self, row, row_att, gen, cache, i, trimmed: int = 0) -> None:
        """Store batch row i's prompt + generated ids (but the last, whose KV was never computed)
        with their keys/values; row_att: the row's prompt attention mask (width,); trimmed: leading
        positions already cut from the cache."""
        width = row_att.shape[0]
        prompt = row_att.nonzero().flatten()
        generated = torch.arange(width, width + len(gen) - 1, device=row_att.device)
        self.store.add(row + gen[:-1], row_layers(cache, i, torch.cat([prompt, generated]) - trimmed))

    def _prefill(self, rows, hits):
        """Encode every prompt's uncached part (but its last token) before the generate call and
        store it, so that every row joins the batch as a hit with one token left: the shared
        prefill inside generate would pad every row to the longest uncached suffix.

        New episodes (nothing cached) go one forward pass per prompt length, unpadded; continuing
        ones are bucketed by suffix length so that padding stays under ~15% of the tokens.
        """
        todo = [b for b, (n, _) in enumerate(hits) if len(rows[b]) - n > 1]
        if not todo:
            return hits
        # Identical prompts (beam search's root candidates, repeated states) are encoded once.
        first = {tuple(rows[b]): b for b in reversed(todo)}
        distinct = sorted(first.values())
        groups: list[list[int]] = []
        by_length: dict[int, list[int]] = {}
        for b in (b for b in distinct if hits[b][0] == 0):
            by_length.setdefault(len(rows[b]), []).append(b)
        groups += list(by_length.values())
        bucket: list[int] = []
        for b in sorted((b for b in distinct if hits[b][0] > 0), key=lambda b: len(rows[b]) - hits[b][0]):
            longest = len(rows[b]) - hits[b][0]
            if bucket and longest * (len(bucket) + 1) > 1.15 * sum(
                len(rows[c]) - hits[c][0] for c in bucket + [b]
            ):
                groups.append(bucket)
                bucket = []
            bucket.append(b)
        groups += [bucket] if bucket else []
        pad = self.tokenizer.pad_token_id
        for members in groups:
            prompts = [rows[b][:-1] for b in members]  # the last token is left to the generate call
            ids, att, kv = build_batch(prompts, [hits[b] for b in members], pad, self.device)
            width_c = ids.shape[1] - max(len(p) - hits[b][0] for p, b in zip(prompts, members, strict=True))
            # Positions of the unpadded sequences (as generate derives them from the mask).
            positions = (att.cumsum(-1) - 1).clamp(min=0)[:, width_c:]
            backbone = getattr(self.model, self.model.base_model_prefix)  # no logits needed
            cache = backbone(
                input_ids=ids[:, width_c:],
                attention_mask=att if kv is not None else (None if len(members) == 1 or att.all() else att),
                position_ids=positions,
                past_key_values=DynamicCache(ddp_cache_data=kv) if kv is not None else None,
                use_cache=True,
            ).past_key_values
            for i, prompt in enumerate(prompts):
                self.store.add(prompt, row_layers(cache, i, att[i].nonzero().flatten()))
        out = list(hits)
        for b in todo:  # looked up again: count the prompt once, and the prefilled part as not reused
            self.store.prompt_tokens -= len(rows[b])
            self.store.hit_tokens -= len(rows[b]) - 1 - hits[b][0]
            out[b] = self.store.lookup(rows[b])
        return out

    def _cache(self, kv, shape, max_new_tokens: int):
        """The generation cache, holding the reused prefixes' keys/values when there are any."""
        if not self.static_cache:
            return DynamicCache(ddp_cache_data=kv) if kv is not None else None
        cache = StaticCache(config=self.model.config, max_cache_len=shape[1] + max_new_tokens)
        if kv is not None:
            for layer, (k, v) in enumerate(kv):
                cache.update(k, v, layer)  # fills positions 0..width_c-1
        return cache
