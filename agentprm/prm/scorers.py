"""Scorers for search: a trained value model (PRM, ORM or PVM alike) and an oracle for tests.

PRMScorer.score(env, states, candidates) scores the M candidate actions of each state with the
state's prefix encoded ONCE: the prefix (instruction ... o_t, rendered by the one renderer, left-
truncated to the PRM's token budget exactly as in training) runs through the backbone with a KV
cache, the cache is repeated M times, and only the M candidate continuations (a_t + end-of-turn
token) are run on top of it. The value is read at the end-of-turn token closing a_t, as in training.
With share_prefix=False every candidate is re-encoded in full (the baseline of
benchmarks/search_speed.py; the two agree to float precision, see tests/test_search.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from agentprm.prm.batch import collate, encode, score_encoded
from agentprm.prompts import fit_messages, readout_index, to_text, token_counter, with_response
from agentprm.types import State


class PRMScorer:
    """M_phi(s_t, a_t) from a value model (agentprm.prm.value.load_value_model).

    Example:
        model, tok = load_value_model("runs/prm-td/model")
        scorer = PRMScorer(model, tok, budget=1024, name="agentprm")
        scorer.score("babyai", [State("You see a red ball ...")], [["Thought: ...\\nAction: go to red ball 1"]])
        # -> [[0.83]]
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        budget: int | None = None,
        name: str = "prm",
        share_prefix: bool = True,
        batch_size: int = 16,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.budget = budget
        self.name = name
        self.share_prefix = share_prefix
        self.batch_size = batch_size
        self.tokens = 0  # PRM tokens processed (prefixes once when shared)
        self.count = token_counter(tokenizer)
        self.device = next(model.parameters()).device

    def _encode(self, env: str, msgs, prefix: str, candidate: str) -> tuple[list[int], list[int], int]:
        """(prefix ids, candidate ids up to and including the readout token, readout offset) for the
        state rendered as `msgs` (model text `prefix`) followed by `candidate`."""
        full = to_text(self.tokenizer, with_response(env, msgs, candidate), False)
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        end = len(prefix) + len(candidate)
        eos = self.tokenizer.eos_token_id
        readout = readout_index(ids, offsets, end, eos)
        cut = next((k for k, (a, _) in enumerate(offsets) if a >= len(prefix)), readout)
        return ids[:cut], ids[cut : readout + 1], readout - cut

    @torch.no_grad()
    def score(self, env: str, states: list[State], candidates: list[list[str]]) -> list[list[float]]:
        out = []
        for state, cands in zip(states, candidates, strict=True):
            if not cands:
                out.append([])
                continue
            # The state is rendered (left-truncated to the budget, as in training) once for all its candidates.
            msgs = fit_messages(env, state, self.count, self.budget)
            prefix_text = to_text(self.tokenizer, msgs, add_generation_prompt=True)
            encoded = [self._encode(env, msgs, prefix_text, c) for c in cands]
            prefix = encoded[0][0]
            if self.share_prefix and all(e[0] == prefix for e in encoded):
                out.append(self._shared(prefix, [(e[1], e[2]) for e in encoded]))
            else:
                out.append(self._full([(e[0] + e[1], len(e[0]) + e[2]) for e in encoded]))
        return out

    def _shared(self, prefix: list[int], conts: list[tuple[list[int], int]]) -> list[float]:
        # The backbone and head of a *ForTokenClassification model, called apart because its output
        # object does not return the cache.
        backbone = getattr(self.model, self.model.base_model_prefix)
        head = getattr(self.model, "score", None) or self.model.classifier
        values = []
        for start in range(0, len(conts), 4 * self.batch_size):
            chunk = conts[start : start + 4 * self.batch_size]
            ids = torch.tensor([prefix], device=self.device)
            cache = backbone(input_ids=ids, use_cache=True).past_key_values  # the prefix, once
            cache.batch_repeat_interleave(len(chunk))
            cont, cont_att = collate([c for c, _ in chunk], self.tokenizer.pad_token_id, self.device)
            prefix_att = torch.ones((len(chunk), len(prefix)), dtype=torch.long, device=self.device)
            att = torch.cat([prefix_att, cont_att], dim=1)
            hidden = backbone(input_ids=cont, attention_mask=att, past_key_values=cache).last_hidden_state
            logits = head(hidden)  # (B, width, 1)
            values += [float(logits[b, r, 0]) for b, (_, r) in enumerate(chunk)]
            self.tokens += len(prefix) + sum(len(c) for c, _ in chunk)
        return values

    def _full(self, seqs: list[tuple[list[int], int]]) -> list[float]:
        values = []
        for start in range(0, len(seqs), self.batch_size):
            chunk = seqs[start : start + self.batch_size]
            ids, att = collate([x for x, _ in chunk], self.tokenizer.pad_token_id, self.device)
            logits = self.model(input_ids=ids, attention_mask=att).logits
            values += [float(logits[b, r, 0]) for b, (_, r) in enumerate(chunk)]
            self.tokens += sum(len(s) for s, _ in chunk)
        return values

    def score_trajectories(self, env: str, trajs) -> list[list[float]]:
        """M_0..M_T of whole trajectories, one forward pass each (Best-of-N)."""
        enc = encode(env, trajs, self.tokenizer, self.budget)
        self.tokens += sum(len(s.ids) for e in enc for s in e.segments)
        values = score_encoded(self.model, enc, len(trajs), self.tokenizer.pad_token_id, self.batch_size)
        return [v.tolist() for v in values]


class OracleScorer:
    """Scores with a known function value(env, state, response) (tests, and the pass@N ceiling).

    score_trajectories gives every step value(...) of its own state, so `last` aggregation sees the
    final step's value.
    """

    def __init__(self, value: Callable[[str, State, str], float], name: str = "oracle"):
        self.value, self.name, self.tokens = value, name, 0

    def score(self, env: str, states: list[State], candidates: list[list[str]]) -> list[list[float]]:
        return [[self.value(env, s, c) for c in cands] for s, cands in zip(states, candidates, strict=True)]

    def score_trajectories(self, env: str, trajs) -> list[list[float]]:
        out = []
        for t in trajs:
            out.append([self.value(env, t.state(i), s.response) for i, s in enumerate(t.steps)])
        return out
