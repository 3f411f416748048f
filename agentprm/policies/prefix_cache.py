"""Prefix caching for HFPolicy: keep each finished generation's KV cache, reuse it next round.

In an agent episode the prompt of round t+1 is the prompt of round t + the response + the new
observation, so all but the last ~100 tokens were already encoded one round earlier. On a CPU the
prefill of those (up to the renderer's budget) is most of a round's cost. The store keeps, for each
generated sequence, its token ids and per-layer keys/values; a new prompt takes the entry with the
longest common token prefix (at least `min_hit` tokens, always leaving >= 1 token to run), and only
its remaining tokens are prefilled.

Batching rows with different cached lengths: every row's cache is left-padded to the longest one,
and its uncached suffix is left-padded to the longest suffix, so a row reads
    [pad.. | cached prefix | pad.. | suffix]
with the attention mask zero on the pads. transformers derives position ids from the cumulative
attention mask, so positions stay those of the unpadded sequence, which is also how the cached keys
were rotated (RoPE): the result equals an uncached run (tests/test_prefix_cache.py).
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

from agentprm.policy import SamplingParams, cut_at_stop


def common_prefix(a, b) -> int:
    """Length of the longest common prefix. >>> common_prefix([1, 2, 3], [1, 2, 4])
    2
    """
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def row_layers(cache, b: int, keep: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values) of batch row b at positions `keep`, as (heads, len(keep), head_dim) copies."""
    return [(layer.keys[b][:, keep], layer.values[b][:, keep]) for layer in cache.layers]


def block_hashes(ids, block: int) -> list[int]:
    """Hashes of ids[:block], ids[:2 * block], ... (each chained on the previous: O(len(ids)) in all)."""
    h, out = 0, []
    for k in range(block, len(ids) + 1, block):
        h = hash((h, tuple(ids[k - block : k])))
        out.append(h)
    return out


