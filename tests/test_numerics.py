"""Importing agentprm pins MKL, ATen and oneDNN to their AVX2 code paths (agentprm/__init__.py), so
the same command gives the same bits on any x86-64 CPU with AVX2; a value the user set wins."""

import os
import subprocess
import sys

import pytest

import agentprm

pytestmark = pytest.mark.skipif(
    not agentprm._has_avx2(), reason="the pins are for x86-64 CPUs with AVX2 only"
)

# A value head's output (Linear(256 -> 1): the shape whose bits differ between MKL's default and AVX2
# paths on an AMD AVX2 machine), hashed.
HEAD = (
    "import hashlib, torch; torch.manual_seed(0); x = torch.randn(2, 300, 256); h = torch.nn.Linear(256, 1); "
    "print(hashlib.sha256(h(x).detach().numpy().tobytes()).hexdigest())"
)


def _run(code: str, **env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_agentprm_first_is_the_same_as_pinning_mkl_in_the_environment():
    pinned_in_env = _run(HEAD, MKL_CBWR="AVX2", ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    assert _run("import agentprm; " + HEAD) == pinned_in_env


def test_a_value_the_user_set_wins():
    code = "import os, agentprm; print(os.environ['MKL_CBWR'], os.environ['ATEN_CPU_CAPABILITY'])"
    assert _run(code) == "AVX2 avx2"
    assert _run(code, MKL_CBWR="AUTO") == "AUTO avx2"
