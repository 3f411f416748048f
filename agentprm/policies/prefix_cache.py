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

from collections import OrderedDict

import torch
from transformers.cache_utils import Cache, DynamicLayer


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
