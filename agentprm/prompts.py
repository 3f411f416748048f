"""The ONE renderer of the agent's state, shared by rollout, SFT, PRM training and search.

State s_t = (u, o_0, a_0, o_1, ..., o_t) becomes AgentGym-style chat messages:
    user: <the env's instruction prompt>     assistant: "OK. I'll follow your instructions ..."
    user: o_0    assistant: a_0    user: o_1    ...    user: o_t
and, through a tokenizer's chat template, model text. When a token budget is given, whole
(a_i, o_{i+1}) turns are dropped from the LEFT (oldest first) until the prompt fits, always keeping
the instruction, o_0 (it holds the goal) and the current observation o_t: right-truncation would
lose exactly the steps being scored.

The math envs (agentprm.envs.MATH_ENVS) have no observation between steps: generation resumes after
the previous step. Their state s_t is the problem o_0 and the solution so far, ONE assistant message
that the next step continues:
    user: <instruction>    assistant: OK ...    user: <problem>    assistant: a_0 a_1 ... a_{t-1}
with each step closed by its delimiter "\\n" (agentprm.envs.math.close_step), and the prompt text
ends inside that message (to_text continues a final assistant message: no end-of-turn, no new
turn). The pair (s_t, a_t) is that message with a_t appended and closed by "\\n" (with_response), then
the end-of-turn token where the PRM reads M(s_t, a_t) (readout_index): one training sequence per
step, since the step's value must not see the steps after it. A step ends at "\\n" when generated
(agentprm.envs.stop_strings), not at the end-of-turn token: in the rendering, the text after a
step is the prompt of the next one, so only the stop can say where a step ends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentprm.envs import MATH_ENVS, REMOTE_FAMILY, babyai, rejected, textcraft
from agentprm.envs import math as math_env
from agentprm.envs.webshop import env as webshop
from agentprm.types import Messages, State

OK_REPLY = "OK. I'll follow your instructions and try my best to solve the task."
# Role names appear only through chat templates: add them to a tokenizer's training text.
ROLE_WORDS = ["user\n", "assistant\n", "system\n"]
# babyai-agentgym (AgentGym-exact BabyAI) is the same task, so it has the same prompt.
SYSTEM_PROMPTS = {
    "babyai": babyai.SYSTEM_PROMPT,
    "babyai-agentgym": babyai.SYSTEM_PROMPT,
    "textcraft": textcraft.SYSTEM_PROMPT,
    "webshop": webshop.SYSTEM_PROMPT,
    **{name: math_env.SYSTEM_PROMPT for name in MATH_ENVS},
}
# The agentgym-* envs play a family's server: the family's prompt.
SYSTEM_PROMPTS |= {name: SYSTEM_PROMPTS[fam] for name, fam in REMOTE_FAMILY.items()}


def instruction(env: str) -> str:
    """The env's instruction prompt (AgentGym's wording)."""
    if env not in SYSTEM_PROMPTS:
        raise ValueError(f"no prompt for environment {env!r}: choose one of {sorted(SYSTEM_PROMPTS)}")
    return SYSTEM_PROMPTS[env]


def render_messages(env: str, state: State, *, drop: int = 0) -> Messages:
    """Messages for `state` (s_t after t steps) with its `drop` oldest turns left out.

    A math env's steps so far are one final assistant message (module docstring); its observations
    (empty between steps) are not shown.

    Example:
        >>> m = render_messages("babyai", State("Your goal: go to the red ball", ("Action: turn left",), ("o1",)))
        >>> [x["role"] for x in m], m[2]["content"], m[-1]["content"]
        (['user', 'assistant', 'user', 'assistant', 'user'], 'Your goal: go to the red ball', 'o1')
        >>> m = render_messages("math", State("What is 2 * 3 + 1?", ("2 * 3 = 6\\n", "6 + 1 = 7"), ("", "")))
        >>> [x["role"] for x in m], m[-1]["content"]
        (['user', 'assistant', 'user', 'assistant'], '2 * 3 = 6\\n6 + 1 = 7\\n')
    """
    if len(state.responses) != len(state.observations):
        raise ValueError(
            f"{len(state.responses)} responses but {len(state.observations)} observations: they must pair up"
        )
    messages = [
        {"role": "user", "content": instruction(env)},
        {"role": "assistant", "content": OK_REPLY},
        {"role": "user", "content": state.initial_observation},
    ]
    turns = list(zip(state.responses, state.observations, strict=True))
    keep = turns[min(drop, max(len(turns) - 1, 0)) :] if turns else []
    if env in MATH_ENVS:
        if keep:
            solution = "".join(math_env.close_step(response) for response, _ in keep)
            messages.append({"role": "assistant", "content": solution})
        return messages
    for response, observation in keep:
        messages.append({"role": "assistant", "content": response})
        messages.append({"role": "user", "content": observation})
    return messages


def with_response(env: str, messages: Messages, response: str) -> Messages:
    """The messages of (s_t, a_t): those of s_t (render_messages) followed by the response a_t, which
    a math env's step appends to the solution so far, closed by its delimiter (close_step: a policy
    stopped at "\\n" returns the step without it), so (s_t, a_t) renders as s_{t+1} does.

    >>> with_response("math", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "6\\n"}], "7")[-1]
    {'role': 'assistant', 'content': '6\\n7\\n'}
    """
    if env in MATH_ENVS:
        response = math_env.close_step(response)
        if messages[-1]["role"] == "assistant":
            return messages[:-1] + [{"role": "assistant", "content": messages[-1]["content"] + response}]
    return messages + [{"role": "assistant", "content": response}]


def fit_drop(
    env: str, state: State, count_tokens: Callable[[Messages], int] | None = None, budget: int | None = None
) -> int:
    """How many oldest turns to drop so that count_tokens(messages) <= budget (0 without a budget).

    Replayed round by round: the drop of the previous state is kept while the prompt fits; when it
    no longer does, the fewest further turns that fit are dropped PLUS half of the turns that would
    remain. So the prompt then grows by whole turns for a few rounds before the next cut: each
    round's prompt extends the previous one (prefix caching in HFPolicy and vLLM reuses it) and a
    trajectory renders into few training segments. If even the instruction, o_0 and the last turn
    exceed the budget, all turns but the last are dropped (the model's context limit is then the
    caller's concern).
    """
    return fit_drops(env, state, count_tokens, budget)[-1]


def fit_drops(
    env: str, state: State, count_tokens: Callable[[Messages], int] | None = None, budget: int | None = None
) -> list[int]:
    """fit_drop of every state on the way to `state` in one pass: [drop of s_0, ..., drop of s_t]."""
    drops = [0]
    if budget is None or count_tokens is None:
        return drops * (state.t + 1)
    drop = 0
    for t in range(1, state.t + 1):  # the state after t turns
        prefix = State(state.initial_observation, state.responses[:t], state.observations[:t])

        def fits(d: int, prefix: State = prefix) -> bool:
            return count_tokens(render_messages(env, prefix, drop=d)) <= budget

        if not fits(drop):
            d = drop + 1
            while d < t - 1 and not fits(d):
                d += 1
            drop = min(d + (t - d) // 2, t - 1)
        drops.append(drop)
    return drops


def fit_messages(
    env: str, state: State, count_tokens: Callable[[Messages], int] | None = None, budget: int | None = None
) -> Messages:
    """render_messages with the fewest oldest turns dropped to fit `budget` tokens (see fit_drop)."""
    return render_messages(env, state, drop=fit_drop(env, state, count_tokens, budget))


@dataclass(frozen=True)
class Segment:
    """One token sequence covering steps `steps` of a trajectory.

    ids: token ids; mask: 1 on the response tokens of `steps` and the end-of-turn token after each
    (SFT's loss mask), -1 instead on those of a response the environment rejected
    (agentprm.envs.rejected: never imitated, not even by a loss on prompt tokens), 0 elsewhere;
    step_ends[i]: index of the end-of-turn token closing a_{steps[i]}, where the PRM reads M(s_t, a_t) — it sees exactly (s_t, a_t); state_end: index of the end-of-turn token
    closing o_0 when the segment starts at step 0 (the PRM's Q_{-1} readout), else -1.
    """

    ids: list[int]
    mask: list[int]
    steps: list[int]
    step_ends: list[int]
    state_end: int


def training_segments(env: str, traj, tokenizer, budget: int | None, *, whole: bool = False) -> list[Segment]:
    """A trajectory as token sequences for SFT and PRM training (see Segment).

    Step t is trained on exactly the prompt the policy sees at step t (fit_messages with `budget`).
    Steps rendered with the same number of dropped turns share one sequence (each later step's
    prompt extends the earlier one), so a trajectory that fits is ONE sequence with every response
    trained. A math env's steps are one sequence each: they continue one assistant message, so no
    end-of-turn token closes a step inside a longer sequence (module docstring). The mask covers
    each trained response and the end-of-turn token after it; token positions come from the
    tokenizer's offset mapping over the exact rendered text.

    whole=True (SFT of a math env): its steps share sequences as every other env's do. A causal
    model's loss on a token depends only on the text before it, and the text before step t in the
    whole solution is exactly s_t, so each trained token gets the loss it gets in its own sequence,
    at a fraction of the compute (a solution of 4-5 steps is one sequence, not 4-5). Every step_end
    is then the end-of-turn token closing the whole solution: not a per-step readout, so not for the
    PRM.
    """
    observations = [s.observation for s in traj.steps]
    count = token_counter(tokenizer)
    # drops[t]: turns dropped from the prompt of step t (one pass over the trajectory)
    drops = fit_drops(env, traj.state(traj.num_steps), count, budget)[:-1]
    one_per_step = env in MATH_ENVS and not whole
    segments = []
    t = 0
    while t < traj.num_steps:
        last = t
        while not one_per_step and last + 1 < traj.num_steps and drops[last + 1] == drops[t]:
            last += 1
        text, spans = segment_text(env, traj, t, last, drops[t], tokenizer)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        eos = tokenizer.eos_token_id
        mask = [0] * len(ids)
        label = [-1 if rejected(env, observations[step]) else 1 for step in range(t, last + 1)]
        for k, (a, b) in enumerate(offsets):
            for (s, e), value in zip(spans, label, strict=True):
                if a >= s and b <= e and b > a:
                    mask[k] = value
        # The end-of-turn token right after each response: trained (it stops generation) and the
        # PRM's readout position for that step.
        step_ends = []
        for (_, e), value in zip(spans, label, strict=True):
            k = readout_index(ids, offsets, e, eos)
            mask[k] = value
            step_ends.append(k)
        state_end = -1
        if t == 0:
            head = render_messages(env, traj.state(0))  # [instruction, OK, o_0]
            o0_end = len(to_text(tokenizer, head, add_generation_prompt=False).rstrip("\n"))
            state_end = next(k for k, (a, b) in enumerate(offsets) if b >= o0_end and ids[k] == eos)
        segments.append(Segment(ids, mask, list(range(t, last + 1)), step_ends, state_end))
        t = last + 1
    return segments


def segment_text(
    env: str, traj, first: int, last: int, drop: int, tokenizer
) -> tuple[str, list[tuple[int, int]]]:
    """The model text of the training sequence of steps first..last, rendered with `drop` oldest
    turns left out, and the character span of each of those responses in it.

    The text is (s_last, a_last) closed by its end-of-turn token (with_response); response a_s starts
    where the prompt of s_s ends (to_text with the generation prompt, or inside the continued
    solution of a math env), which is a prefix of the text. training_segments (the loss mask and
    the PRM's readout) and export-labels (TRL's rows) cut the text at these spans.
    """
    responses = [s.response for s in traj.steps]
    if env in MATH_ENVS:  # a step is trained and read with its delimiter (with_response)
        responses = [math_env.close_step(r) for r in responses]
    spans = []
    for step in range(first, last + 1):
        prompt = render_messages(env, traj.state(step), drop=drop)
        start = len(to_text(tokenizer, prompt, add_generation_prompt=True))
        spans.append((start, start + len(responses[step])))
    msgs = render_messages(env, traj.state(last), drop=drop)
    text = to_text(
        tokenizer, with_response(env, msgs, traj.steps[last].response), add_generation_prompt=False
    )
    if env in MATH_ENVS and any(text[a:b] != responses[s] for s, (a, b) in enumerate(spans, first)):
        # A template that trims message content (Llama 3's `| trim`) drops the newline closing the
        # last step of a continued solution, which shifts every span after it.
        raise ValueError(
            f"the chat template of {getattr(tokenizer, 'name_or_path', '') or 'this tokenizer'} changes "
            "message text (e.g. trims it): the math envs continue an assistant message and need a "
            "template that keeps content verbatim (ChatML, Qwen2.5)"
        )
    return text, spans


def readout_index(ids: list[int], offsets: list[tuple[int, int]], end: int, eos_id: int) -> int:
    """THE readout rule: where the PRM reads M(s_t, a_t) in a tokenized text whose response a_t ends
    at character `end`: the first end-of-turn token at or after it (the token that closes a_t, so
    the value has seen exactly (s_t, a_t)). Used by training (Segment.step_ends) and by scoring
    (agentprm.prm.scorers), which therefore read the same position.

    >>> readout_index([5, 9, 2, 7, 2], [(0, 3), (3, 6), (6, 6), (6, 9), (9, 9)], end=6, eos_id=2)
    2
    """
    return next(k for k, (a, _) in enumerate(offsets) if a >= end and ids[k] == eos_id)


def to_text(tokenizer, messages: Messages, add_generation_prompt: bool = True) -> str:
    """Model text through the tokenizer's chat template (the only place a template is applied).

    A prompt (add_generation_prompt) whose last message is the assistant's, a math env's solution
    so far, continues that message: the text ends right after its content, with no end-of-turn and
    no new turn (the template's continue_final_message). Every other env's prompt ends with a user
    message and gets the generation prompt.
    """
    if add_generation_prompt and messages and messages[-1]["role"] == "assistant":
        return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def token_encoder(tokenizer, cache_size: int = 4096) -> Callable[[str], tuple[int, ...]]:
    """text -> its token ids (no special tokens added), memoised for the last `cache_size` texts.

    fit_messages replays every earlier state of an episode each round (fit_drops), and a policy
    then encodes the fitted prompt once more: with one memo the rollout encodes each text once.
    """
    return functools.lru_cache(maxsize=cache_size)(
        lambda text: tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
    )


def token_counter(
    tokenizer, encode: Callable[[str], Sequence[int]] | None = None
) -> Callable[[Messages], int]:
    """count_tokens for fit_messages: tokens of the prompt text including the generation prompt.

    encode: text -> ids (default: a fresh token_encoder); pass a policy's own to share its memo.
    """
    encode = encode or token_encoder(tokenizer)

    def count(messages: Messages) -> int:
        return len(encode(to_text(tokenizer, messages)))

    return count
