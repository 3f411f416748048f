"""Fixtures shared across test modules (pytest finds them here; no module imports another's fixtures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentprm.experts import make_expert
from agentprm.models.tokenizer import train_tokenizer
from agentprm.prompts import instruction
from agentprm.rollout import run_episode
from agentprm.types import read_trajectories, write_trajectories


def pytest_configure(config) -> None:
    """Under pytest-xdist (the default: `-n auto`), one torch thread per worker. Recipes call
    torch.set_num_threads(--threads, default 2); two workers with 2 OpenMP threads each on 2 cores
    spin against each other and run ~10x slower (README, "The powered study"). No test depends on the
    thread count, so the cap only changes speed."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"  # the CLI subprocesses some tests start
    set_threads = torch.set_num_threads
    torch.set_num_threads = lambda n: set_threads(1)
    set_threads(1)


@pytest.fixture(scope="module")
def expert_data(tmp_path_factory) -> Path:
    """40 BabyAI expert trajectories (tasks 400..439) in a JSONL store; built once per module."""
    path = tmp_path_factory.mktemp("data") / "expert.jsonl"
    trajs = [run_episode("babyai", t, make_expert("babyai")) for t in range(400, 440)]
    write_trajectories(path, trajs)
    return path


@pytest.fixture(scope="module")
def tokenizer(expert_data):
    """A 1024-token tokenizer trained on the BabyAI instruction and `expert_data`'s texts."""
    texts = [instruction("babyai")]
    for t in read_trajectories(expert_data):
        texts += [t.initial_observation] + [x for s in t.steps for x in (s.response, s.observation)]
    return train_tokenizer(texts, vocab_size=1024)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> str:
    """A tiny SFT policy folder, trained once per session and only read by the tests that take it:
    the `test` preset, one epoch over 40 BabyAI expert trajectories (tasks 400..439), the same
    arguments as test_pipeline's `_tiny_sft`."""
    from agentprm.recipes import sft

    data = tmp_path_factory.mktemp("policy-data") / "expert.jsonl"
    write_trajectories(data, [run_episode("babyai", t, make_expert("babyai")) for t in range(400, 440)])
    run = tmp_path_factory.mktemp("tiny-policy")
    sft.main(
        sft.Args(
            data=data, model="test", run_dir=run, epochs=1, batch_size=4, max_prompt_tokens=512, vocab_size=1024,
            save_every=2,
        )
    )  # fmt: skip
    return str(run / "model")
