#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtualenv in .venv with torch (CPU build) and agentprm.
# torch is installed FIRST and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
# On a GPU machine set TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0" with the CUDA index of your choice).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC" 2>&1 | grep -v "^WARNING: Location" || true
fi
.venv/bin/python -m pip install --quiet -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
# OpenRLHF's agent interface, for tests/test_openrlhf_agent.py: without its dependencies (Ray, vLLM,
# DeepSpeed and a transformers pin we do not need for openrlhf.utils.agent; the dev extra has the two
# small ones it imports).
.venv/bin/python -m pip install --quiet --no-deps "openrlhf==0.11.2" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, agentprm; print('agentprm', agentprm.__version__, '| torch', torch.__version__)"
