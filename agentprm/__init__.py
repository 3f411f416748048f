"""agentprm: process reward models for LLM agents (AgentPRM, Xi et al., arXiv 2511.08325)."""

import os
import platform

__version__ = "0.1.0"


def _has_avx2() -> bool:
    """True on an x86-64 CPU with AVX2 (Linux reads /proc/cpuinfo; elsewhere: unknown, so False and
    nothing is pinned: forcing AVX2 kernels on a CPU without them would crash)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


# The same numbers on any x86-64 machine. MKL and torch's own CPU kernels pick their code path by
# CPU (AVX2 or AVX-512, Intel or AMD), and the paths round differently: on this project's AMD AVX2
# machine a Linear(256 -> 1) value head gives other bits under MKL's default path than under its
# AVX2 path, so a reward model trained elsewhere came out different (benchmarks/README.md, "Toy-study
# fingerprint"). Pinning every library to its AVX2 path (MKL's conditional numerical reproducibility,
# ATen's dispatch, oneDNN's ISA cap) makes the choice the same everywhere AVX2 exists. Set here,
# before anything imports torch and before MKL's first call; a value the user set wins (MKL_CBWR=AUTO
# trades this for speed on AVX-512). Results are the same for the same --threads only.
if _has_avx2():
    for _name, _value in (
        ("MKL_CBWR", "AVX2"),
        ("ATEN_CPU_CAPABILITY", "avx2"),
        ("ONEDNN_MAX_CPU_ISA", "AVX2"),
    ):
        os.environ.setdefault(_name, _value)