class PrefixStore:
    """Token ids -> per-layer (keys, values) of shape (heads, length, head_dim), FIFO-bounded.

    Entries are indexed by the hashes of their prefixes at every multiple of `min_hit` tokens (as
    vLLM's block hashes), so a lookup costs a few dict probes rather than a scan of every entry
    (all entries share the system prompt). The deepest block that any entry shares with the prompt
    holds every entry that could be the longest match, and only those are compared token by token.
    """

    def __init__(self, max_entries: int = 512, min_hit: int = 16):
        self.entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.max_entries, self.min_hit = max_entries, min_hit
        self.index: dict[int, set[tuple[int, ...]]] = {}  # block hash -> entries with that prefix
        self.hit_tokens = 0  # prompt tokens served from the store (not prefilled again)
        self.prompt_tokens = 0

    def lookup(self, ids: list[int]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """(reusable length, layers) for a prompt: the longest common prefix with any entry, at
        most len(ids) - 1 (one token must run); (0, None) below min_hit."""
        self.prompt_tokens += len(ids)
        for h in reversed(block_hashes(ids, self.min_hit)):
            keys = self.index.get(h)
            if not keys:
                continue
            # (a hash collision only adds a candidate whose true common prefix is measured here)
            n, key = max((common_prefix(key, ids), key) for key in keys)
            n = min(n, len(ids) - 1)
            if n >= self.min_hit:
                self.hit_tokens += n
                return n, self.entries[key]
        return 0, None

    def add(self, ids: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        key = tuple(ids)
        self.entries.pop(key, None)
        self.entries[key] = layers
        for h in block_hashes(key, self.min_hit):
            self.index.setdefault(h, set()).add(key)
        while len(self.entries) > self.max_entries:
            old, _ = self.entries.popitem(last=False)
            for h in block_hashes(old, self.min_hit):
                keys = self.index[h]
                keys.discard(old)
                if not keys:
                    del self.index[h]


def build_batch(
    rows: list[list[int]], hits: list[tuple[int, list | None]], pad_id: int, device, room: int = 0
):
    """Batch of prompts with reused prefixes -> (input_ids, attention_mask, per-layer (K, V) or None).

    rows[b]: the prompt's token ids; hits[b]: (cached length, layers) from PrefixStore.lookup.
    K and V have shape (batch, heads, width_c + room, head_dim) with the cached prefixes in the
    first width_c = max(cached lengths) positions; `room` spare zero positions let a
    GrowingCache decode into the same tensors without copying them again.
    """
    cached = [n for n, _ in hits]
    width_c = max(cached)
    width_s = max(len(r) - n for r, n in zip(rows, cached, strict=True))
    b_size = len(rows)
    ids = torch.full((b_size, width_c + width_s), pad_id, dtype=torch.long)
    att = torch.zeros((b_size, width_c + width_s), dtype=torch.long)
    for b, (r, n) in enumerate(zip(rows, cached, strict=True)):
        ids[b, width_c - n : width_c] = torch.tensor(r[:n], dtype=torch.long)
        att[b, width_c - n : width_c] = 1
        suffix = r[n:]
        ids[b, width_c + width_s - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
        att[b, width_c + width_s - len(suffix) :] = 1
    if width_c == 0:
        return ids.to(device), att.to(device), None
    template = next(layers for _, layers in hits if layers is not None)
    kv = []
    for layer, (k0, _) in enumerate(template):
        k = torch.zeros((b_size, k0.shape[0], width_c + room, k0.shape[2]), dtype=k0.dtype, device=k0.device)
        v = torch.zeros_like(k)
        for b, (n, layers) in enumerate(hits):
            if n:
                k[b, :, width_c - n : width_c] = layers[layer][0][:, :n]
                v[b, :, width_c - n : width_c] = layers[layer][1][:, :n]
        kv.append((k, v))
    return ids.to(device), att.to(device), kv


class GrowingLayer(DynamicLayer):
    """A DynamicLayer that writes new keys/values into preallocated buffers instead of concatenating.

    `keys`/`values` are views of the first `length` positions, so attention reads only the filled
    part (a StaticCache hands sdpa its whole preallocated length, masked) and no step copies the
    history (DynamicLayer's torch.cat does). buffers: (batch, heads, capacity, head_dim).
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self.buffers, self.length = (keys, values), length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        keys, values = self.buffers
        if end > keys.shape[-2]:
            raise ValueError(f"GrowingLayer is full: {end} positions needed, {keys.shape[-2]} allocated")
        keys[:, :, self.length : end] = key_states
        values[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        return self.keys, self.values

    def select(self, rows: torch.Tensor, lead: int = 0) -> None:
        """Keep only the batch rows `rows` (1-D index tensor) and drop the first `lead` positions."""
        self.buffers = tuple(b[rows, :, lead:] for b in self.buffers)
        self.length -= lead
        self.keys, self.values = self.buffers[0][:, :, : self.length], self.buffers[1][:, :, : self.length]


def growing_cache(kv: list[tuple[torch.Tensor, torch.Tensor]], length: int) -> Cache:
    """A cache over build_batch's (K, V) buffers (room included) holding `length` positions.

    >>> k = torch.zeros(2, 1, 5, 4)
    >>> c = growing_cache([(k, k.clone())], 3)
    >>> c.get_seq_length(), c.layers[0].update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))[0].shape
    (3, torch.Size([2, 1, 4, 4]))
    """
    return Cache(layers=[GrowingLayer(k, v, length) for k, v in kv])


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


def has_action_line(tokenizer, new_ids) -> bool:
    """Whether the generated ids (a list or a 1-D tensor) hold a completed action line."""
    return _ACTION_DONE.search(tokenizer.decode(new_ids, skip_special_tokens=True)) is not None


def has_stop(tokenizer, new_ids, stop: tuple[str, ...]) -> bool:
    """Whether the generated ids (a list or a 1-D tensor) hold one of the stop strings."""
    return cut_at_stop(tokenizer.decode(new_ids, skip_special_tokens=True), stop)[1]


def turn_over(tokenizer, new_ids, stop: tuple[str, ...], after_action: bool) -> bool:
    """Whether a row's generated ids end its turn short of eos: a stop string, or (after_action) a
    completed action line. Callers check only when the newest token could complete one (a trigger)."""
    return bool(stop and has_stop(tokenizer, new_ids, stop)) or (
        after_action and has_action_line(tokenizer, new_ids)
    )


def _choose(
    logits: torch.Tensor, temperature: float, top_p: float, generators: list[torch.Generator] | None = None
) -> torch.Tensor:
    """Next tokens (B,) from last-position logits (B, V): argmax at temperature 0, else sampling
    from softmax(logits / temperature) restricted to the top-p nucleus (at least one token).
    generators (one per row): row i draws from its own stream, so its tokens do not depend on which
    other rows share the batch; without them the batch draws from torch's global generator."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_p < 1.0:
        ordered, index = logits.sort(-1)  # ascending, as transformers' TopPLogitsWarper
        drop = ordered.softmax(-1).cumsum(-1) <= 1 - top_p
        drop[:, -1] = False
        logits = logits.scatter(-1, index, ordered.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    if generators is not None:
        return torch.cat(
            [torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generators, strict=True)]
        )
    return torch.multinomial(probs, 1).squeeze(-1)


class CachedDecoder:
    """HFPolicy's decode path with prefix caching: prefill every prompt's uncached part, decode
    token by token into preallocated buffers, store each finished row's keys/values.

    Args:
        model, tokenizer: HFPolicy's (the tokenizer's eos ends a turn).
        store: the PrefixStore rows are looked up in and stored to.
        newline_set: token ids containing a newline (an action line can only end on one).
        stop_after_action: end a row at its completed action line too (small models run on).
        A row also ends at one of params.stop (decode's `triggers`: the tokens that can complete one).
    Example (what HFPolicy.generate does per chunk):
        hits = decoder.prefill(rows, [decoder.store.lookup(r) for r in rows])
        ids, att, kv = build_batch(rows, hits, pad_id, device, room=params.max_new_tokens)
        new_ids = decoder.decode(rows, ids, att, kv, params)
    """

    def __init__(
        self, model, tokenizer, store: PrefixStore, newline_set: set[int], stop_after_action: bool = True
    ):
        self.model, self.tokenizer, self.store = model, tokenizer, store
        self.newline_set, self.stop_after_action = newline_set, stop_after_action
        self.device = next(model.parameters()).device

    def decode(
        self,
        rows,
        ids,
        att,
        kv,
        params: SamplingParams,
        seeds: list[int] | None = None,
        triggers: set[int] | frozenset[int] = frozenset(),
    ) -> list[list[int]]:
        """Token-by-token decoding of a batch whose rows all have exactly one uncached prompt token
        (after `prefill`) -> each row's new token ids, ending at its eos, action line or stop string
        (checked only after a token in `triggers`, the tokens that can complete one of params.stop).

        kv: build_batch's buffers with room for max_new_tokens more positions, decoded into in place
        (GrowingLayer: attention reads only the filled positions, nothing is re-concatenated).
        Unlike generate, a row whose turn has ended leaves the batch (rows are dropped from the KV
        cache once a quarter of the batch has finished, and so are the leading positions that are
        padding for every remaining row), so the last steps of a round run on the few rows still
        writing. Each finished row's keys/values (all but its last token, whose KV is never
        computed) go to the prefix store. seeds (one per row) give each row its own random stream
        (sampling only), so a row's response depends on its request and not on its batch: an
        interrupted and resumed collection draws what an uninterrupted one does. Greedy output equals generate's
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
        streams = None
        if seeds is not None and params.temperature > 0:
            streams = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        for _ in range(params.max_new_tokens):
            logits = self.model(
                input_ids=token,
                attention_mask=mask,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
            token = _choose(
                logits.float(),
                params.temperature,
                params.top_p,
                [streams[b] for b in live] if streams else None,
            )
            for i, tok in enumerate(token.tolist()):
                if i in ended:
                    continue
                b = live[i]
                out[b].append(tok)
                check = (self.stop_after_action and tok in self.newline_set) or tok in triggers
                if tok == eos or (
                    check and turn_over(self.tokenizer, out[b], params.stop, self.stop_after_action)
                ):
                    ended.add(i)
                    self.store_row(rows[b], att[b], out[b], cache, i, trimmed)
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
                self.store_row(rows[b], att[b], out[b], cache, i, trimmed)
        return out

    def store_row(self, row, row_att, gen, cache, i, trimmed: int = 0) -> None:
        """Store batch row i's prompt + generated ids (but the last, whose KV was never computed)
        with their keys/values; row_att: the row's prompt attention mask (width,); trimmed: leading
        positions already cut from the cache."""
        width = row_att.shape[0]
        prompt = row_att.nonzero().flatten()
        generated = torch.arange(width, width + len(gen) - 1, device=row_att.device)
        self.store.add(row + gen[:-1], row_layers(cache, i, torch.cat([prompt, generated]) - trimmed))

    def prefill(self, rows, hits):
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
