"""The math envs: answer checker, step splitting, data sources, the env contract, the one-message
rendering and its PRM readout, and the expert -> SFT -> collect path on agentprm/Math-v0."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import gymnasium as gym
import pytest

import agentprm.envs as E
from agentprm.envs.base import EPISODE_OVER
from agentprm.envs.math import MAX_STEP_CHARS, REFUSED, MathEnv
from agentprm.envs.math.answers import check_answer, close_step, final_answer, parse_number, split_steps
from agentprm.envs.math.data import (
    BUILTIN_NUM_TASKS,
    BUILTIN_TEST,
    DATA_ENV,
    TEMPLATES,
    MathDataError,
    builtin_problem,
    load_jsonl,
    user_problems,
)
from agentprm.envs.math.env import NOT_TEXT
from agentprm.envs.splits import GSM_SYMBOLIC_TEST_DUPLICATES, parse_tasks, split
from agentprm.experts import make_expert
from agentprm.prompts import (
    OK_REPLY,
    fit_messages,
    instruction,
    render_messages,
    to_text,
    training_segments,
    with_response,
)
from agentprm.rollout import run_episode
from agentprm.types import NUM_TASKS, State, Step, Trajectory

SAMPLE = Path(__file__).parent / "data" / "gsm8k_sample.jsonl"
# GSM8K's own format: train problem 0's reference answer, calculator annotations included.
GSM8K_ANSWER = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


@pytest.fixture(scope="module")
def tokenizer():
    """A small ChatML tokenizer trained on math expert text (overrides conftest's BabyAI one)."""
    from agentprm.models.tokenizer import env_tokenizer

    return env_tokenizer("math", [_expert_trajectory(t) for t in range(20)], vocab_size=512)


# -- the answer checker -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("72", 72),
        ("1,234", 1234),
        ("1,234,567", 1234567),
        ("$12.50", Fraction(25, 2)),
        ("12.0", 12),
        ("12.50", Fraction(25, 2)),
        ("12.", 12),
        ("  12 ", 12),
        ("12 apples", 12),
        ("12 km.", 12),
        ("12%", 12),
        ("€57", 57),
        ("**12**", 12),
        ("+12", 12),
        ("-5", -5),
        ("−5", -5),  # the Unicode minus sign
        ("-$5", -5),
        ("$-5", -5),
        (".5", Fraction(1, 2)),
        ("0.25", Fraction(1, 4)),
    ],
)
def test_numbers_are_read_tolerantly(text, value):
    assert parse_number(text) == (Fraction(value), "")
    assert check_answer(text, Fraction(value)) == (True, "")


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no answer after '####'"),
        ("   ", "no answer after '####'"),
        ("twelve", "'twelve' is not a number"),
        ("$", "is not a number"),
        ("about 12", "is not a number"),
        ("١٢", "digits other than 0-9"),  # Arabic-Indic digits
        ("１２", "digits other than 0-9"),  # fullwidth digits
        ("1,23", "commas may only group thousands"),
        ("12,5", "commas may only group thousands"),
        ("12 or 13", "more than one number"),
        ("3/4", "more than one number"),
        ("5 + 7 = 12", "more than one number"),
        ("1e3", "more than one number"),
        ("12.5.3", "more than one number"),
        ("--5", "two signs"),
        ("9" * 5000, "more than 100 digits"),
    ],
)
def test_malformed_answers_are_wrong_with_a_reason(text, reason):
    value, why = parse_number(text)
    assert value is None and reason in why
    assert check_answer(text, Fraction(12)) == (False, why)


def test_a_different_number_is_wrong():
    assert check_answer("13", Fraction(12)) == (False, "the answer 13 is not the expected number")
    assert check_answer("12.01", Fraction(12))[0] is False
    assert check_answer("-12", Fraction(12))[0] is False


def test_final_answer_is_the_text_after_the_first_marker_on_its_line():
    assert final_answer(GSM8K_ANSWER) == "72"
    assert final_answer("#### 1,234") == "1,234"
    assert final_answer("So she pays $45.\n#### $45\nextra text") == "$45"
    assert final_answer("#### 5\n#### 6") == "5"
    assert final_answer("she has 5 #### 5") == "5"
    assert final_answer("#### ") == "" and final_answer("####") == ""
    assert final_answer("The answer is 72.") is None and final_answer("") is None


