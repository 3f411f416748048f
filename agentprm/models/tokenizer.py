"""A byte-level BPE tokenizer trained locally with `tokenizers` on environment text.

The embedded default model is created from scratch, so its tokenizer is too: trained on the env
instruction prompts, observations and expert responses. Byte-level BPE covers every byte, so any
text a policy writes stays encodable. Chat format is ChatML (as Qwen2):
    <|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n...<|im_end|>\\n
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from agentprm.envs import MATH_ENVS, family
from agentprm.prompts import OK_REPLY, ROLE_WORDS, instruction

PAD, BOS, EOT = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 2048,
    max_token_length: int = 24,
    whole: Iterable[str] = (),
    digits: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` -> a transformers tokenizer with the ChatML template.

    Deterministic for the same texts in the same order. `whole`: strings that become one token each.
    `digits`: every digit its own token (numbers are never merged), for arithmetic.
    >>> tok = train_tokenizer(["Action: turn left", "Action: turn right"] * 10, vocab_size=300)
    >>> tok.decode(tok("turn left")["input_ids"])
    'turn left'
    """
    core = Tokenizer(models.BPE())
    # Word-level pieces (GPT-2's byte-level regex): " blue" and " key" are the same tokens in the
    # goal, the observation and the action, so a small model learns to COPY the goal's object into
    # its command. (Merging across spaces compressed prompts ~3x but made every object phrase a
    # different symbol in each context, and the tiny model never learned to copy: 8.9% greedy
    # success on BabyAI test vs the numbers in benchmarks/README.md.)
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if digits:
        # Math: "1140" as one learned symbol would make each number an unrelated token, so a tiny model
        # could neither copy a number it has not seen nor compute digit by digit (Qwen2 and LLaMA
        # tokenizers split digits for the same reason).
        core.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        max_token_length=max_token_length,
    )
    core.train_from_iterator(list(texts), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOT, bos_token=None)
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    # The envs' instruction prompts and the fixed first reply are long and never change: one token
    # each (matched in raw text before splitting) saves ~230 tokens in every sequence.
    if whole:
        tok.add_tokens(list(whole))
    return tok


def env_tokenizer(env: str, trajs, vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """The embedded model's tokenizer for `env`, trained on trajectories' text (the one recipe for
    every preset created from scratch: SFT, PRM training, benchmarks).

    Texts: the env's instruction prompt, then per trajectory o_0 and every (a_t, o_{t+1}), then the
    chat roles; the instruction prompt and the fixed first reply become one token each.
    """
    texts = [instruction(env)]
    for t in trajs:
        texts += [t.initial_observation] + [x for s in t.steps for x in (s.response, s.observation)]
    return train_tokenizer(
        texts + ROLE_WORDS,
        vocab_size=vocab_size,
        whole=[instruction(env), OK_REPLY],
        digits=family(env) in MATH_ENVS,  # math envs: one token per digit
    )
