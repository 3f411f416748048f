"""PRM training under `accelerate launch` with 2 CPU processes (gloo) follows the 1-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentprm.experts import make_expert
from agentprm.rollout import run_episode
from agentprm.types import Trajectory, write_trajectories


def _losses(run: Path) -> list[float]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [x["train/loss"] for x in lines if "train/loss" in x]


@pytest.mark.timeout(300)
@pytest.mark.integration  # an end-to-end run of 10-45 s: CI runs it (-m integration), the fast suite does not
def test_two_processes_match_one(tmp_path):
    trajs = [run_episode("babyai", t, make_expert("babyai")) for t in range(400, 412)]
    trajs += [
        Trajectory(**{**t.__dict__, "sample": 1, "steps": t.steps[:1], "reward": 0.0, "success": False})
        for t in trajs
    ]
    data = tmp_path / "data.jsonl"
    write_trajectories(data, trajs)
    common = [
        "train-prm",
        "--data",
        str(data),
        "--model",
        "test",
        "--labels",
        "td",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--heldout",
        "0",
        "--max-prompt-tokens",
        "2048",
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    one = subprocess.run(
        [sys.executable, "-m", "agentprm.cli", *common, "--run-dir", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "agentprm.cli",
        *common,
        "--run-dir",
        str(tmp_path / "two"),
    ]
    two = subprocess.run(launch, env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) >= 3
    assert all(abs(x - y) <= 1e-4 * max(1.0, abs(x)) for x, y in zip(a, b, strict=True)), (a, b)
