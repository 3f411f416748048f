"""The Policy protocol: sample k responses for each of many rendered states.

A state is a list of chat messages ({"role": "system"|"user"|"assistant", "content": str}) produced
by the ONE renderer (agentprm.prompts). Backends: local transformers models (agentprm.policies.hf),
OpenAI-compatible chat-completions servers (agentprm.policies.openai_server), and the scripted
experts (agentprm.experts), which act on environments directly.
"""

from __future__ import annotations

import dataclasses
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
    r"""Paper defaults: collection at temperature 1.0, evaluation sampling 0.7, greedy = 0.0.

    stop: strings that end a response (as the OpenAI API's `stop`): the text is cut before the first
    one, which is not part of it, and finish_reason is "stop". Rollout and search add the env's own
    (agentprm.envs.stop_strings: the math envs' step delimiter "\n").
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int | None = None
    stop: tuple[str, ...] = ()


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    r"""text up to (not including) its earliest stop string -> (text, whether one was found).

    >>> cut_at_stop("6 * 7 = 42\n#### 42", ("\n",)), cut_at_stop("no stop", ("\n",))
    (('6 * 7 = 42', True), ('no stop', False))
    """
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def with_stop(params: SamplingParams, stop: tuple[str, ...]) -> SamplingParams:
    r"""params with `stop` added to its own stop strings (each once, in order).

    >>> with_stop(SamplingParams(stop=("END",)), ("\n", "END")).stop
    ('END', '\n')
    """
    merged = tuple(dict.fromkeys((*params.stop, *stop)))
    return params if merged == params.stop else dataclasses.replace(params, stop=merged)


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
