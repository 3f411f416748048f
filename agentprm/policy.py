"""The Policy protocol: sample k responses for each of many rendered states.

A state is a list of chat messages ({"role": "system"|"user"|"assistant", "content": str}) produced
by the ONE renderer (agentprm.prompts). Backends: local transformers models (agentprm.policies.hf),
OpenAI-compatible chat-completions servers (agentprm.policies.openai_server), and the scripted
experts (agentprm.experts), which act on environments directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agentprm.types import Messages


@dataclass(frozen=True)
class Generation:
    """One sampled response with its token accounting (prompt tokens are counted once per state)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "stop" (end of turn) or "length" (hit max_new_tokens)


@dataclass(frozen=True)
class SamplingParams:
    """Paper defaults: collection at temperature 1.0, evaluation sampling 0.7, greedy = 0.0."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int | None = None


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers (e.g. seed, task, sample, round), the same on every machine and
    process (Python's hash() is salted per process).

    >>> derive_seed(0, 7, 1, 2) == derive_seed(0, 7, 1, 2) != derive_seed(0, 7, 2, 2)
    True
    """
    digest = hashlib.blake2b(repr(tuple(int(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


class Policy(Protocol):
    """Anything that turns rendered states into responses.

    generate(states, params, seeds) -> one list of params.n Generations per state, in order.
    seeds (optional, one per state) is the seed of that state's request: callers derive it from what
    identifies the request (derive_seed(seed, task, sample, round)), so that two requests with
    identical messages (N samples of one task, N_mc rollouts from one prefix) still draw different
    samples from a server that honours seeds (vLLM does), and every draw is reproducible. The local
    HF policy honours them too (each sample draws from its own stream), so a response does not
    depend on the batch it landed in; a backend that cannot must say so in its docstring.
    Example:
        outs = policy.generate([messages_a, messages_b], SamplingParams(n=4, temperature=1.0), seeds=[11, 12])
        assert len(outs) == 2 and len(outs[0]) == 4
    """

    name: str
    # The renderer's token budget for this policy's prompts (left truncation) and how to count a
    # prompt's tokens; None for either = prompts are never cut (a server counts with its own
    # tokenizer and enforces its own context length).
    max_prompt_tokens: int | None
    count_tokens: Callable[[Messages], int] | None

    def generate(
        self, states: list[Messages], params: SamplingParams, seeds: list[int] | None = None
    ) -> list[list[Generation]]: ...
