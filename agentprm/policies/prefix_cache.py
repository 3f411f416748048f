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


class PrefixStore:
    """Token ids -> per-layer (keys, values) of shape (heads, length, head_dim), FIFO-bounded."""

    def __init__(self, max_entries: int = 512, min_hit: int = 16):
        self.entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.max_entries, self.min_hit = max_entries, min_hit
        self.hit_tokens = 0  # prompt tokens served from the store (not prefilled again)
        self.prompt_tokens = 0

    def lookup(self, ids: list[int]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """(reusable length, layers) for a prompt; (0, None) on a miss."""
        best, best_layers = 0, None
        for key, layers in self.entries.items():
            if key[: self.min_hit] != tuple(ids[: self.min_hit]):
                continue
            n = min(common_prefix(key, ids), len(ids) - 1)
            if n > best:
                best, best_layers = n, layers
        self.prompt_tokens += len(ids)
        if best < self.min_hit:
            return 0, None
        self.hit_tokens += best
        return best, best_layers

    def add(self, ids: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        key = tuple(ids)
        self.entries.pop(key, None)
        self.entries[key] = layers
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


def build_batch(rows: list[list[int]], hits: list[tuple[int, list | None]], pad_id: int, device):
    """Batch of prompts with reused prefixes -> (input_ids, attention_mask, per-layer (K, V) or None).

    rows[b]: the prompt's token ids; hits[b]: (cached length, layers) from PrefixStore.lookup.
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
        k = torch.zeros((b_size, k0.shape[0], width_c, k0.shape[2]), dtype=k0.dtype, device=k0.device)
        v = torch.zeros_like(k)
        for b, (n, layers) in enumerate(hits):
            if n:
                k[b, :, width_c - n :] = layers[layer][0][:, :n]
                v[b, :, width_c - n :] = layers[layer][1][:, :n]
        kv.append((k, v))
    return ids.to(device), att.to(device), kv