# -- step splitting ---------------------------------------------------------------------------------


def test_gsm8k_solution_splits_into_lines_without_calculator_annotations():
    steps = split_steps(GSM8K_ANSWER)
    assert steps == [
        "Natalia sold 48/2 = 24 clips in May.\n",
        "Natalia sold 48+24 = 72 clips altogether in April and May.\n",
        "#### 72",
    ]
    assert "".join(steps) == re.sub(r"<<[^>]*>>", "", GSM8K_ANSWER)


def test_paragraph_solutions_split_into_paragraphs():
    # reasoning-gym's structured solutions: numbered blocks separated by blank lines.
    solution = (
        "Let's solve this step by step:\n\n1. Initial amounts:\n   - 99 persimmon\n   - 99 x 4 = 396 corn\n\n"
        "2. Final amounts:\n   - 396 + 99 = 495\n\nTherefore he has 495 items.\n#### 495"
    )
    steps = split_steps(solution)
    assert steps == [
        "Let's solve this step by step:\n\n",
        "1. Initial amounts:\n   - 99 persimmon\n   - 99 x 4 = 396 corn\n\n",
        "2. Final amounts:\n   - 396 + 99 = 495\n\n",
        "Therefore he has 495 items.\n",
        "#### 495",
    ]
    assert "".join(steps) == solution


@pytest.mark.parametrize(
    "solution, steps",
    [
        ("a = 1\r\nb = 2\r\n#### 3\r\n", ["a = 1\n", "b = 2\n", "#### 3"]),  # Windows line ends
        ("\n\na = 1\n\n\n#### 3", ["a = 1\n", "#### 3"]),  # blank lines around one step
        ("a = 1\nb = 2", ["a = 1\n", "b = 2\n"]),  # no final line: no final step
        ("so 5 #### 5", ["so 5 \n", "#### 5"]),  # text before the marker stays a step
        ("#### 7", ["#### 7"]),
        ("", []),
    ],
)
def test_step_splitting_edge_cases(solution, steps):
    assert split_steps(solution) == steps


def test_every_step_but_the_last_ends_at_the_delimiter():
    for i in range(0, BUILTIN_NUM_TASKS, 97):
        steps = split_steps(builtin_problem(i).solution)
        assert all(s.endswith("\n") for s in steps[:-1]) and steps[-1].startswith("#### ")
        assert [close_step(s) for s in steps[:-1]] == steps[:-1]


# -- the built-in generator and the splits ----------------------------------------------------------


