"""Fixtures shared across test modules (pytest finds them here; no module imports another's fixtures)."""

from __future__ import annotations

import os
import shutil
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


def _built_once(tmp_path_factory, name: str, build) -> Path:
    """`build(folder)` once per test run, even across pytest-xdist workers (they share the parent of
    their base temp dirs; a file lock makes the others wait and reuse it). The builds here are
    deterministic, so which worker builds makes no difference; it saves each worker and module from
    redoing 40 expert episodes (~15 s here) and a tiny SFT (~20 s)."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            folder.mkdir(parents=True, exist_ok=True)
            build(folder)
            done.touch()
    return folder


def _expert_store(folder: Path) -> None:
    write_trajectories(
        folder / "expert.jsonl", [run_episode("babyai", t, make_expert("babyai")) for t in range(400, 440)]
    )


@pytest.fixture(scope="module")
def expert_data(tmp_path_factory) -> Path:
    """40 BabyAI expert trajectories (tasks 400..439) in a JSONL store: a module's own copy of one
    store built once per run."""
    shared = _built_once(tmp_path_factory, "expert-400-440", _expert_store) / "expert.jsonl"
    path = tmp_path_factory.mktemp("data") / "expert.jsonl"
    shutil.copyfile(shared, path)
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
    """A tiny SFT policy folder, trained once per run (all workers) and only read by the tests that
    take it: the `test` preset, one epoch over 40 BabyAI expert trajectories (tasks 400..439), the
    same arguments as test_pipeline's `_tiny_sft`."""
    from agentprm.recipes import sft

    data = _built_once(tmp_path_factory, "expert-400-440", _expert_store) / "expert.jsonl"

    def build(run: Path) -> None:
        sft.main(
            sft.Args(
                data=data, model="test", run_dir=run, epochs=1, batch_size=4, max_prompt_tokens=512,
                vocab_size=1024, save_every=2,
            )
        )  # fmt: skip

    return str(_built_once(tmp_path_factory, "tiny-policy", build) / "model")
