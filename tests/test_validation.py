"""Strict reading of what users type: --tasks specs (splits.parse_tasks) and environment names."""

from __future__ import annotations

import collections

import pytest

import agentprm.envs as E
from agentprm.envs.splits import BABYAI_SHORT_LEVELS, parse_tasks, split

NUM = {"babyai": 400_000, "textcraft": 544, "math": 5000, "gsm-symbolic": 2200}
NAMES = {
    "babyai": "test, test_large, test_short, test_short_large, train, train_short",
    "textcraft": "agenteval, agenteval_unseen, test, train",
    "math": "test, train",
    "gsm-symbolic": "test, train",
}


@pytest.mark.parametrize("env", sorted(NUM))
@pytest.mark.parametrize(
    "spec, reason",
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        (",,,", "empty item"),
        ("1,,2", "empty item"),
        ("1,2,", "empty item"),
        ("5:2", "range 5:2 is empty or reversed"),
        ("5:5", "range 5:5 is empty or reversed"),
        ("3-1", "range 3-1 is empty or reversed"),
        ("-3", "needs a start and an end"),
        ("3:", "needs a start and an end"),
        ("1,1", "task 1 is listed twice"),
        ("+3", "is not a task index"),
        ("3.5", "is not a task index"),
        ("1_0", "is not a task index"),
        ("tset", "is not a task index"),
        ("9" * 5000, "is out of range"),
        ("0:999999999999", "range end 999999999999 is past the last task"),
    ],
)
def test_bad_specs_name_the_choices(env, spec, reason):
    # Each of these used to give [] or an unintended list (5:2 -> [], -3 -> [-3], 1,1 -> [1, 1]).
    with pytest.raises(ValueError) as info:
        parse_tasks(env, spec)
    message = str(info.value)
    assert reason in message and f"({NAMES[env]})" in message and f"0 <= i < {NUM[env]}" in message


@pytest.mark.parametrize("env", sorted(NUM))
def test_indices_must_exist_in_the_env(env):
    n = NUM[env]
    assert parse_tasks(env, f"{n - 2}:{n}") == [n - 2, n - 1]
    assert parse_tasks(env, f"{n - 2}-{n - 1}") == [n - 2, n - 1]
    assert parse_tasks(env, f"0,{n - 1}") == [0, n - 1]
    for spec in (f"0:{n + 1}", f"0-{n}", f"{n}", f"1,{n}"):
        with pytest.raises(ValueError, match=rf"past the last task|task {n} is out of range \({n} tasks"):
            parse_tasks(env, spec)


def test_good_specs():
    assert parse_tasks("babyai", "0:3") == [0, 1, 2]
    assert parse_tasks("babyai", " 3 - 5 ") == [3, 4, 5]
    assert parse_tasks("babyai", "9, 1,5") == [9, 1, 5]
    assert parse_tasks("textcraft", "test") == split("textcraft", "test")
    assert parse_tasks("babyai", "Test_Short") == split("babyai", "test_short")


@pytest.mark.parametrize("name", ["BabyAI", "BABYAI", "agentprm/BabyAI-v0", "agentprm/babyai-v0"])
def test_env_names_are_case_insensitive(name):
    assert E.short_name(name) == "babyai"
    assert E.env_id(name) == "agentprm/BabyAI-v0"
    assert parse_tasks(name, "test") == split("babyai", "test") == split(name, "TEST")
    assert E.rejected(name, "The action is not recognized.")


def test_textcraft_names_and_make():
    for name in ("TextCraft", "TEXTCRAFT", "AgentPRM/TextCraft-V0"):
        assert E.short_name(name) == "textcraft"
    assert E.make("agentprm/TEXTCRAFT-v0").unwrapped.num_tasks == NUM["textcraft"]


@pytest.mark.parametrize("name", ["alfworld", "babyai-v0", "", None, "agentprm/BabyAI-v1"])
def test_unknown_env_names_list_the_choices(name):
    with pytest.raises(
        ValueError,
        match=r"unknown environment .*\['agentgym-babyai', 'agentgym-textcraft', 'agentgym-webshop', 'babyai', "
        r"'babyai-agentgym', 'gsm-symbolic', 'gsm8k', 'math', 'textcraft', 'webshop'\]",
    ):
        E.short_name(name)
    with pytest.raises(ValueError, match="unknown environment"):
        parse_tasks(name, "0:3")


def test_large_babyai_test_split_is_balanced_and_disjoint_from_train():
    large = split("babyai", "test_large")
    assert len(large) == 200 and set(split("babyai", "test")) <= set(large)
    assert not set(large) & set(split("babyai", "train"))
    assert collections.Counter(i % 40 for i in large) == {level: 5 for level in range(40)}
    short = split("babyai", "test_short_large")
    assert len(short) == 208 and not set(short) & (set(split("babyai", "train")) | set(large))
    assert collections.Counter(i % 40 for i in short) == {level: 16 for level in BABYAI_SHORT_LEVELS}


@pytest.mark.parametrize("recipe", ["collect", "mc_label", "evaluate"])
def test_server_arguments_are_checked_in_every_sampling_recipe(recipe):
    import importlib

    args = importlib.import_module(f"agentprm.recipes.{recipe}").Args
    with pytest.raises(ValueError, match="--request-timeout must be > 0"):
        args(request_timeout=0)
    with pytest.raises(ValueError, match="--max-retries must be >= 0"):
        args(max_retries=-1)
    assert args().request_timeout == 120.0