def test_generator_is_deterministic_across_processes():
    # random.Random(str) hashes with SHA-512, not Python's salted hash(): another process (another
    # PYTHONHASHSEED) draws the same problems.
    code = (
        "from agentprm.envs.math.data import builtin_problem as b; "
        "print([b(i).question for i in (0, 7, 4321)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert out.strip() == str([builtin_problem(i).question for i in (0, 7, 4321)])


def test_generated_solutions_do_their_arithmetic_right():
    # Every "<expression> = <number>" in a reference step evaluates to that number, and the last
    # one is the final answer.
    calc = re.compile(r"([0-9$(][0-9$ +\-*/().]*[0-9)])\s*=\s*\$?([0-9]+)")
    names = set()
    for i in range(BUILTIN_NUM_TASKS):
        p = builtin_problem(i)
        names.add(p.source)
        results = []
        for step in split_steps(p.solution)[:-1]:
            for lhs, rhs in calc.findall(step):
                exact = re.sub(r"[0-9]+", lambda m: f"Fraction({m.group()})", lhs.replace("$", ""))
                assert eval(exact) == int(rhs), (i, step)  # exact arithmetic, no float rounding
                results.append(int(rhs))
        assert p.answer.denominator == 1 and p.answer > 0 and results[-1] == p.answer, i
        assert p.solution.endswith(f"#### {p.answer}")
    assert names == {f"builtin:{n}" for n in TEMPLATES}


def test_splits_are_pinned_and_disjoint():
    test, train = split("math", "test"), split("math", "train")
    assert test == list(range(BUILTIN_TEST)) and train == list(range(BUILTIN_TEST, BUILTIN_NUM_TASKS))
    # Disjoint by content too: a train task never repeats a test question.
    assert not {builtin_problem(i).question for i in test} & {builtin_problem(i).question for i in train}
    # Every template is tested.
    assert {builtin_problem(i).source for i in test} == {f"builtin:{n}" for n in TEMPLATES}
    gs_test, gs_train = split("gsm-symbolic", "test"), split("gsm-symbolic", "train")
    assert gs_test == list(range(200)) and len(gs_train) == 1998 and not set(gs_test) & set(gs_train)
    assert not set(GSM_SYMBOLIC_TEST_DUPLICATES) & set(gs_train)
    assert NUM_TASKS["math"] == BUILTIN_NUM_TASKS and NUM_TASKS["gsm-symbolic"] == 2200
    assert parse_tasks("agentprm/Math-v0", "0:3") == [0, 1, 2]


def test_gsm_symbolic_duplicates_are_the_pinned_ones():
    pytest.importorskip("reasoning_gym", reason="needs the 'math' extra")
    from agentprm.envs.math.data import gsm_symbolic_problems

    problems = gsm_symbolic_problems()
    test = {p.question for p in problems[:200]}
    assert tuple(i for i in range(200, 2200) if problems[i].question in test) == GSM_SYMBOLIC_TEST_DUPLICATES


# -- the user's GSM8K data --------------------------------------------------------------------------


def test_the_sample_file_loads():
    problems = load_jsonl(SAMPLE)
    assert [p.answer for p in problems] == [63, 45, 384, 48, 2000, Fraction(71, 2)]
    assert problems[0].source == f"{SAMPLE}:1"
    assert split_steps(problems[4].solution)[-1] == "#### 2,000"


@pytest.mark.parametrize(
    "line, reason",
    [
        ("not json", "not valid JSON"),
        ('["a", "b"]', "expected an object"),
        ('{"question": "q"}', "missing field 'answer'"),
        ('{"answer": "#### 5"}', "missing field 'question'"),
        ('{"question": "", "answer": "#### 5"}', "field 'question' must be non-empty text"),
        ('{"question": "q", "answer": 5}', "field 'answer' must be non-empty text"),
        ('{"question": "q", "answer": "It is 5."}', "no final line '#### <number>'"),
        ('{"question": "q", "answer": "x\\n#### "}', "no answer after '####'"),
        ('{"question": "q", "answer": "x\\n#### twelve"}', "'twelve' is not a number"),
        ('{"question": "q", "answer": "x\\n#### \\u0661\\u0662"}', "digits other than 0-9"),
    ],
)
def test_a_bad_data_line_names_path_and_line(tmp_path, line, reason):
    path = tmp_path / "data.jsonl"
    good = json.dumps({"question": "2 + 3?", "answer": "2 + 3 = 5\n#### 5"})
    path.write_text(f"{good}\n\n{line}\n{good}\n")  # the blank line 2 is skipped, line 3 is bad
    with pytest.raises(MathDataError, match=re.escape(f"{path}:3: ")) as info:
        load_jsonl(path)
    assert reason in str(info.value) and info.value.lineno == 3


def test_undecodable_and_empty_files_are_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"question": "q", "answer": "#### 5"}\n\xff\xfe\n')
    with pytest.raises(MathDataError, match=re.escape(f"{bad}:2: not valid UTF-8")):
        load_jsonl(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(MathDataError, match="holds no problem"):
        load_jsonl(empty)


def test_gsm8k_env_plays_a_file_or_a_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(ValueError, match=f"set {DATA_ENV}="):
        E.make("gsm8k")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        E.make("gsm8k", data_path=tmp_path / "missing.jsonl")
    env = E.make("gsm8k", data_path=SAMPLE)  # a data_path needs no environment variable
    assert env.unwrapped.num_tasks == 6
    with pytest.raises(ValueError, match="data_path is for the user's GSM8K data"):
        E.make("math", data_path=SAMPLE)
    # GSM8K's own layout: test.jsonl and train.jsonl in one folder, test problems first.
    lines = SAMPLE.read_text().splitlines()
    (tmp_path / "test.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (tmp_path / "train.jsonl").write_text("\n".join(lines[2:]) + "\n")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    user = user_problems()
    assert user.splits == {"test": [0, 1], "train": [2, 3, 4, 5]}
    assert parse_tasks("gsm8k", "test") == [0, 1] and parse_tasks("gsm8k", "train") == [2, 3, 4, 5]
    traj = run_episode("gsm8k", 3, make_expert("gsm8k"))
    assert traj.success and traj.reward == 1.0 and traj.steps[-1].response == "#### 48"
    monkeypatch.setenv(DATA_ENV, str(SAMPLE))
    assert parse_tasks("gsm8k", "all") == list(range(6))


# -- the env contract -------------------------------------------------------------------------------


@pytest.mark.parametrize("task", [0, 1, 2, 3, 4, 5, 6, 7, 8, 199, 4999])
def test_expert_episode_earns_reward_one(task):
    traj = run_episode("math", task, make_expert("math"))
    steps = split_steps(builtin_problem(task).solution)
    assert traj.success and traj.reward == 1.0 and traj.terminated and not traj.truncated
    assert [s.response for s in traj.steps] == steps
    assert [s.observation for s in traj.steps[:-1]] == [""] * (len(steps) - 1)
    assert traj.steps[-1].observation == f"The final answer {builtin_problem(task).answer} is correct."
    assert [s.reward for s in traj.steps] == [0.0] * (len(steps) - 1) + [1.0]


def test_gsm8k_expert_solves_the_sample():
    for task in range(6):
        assert run_episode("gsm8k", task, make_expert("gsm8k"), env=E.make("gsm8k", data_path=SAMPLE)).success


def _play(responses, task=0, **kwargs):
    env = E.make("math", **kwargs)
    obs, info = env.reset(options={"task": task})
    out = [env.step(r) for r in responses]
    return env, out


def test_a_wrong_final_answer_gets_zero():
    _, out = _play(["The notebooks cost $112.\n", "#### 17"])
    obs, reward, terminated, truncated, info = out[-1]
    assert (reward, terminated, truncated, info["success"], info["answer"]) == (0.0, True, False, False, "17")
    assert obs == "The final answer is wrong: the answer 17 is not the expected number."


@pytest.mark.parametrize(
    "response, says",
    [
        ("#### ", "there is no answer after '####'"),
        ("#### twelve", "'twelve' is not a number"),
        ("#### ١٦", "digits other than 0-9"),
        ("#### 16 or 17", "more than one number"),
        ("#### 1,6", "commas may only group thousands"),
        ("x" * 10_240, f"{REFUSED}it is 10240 characters long"),
        ("#### 16" + " " * 3 + "x" * MAX_STEP_CHARS, REFUSED),  # even a right answer, in a 2 kB step
    ],
)
def test_malformed_final_answers_get_zero_and_say_why(response, says):
    env, out = _play([response])
    obs, reward, terminated, truncated, info = out[-1]
    assert reward == 0.0 and terminated and not info["success"] and says in obs
    assert E.rejected("math", obs) == obs.startswith(REFUSED)
    # The episode is over: further steps pay nothing, even the right answer.
    assert env.step("#### 16")[:3] == (EPISODE_OVER, 0.0, False)


def test_tolerated_answers_are_correct():
    for answer in ("16", "$16", "16.0", "16 dollars.", "**16**", "+16.00"):
        _, out = _play([f"#### {answer}"])
        assert out[-1][1] == 1.0, answer


def test_a_final_answer_without_the_marker_is_a_step_and_the_cap_truncates():
    # "no delimiter": "The answer is 16." is not a final line; nothing ends until the step cap.
    env, out = _play(["The answer is 16."] * 3, max_episode_steps=3)
    assert [o[:4] for o in out] == [("", 0.0, False, False)] * 2 + [("", 0.0, False, True)]
    assert not out[-1][4]["success"] and out[-1][4]["answer"] is None


def test_the_registered_step_cap_truncates():
    env = E.make("math")
    env.reset(options={"task": 5})
    for i in range(E.MAX_ROUNDS["math"]):
        obs, reward, terminated, truncated, _ = env.step(f"Step {i}: thinking.\n")
        assert (obs, reward, terminated) == ("", 0.0, False) and truncated == (i == 15)


def test_a_response_that_is_not_text_is_refused_without_raising():
    env = E.make("math")
    env.reset(options={"task": 0})
    obs, reward, terminated, _, info = env.step(None)
    assert (obs, reward, terminated, info["action"]) == (NOT_TEXT, 0.0, False, None)


def _fuzz(rng: random.Random, answer: Fraction) -> str:
    pieces = ["####", "#### ", str(answer), f"#### {answer}", f"#### {int(answer):,}", "12", "16", "1,234", "$", ".", "\n", " ", "twelve", "١٢", "１", "−", "-",
              "=", "*", "/", "%", "🙂", "\x00", "\u200b", "ß", "<<16=16>>", "x" * 700]  # fmt: skip
    kind = rng.randrange(4)
    if kind == 0:
        return "".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
    if kind == 1:
        return "".join(chr(rng.randrange(0x10FFFF)) for _ in range(rng.randrange(30)))
    if kind == 2:
        return "".join(rng.choice("0123456789#$., \n") for _ in range(rng.randrange(40)))
    return rng.choice(pieces) * rng.randrange(1, 400)


def test_fuzzed_responses_never_raise_and_pay_only_a_correct_answer():
    env = E.make("math", max_episode_steps=10_000)
    rng = random.Random(0)
    task = 0
    env.reset(options={"task": task})
    paid = 0
    for i in range(3000):
        response = _fuzz(rng, builtin_problem(task).answer)
        obs, reward, terminated, truncated, info = env.step(response)
        assert isinstance(obs, str) and env.observation_space.contains(obs)
        answer = final_answer(response.strip())
        correct = (
            len(response.strip()) <= MAX_STEP_CHARS
            and answer is not None
            and check_answer(answer, builtin_problem(task).answer)[0]
        )
        assert reward == (1.0 if correct else 0.0) and terminated == (
            answer is not None or len(response.strip()) > MAX_STEP_CHARS
        )
        assert obs == "" or terminated
        paid += reward
        if terminated or i % 50 == 0:
            task = rng.randrange(BUILTIN_NUM_TASKS)
            env.reset(options={"task": task})
    assert paid > 10  # the task's own answer is among the pieces


def test_steps_without_a_newline_are_steps():
    env, out = _play(["The notebooks cost 7 * $16 = $112.", "#### 16"])
    assert out[0][:3] == ("", 0.0, False) and out[1][1] == 1.0


def test_same_task_same_problem_whatever_the_seed():
    a, b = E.make("math"), gym.make("agentprm/Math-v0")
    assert a.reset(seed=1, options={"task": 42})[0] == b.reset(seed=2, options={"task": 42})[0]
    assert a.reset(seed=1)[1]["task"] == b.reset(seed=1)[1]["task"]  # the seed draws the task


# -- the renderer: one assistant message, continued ------------------------------------------------


def test_partial_solution_renders_as_one_assistant_message():
    state = State("What is 2 * 3 + 1?", ("2 * 3 = 6\n", "6 + 1 = 7"), ("", ""))
    assert render_messages("math", state) == [
        {"role": "user", "content": instruction("math")},
        {"role": "assistant", "content": OK_REPLY},
        {"role": "user", "content": "What is 2 * 3 + 1?"},
        {"role": "assistant", "content": "2 * 3 = 6\n6 + 1 = 7\n"},  # a step without "\n" is closed
    ]
    assert render_messages("math", State("What is 2 * 3 + 1?")) == render_messages("math", state)[:3]
    assert instruction("gsm8k") == instruction("gsm-symbolic") == instruction("math")
    assert "####" in instruction("math") and "ONE" in instruction("math")


def test_prompt_text_continues_the_solution(tokenizer):
    problem = "What is 2 * 3 + 1?"
    state = State(problem, ("2 * 3 = 6\n",), ("",))
    text = to_text(tokenizer, render_messages("math", state))
    assert text.endswith(f"{problem}<|im_end|>\n<|im_start|>assistant\n2 * 3 = 6\n")
    first = to_text(tokenizer, render_messages("math", State(problem)))
    assert first.endswith(f"{problem}<|im_end|>\n<|im_start|>assistant\n")
    # (s_t, a_t) closed: the prompt text, the step as written, the end-of-turn token.
    closed = to_text(tokenizer, with_response("math", render_messages("math", state), "6 + 1 = 7\n"), False)
    assert closed == text + "6 + 1 = 7\n<|im_end|>\n"
    # Every other env's prompt is unchanged: it ends with a user turn and opens a new one.
    babyai = to_text(tokenizer, render_messages("babyai", State("o0", ("a0",), ("o1",))))
    assert babyai.endswith("<|im_start|>user\no1<|im_end|>\n<|im_start|>assistant\n")


def test_left_truncation_keeps_the_last_steps():
    count = lambda messages: sum(len(m["content"]) for m in messages)  # noqa: E731  (chars as tokens)
    steps = tuple(f"step {i} = {i}\n" for i in range(6))
    state = State("Q?", steps, ("",) * 6)
    base = count(render_messages("math", State("Q?")))
    messages = fit_messages("math", state, count, budget=base + 30)
    assert messages[2]["content"] == "Q?" and count(messages) <= base + 30
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"].endswith("step 5 = 5\n")


def _expert_trajectory(task: int) -> Trajectory:
    return run_episode("math", task, make_expert("math"))


def test_training_segments_are_one_per_step_and_read_at_the_step_end(tokenizer):
    traj = _expert_trajectory(1)
    segments = training_segments("math", traj, tokenizer, budget=None)
    assert [s.steps for s in segments] == [[t] for t in range(traj.num_steps)]
    eos = tokenizer.eos_token_id
    for t, seg in enumerate(segments):
        # the trained tokens are exactly a_t and the end-of-turn token closing it ...
        trained = tokenizer.decode([i for i, m in zip(seg.ids, seg.mask, strict=True) if m == 1])
        assert trained == close_step(traj.steps[t].response) + "<|im_end|>"
        # ... which is the readout, and the sequence up to it is (s_t, a_t) and nothing after
        (k,) = seg.step_ends
        assert seg.ids[k] == eos and k == len(seg.ids) - 2  # then ChatML's "\n"
        msgs = with_response("math", render_messages("math", traj.state(t)), traj.steps[t].response)
        closed = tokenizer(to_text(tokenizer, msgs, False), add_special_tokens=False)["input_ids"]
        assert seg.ids == closed
        assert (seg.state_end >= 0) == (t == 0)


def test_a_step_reads_the_same_with_or_without_its_newline(tokenizer):
    # A policy stopped at "\n" returns the step without it (as a server's stop does): training and
    # scoring see the same text as for the step written with it, and (s_t, a_t) is s_{t+1} closed.
    traj = _expert_trajectory(3)
    bare = dataclasses.replace(
        traj, steps=[dataclasses.replace(s, response=s.response.rstrip("\n")) for s in traj.steps]
    )
    for a, b in zip(
        training_segments("math", traj, tokenizer, None),
        training_segments("math", bare, tokenizer, None),
        strict=True,
    ):
        assert (a.ids, a.mask, a.step_ends) == (b.ids, b.mask, b.step_ends)
    for t in range(traj.num_steps - 1):
        pair = with_response("math", render_messages("math", bare.state(t)), bare.steps[t].response)
        after = to_text(tokenizer, render_messages("math", bare.state(t + 1)))
        assert to_text(tokenizer, pair, False) == after + "<|im_end|>\n"


def test_sft_ends_the_turn_only_after_the_final_answer(tokenizer):
    from agentprm.recipes.sft import _math_mask

    traj = _expert_trajectory(2)
    eos = tokenizer.eos_token_id
    for t, seg in enumerate(training_segments("math", traj, tokenizer, None)):
        final = final_answer(traj.steps[t].response) is not None
        assert final == (t == traj.num_steps - 1)
        mask = _math_mask(seg, tokenizer, final)
        trained = tokenizer.decode([i for i, m in zip(seg.ids, mask, strict=True) if m == 1])
        # the step and its "\n" always (generation stops there); the end-of-turn token only at the end
        assert trained == close_step(traj.steps[t].response) + ("<|im_end|>" if final else "")
        assert mask[seg.step_ends[0]] == (1 if final else -1) and seg.ids[seg.step_ends[0]] == eos


def test_sft_trains_a_whole_solution_in_one_sequence_with_the_per_step_losses(tokenizer):
    import torch

    from agentprm.models.presets import build_model
    from agentprm.recipes.sft import _math_mask

    traj = _expert_trajectory(5)
    (whole,) = training_segments("math", traj, tokenizer, None, whole=True)
    mask = _math_mask(whole, tokenizer, final=True)
    trained = tokenizer.decode([i for i, m in zip(whole.ids, mask, strict=True) if m == 1])
    assert trained == "".join(close_step(s.response) for s in traj.steps) + "<|im_end|>"
    model = build_model("test", tokenizer, seed=1).eval()

    def token_losses(ids, mask):  # {(context length, target token): loss} over the trained tokens
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
        ce = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="none")
        return {(k, ids[k]): ce[k - 1].item() for k in range(1, len(ids)) if mask[k] == 1}

    per_step = {}
    for t, seg in enumerate(training_segments("math", traj, tokenizer, None)):
        per_step |= token_losses(seg.ids, _math_mask(seg, tokenizer, t == traj.num_steps - 1))
    together = token_losses(whole.ids, mask)
    assert per_step.keys() == together.keys()
    assert all(abs(per_step[k] - together[k]) < 1e-4 for k in per_step)


def test_rollout_and_search_stop_a_math_step_at_its_newline():
    from agentprm import search
    from agentprm.policy import Generation, SamplingParams
    from agentprm.rollout import collect

    seen = []

    class Recorder:  # the Policy protocol; records what the rollout asks for
        name, max_prompt_tokens, count_tokens = "recorder", None, None

        def generate(self, states, params, seeds=None):
            seen.append(params.stop)
            return [[Generation("#### 1", 1, 1)] * params.n for _ in states]

    class Flat:  # the Scorer protocol: every candidate scores 0
        name, tokens = "flat", 0

        def score(self, env, states, candidates):
            return [[0.0] * len(c) for c in candidates]

    collect("math", [(0, 0)], Recorder(), SamplingParams(stop=("END",)), on_done=lambda t: None)
    collect("babyai", [(0, 0)], Recorder(), SamplingParams(), on_done=lambda t: None, max_rounds=1)
    search.beam_search("math", [0], Recorder(), Flat(), search.SearchConfig(n=2, m=2), search.SearchLedger())
    assert seen == [("END", "\n"), (), ("\n",)]


def test_prm_scores_a_candidate_as_training_reads_it(tokenizer):
    import torch

    from agentprm.prm.scorers import PRMScorer
    from agentprm.prm.value import build_value_model

    model = build_value_model("test", tokenizer, seed=0).eval()
    traj = _expert_trajectory(4)
    state = traj.state(2)
    cands = [[traj.steps[2].response, "#### 3", "I do not know.\n"]]
    shared = PRMScorer(model, tokenizer, share_prefix=True, batch_size=2)
    full = PRMScorer(model, tokenizer, share_prefix=False, batch_size=2)
    a, b = shared.score("math", [state], cands), full.score("math", [state], cands)
    assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)
    whole = full.score_trajectories("math", [traj])[0]
    assert abs(a[0][0] - whole[2]) < 1e-5


def test_openai_policy_asks_the_server_to_continue_the_solution(tmp_path):
    from agentprm.recipes import collect as collect_recipe

    from .test_openai_server import received, start_stub, stop

    proc, base_url = start_stub()
    try:
        args = collect_recipe.Args(
            policy=f"openai:stub-model@{base_url}",
            env="math",
            tasks="0",
            run_dir=tmp_path / "c",
            max_rounds=2,
        )
        collect_recipe.main(args)
        first, second = received(base_url)
    finally:
        stop(proc)
    assert first["messages"][-1]["role"] == "user" and "continue_final_message" not in first
    assert second["messages"][-1]["role"] == "assistant"
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False


# -- the pipeline on agentprm/Math-v0: expert -> SFT -> collect -------------------------------------


def test_expert_sft_and_collect_run_on_math(tmp_path):
    from agentprm.recipes import collect as collect_recipe
    from agentprm.recipes import expert as expert_recipe
    from agentprm.recipes import sft as sft_recipe
    from agentprm.types import read_trajectories

    data = tmp_path / "m.jsonl"
    summary = expert_recipe.main(expert_recipe.Args(env="agentprm/Math-v0", tasks="test", out=data, limit=40))
    assert summary["success_rate"] == 1.0 and summary["tasks"] == 40
    sft = sft_recipe.main(
        sft_recipe.Args(
            data=data, env="math", model="test", run_dir=tmp_path / "sft", max_steps=3, vocab_size=512
        )
    )
    assert sft["steps"] == 3
    out = collect_recipe.main(
        collect_recipe.Args(
            policy=str(tmp_path / "sft" / "model"),
            env="math",
            tasks="0:2",
            n=2,
            run_dir=tmp_path / "c",
            max_new_tokens=8,
            max_rounds=3,
        )
    )
    trajs = read_trajectories(tmp_path / "c" / "trajectories.jsonl")
    assert out["trajectories"] == 4 and all(t.env == "math" and 1 <= t.num_steps <= 3 for t in trajs)


def test_records_of_math_envs_are_checked_like_others():
    with pytest.raises(ValueError, match="out of range: use 0 <= task < 5000 for math"):
        Trajectory.from_dict({**_expert_trajectory(0).to_dict(), "task": 5000})
    step = Step("#### 16", "#### 16", "The final answer 16 is correct.", reward=1.0)
    assert (
        Trajectory.from_dict(
            Trajectory(
                env="gsm8k",
                task=10**6,
                initial_observation="q",
                steps=(step,),
                reward=1.0,
                success=True,
                terminated=True,
                truncated=False,
                policy="x",
            ).to_dict()  # fmt: skip
        ).task
        == 10**6
    )  # the user's data has no fixed count


def test_math_env_class_can_be_made_directly():
    env = MathEnv()
    assert (
        env.num_tasks == BUILTIN_NUM_TASKS and env.reset(options={"task": 0})[1]["source"] == "builtin:change"
    )


def test_a_template_that_trims_content_is_refused_for_math(tokenizer):
    import copy

    trimming = copy.deepcopy(tokenizer)
    trimming.chat_template = tokenizer.chat_template.replace(
        "message['content']", "message['content'] | trim"
    )
    traj = _expert_trajectory(0)
    with pytest.raises(ValueError, match="keeps? content verbatim"):
        training_segments("math", traj, trimming, budget=None)


def test_math_tokenizer_has_one_token_per_digit():
    """The tiny models' math tokenizer never merges digits (a number the model has not seen is still
    spelt with known tokens); the other envs' tokenizers keep merging them."""
    from agentprm.models.tokenizer import env_tokenizer
    from agentprm.rollout import run_episode

    trajs = [run_episode("math", t, make_expert("math")) for t in range(200, 240)]
    tok = env_tokenizer("math", trajs, vocab_size=600)
    pieces = [
        tok.decode([i]) for i in tok("He has 1140 - 80 = 1060 hats.", add_special_tokens=False)["input_ids"]
    ]
    assert "".join(pieces) == "He has 1140 - 80 = 1060 hats."
    assert all(len(p.strip()) == 1 for p in pieces if any(c.isdigit() for c in p))
    babyai = env_tokenizer(
        "babyai", [run_episode("babyai", t, make_expert("babyai")) for t in (400, 405)], vocab_size=600
    )
    assert babyai.backend_tokenizer.pre_tokenizer.__class__.__name__ == "ByteLevel"
