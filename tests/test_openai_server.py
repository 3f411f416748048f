"""OpenAIServerPolicy end to end against a real HTTP server process (tests/openai_stub_server.py)."""

from __future__ import annotations

import _thread
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from agentprm.policies.openai_server import OpenAIServerError, OpenAIServerPolicy, serve_instructions
from agentprm.policy import Generation, SamplingParams

from .openai_stub_server import MALFORMED

STUB = Path(__file__).with_name("openai_stub_server.py")


def start_stub(*flags: str) -> tuple[subprocess.Popen, str]:
    """Start the stub on a free port (--port 0) and return (process, base_url) once it accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", *flags], stdout=subprocess.PIPE, text=True
    )
    # Read the "listening on" line with a deadline, so a stub that hangs fails the test instead.
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = proc.stdout.readline() if sel.select(timeout=10) else ""
    sel.close()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"stub server did not start (exit code {proc.poll()}, said {line!r})")
    url = line.split()[-1]
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    return proc, url + "/v1"


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=5)
    proc.stdout.close()


@pytest.fixture(scope="module")
def stub():
    proc, base_url = start_stub()
    yield base_url
    stop(proc)


@pytest.fixture
def stub_with():
    """Factory for a fresh stub started with the given flags; every one is killed at teardown."""
    procs = []

    def make(*flags: str) -> str:
        proc, base_url = start_stub(*flags)
        procs.append(proc)
        return base_url

    yield make
    for proc in procs:
        stop(proc)


def stub_log(base_url: str) -> dict:
    """{"requests": the chat-completions bodies the stub answered, "attempts": the POSTs it got}."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stub/requests", timeout=5) as r:
        return json.loads(r.read())


def received(base_url: str) -> list[dict]:
    """The chat-completions bodies the stub has received."""
    return stub_log(base_url)["requests"]


def states(k: int) -> list[list[dict[str, str]]]:
    return [
        [
            {"role": "system", "content": "You are an agent."},
            {"role": "user", "content": f"Task {i}: go to the red ball behind the door"},
        ]
        for i in range(k)
    ]


def expected_text(i: int) -> str:
    return f"Thought:\nI read: {f'Task {i}: go to the red ball behind the door'[:20]}\n\nAction:\nturn left"


def test_five_states_three_samples(stub):
    policy = OpenAIServerPolicy(stub, "stub-model", concurrency=4)
    assert policy.name == "openai:stub-model"
    outs = policy.generate(states(5), SamplingParams(n=3, temperature=1.0, max_new_tokens=64, seed=7))
    assert [len(o) for o in outs] == [3] * 5
    assert outs[0][0].text == "Thought:\nI read: Task 0: go to the re\n\nAction:\nturn left"
    for i, gens in enumerate(outs):
        for g in gens:
            # "You are an agent." (4) + "Task i: go to the red ball behind the door" (10) whitespace tokens;
            # the reply has 12 whitespace tokens, and the stub's completion total 36 splits 12/12/12.
            assert g == Generation(
                expected_text(i), prompt_tokens=14, completion_tokens=12, finish_reason="stop"
            )
    body = received(stub)[-1]
    assert body["model"] == "stub-model" and body["n"] == 3 and body["max_tokens"] == 64
    assert body["temperature"] == 1.0 and body["top_p"] == 1.0 and body["seed"] == 7
    assert "stop" not in body


def test_greedy_stop_and_max_tokens(stub):
    policy = OpenAIServerPolicy(stub, "stub-model", stop=["Observation:"])
    (gens,) = policy.generate(states(1), SamplingParams(n=1, temperature=0.0, max_new_tokens=4))
    # The reply cut after 4 whitespace tokens, keeping its newlines.
    assert gens == [Generation("Thought:\nI read: Task", 14, 4, "length")]
    body = received(stub)[-1]
    assert body["temperature"] == 0 and body["stop"] == ["Observation:"] and "seed" not in body
    # The params' stop strings (a math env's step delimiter) join the constructor's, each once.
    policy.generate(states(1), SamplingParams(temperature=0.0, stop=("\n", "Observation:")))
    assert received(stub)[-1]["stop"] == ["Observation:", "\n"]


def test_order_matches_input_under_concurrency(stub):
    policy = OpenAIServerPolicy(stub, "stub-model", concurrency=8)
    outs = policy.generate(states(24), SamplingParams(n=2, max_new_tokens=64))
    assert [gens[0].text for gens in outs] == [expected_text(i) for i in range(24)]
    assert policy.generate([], SamplingParams()) == []


def test_retries_after_503(stub_with):
    base_url = stub_with("--fail-first", "2")
    policy = OpenAIServerPolicy(base_url, "stub-model", max_retries=3, backoff=0.01)
    (gens,) = policy.generate(states(1), SamplingParams(n=2))
    assert [g.text for g in gens] == [expected_text(0)] * 2
    # Two 503s are not recorded by the stub, only the body it finally answered.
    assert len(received(base_url)) == 1


def test_retries_exhausted_on_503(stub_with):
    base_url = stub_with("--fail-first", "5")
    policy = OpenAIServerPolicy(base_url, "stub-model", max_retries=1, backoff=0.01)
    with pytest.raises(OpenAIServerError, match=r"after 2 attempts.*HTTP 503.*warming up"):
        policy.generate(states(1), SamplingParams())


def test_wrong_model_names_available_models(stub):
    policy = OpenAIServerPolicy(stub, "Qwen/Qwen2.5-3B-Instruct", backoff=0.01)
    with pytest.raises(OpenAIServerError) as info:
        policy.generate(states(2), SamplingParams())
    msg = str(info.value)
    assert "HTTP 404" in msg and "does not exist" in msg  # the server's own message
    assert "available models: ['stub-model']" in msg


def test_wrong_base_url_path(stub):
    policy = OpenAIServerPolicy(stub.removesuffix("/v1"), "stub-model")
    with pytest.raises(OpenAIServerError, match="must include the API prefix"):
        policy.generate(states(1), SamplingParams())


def test_ignore_n_still_collects_n(stub_with):
    base_url = stub_with("--ignore-n")
    policy = OpenAIServerPolicy(base_url, "stub-model", concurrency=2)
    outs = policy.generate(states(3), SamplingParams(n=4, seed=100))
    assert [len(gens) for gens in outs] == [4] * 3
    assert all(g == Generation(expected_text(i), 14, 12, "stop") for i, gens in enumerate(outs) for g in gens)
    bodies = received(base_url)
    assert len(bodies) == 12
    # Follow-ups ask only for the remainder, with the seed moved on so samples do not repeat.
    first_state = [b for b in bodies if b["messages"][1]["content"].startswith("Task 0")]
    assert sorted((b["n"], b["seed"]) for b in first_state) == [(1, 103), (2, 102), (3, 101), (4, 100)]


def test_server_not_running():
    with socket.socket() as s:  # a port nothing listens on once the socket closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = OpenAIServerPolicy(
        f"http://127.0.0.1:{port}/v1", "stub-model", max_retries=2, timeout=1, backoff=0.01
    )
    start = time.monotonic()
    with pytest.raises(OpenAIServerError, match=r"(?s)after 3 attempts.*Is the server running.*vllm serve"):
        policy.generate(states(3), SamplingParams())
    assert time.monotonic() - start < 5


def test_constructor_checks_and_docs(monkeypatch):
    with pytest.raises(ValueError, match="http://"):
        OpenAIServerPolicy("localhost:8000/v1", "m")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    policy = OpenAIServerPolicy("http://localhost:8000/v1/", "m")
    assert policy.api_key == "sk-secret" and policy.base_url == "http://localhost:8000/v1"
    assert "sk-secret" not in repr(policy)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert OpenAIServerPolicy("http://x/v1", "m").api_key == "EMPTY"
    assert "vllm serve Qwen/Qwen2.5-3B-Instruct --dtype bfloat16 --port 8000" in serve_instructions()


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_200_is_retried_then_quoted(stub_with, kind):
    # A 200 whose body is not a chat completion: retried like a 5xx, then an OpenAIServerError that
    # quotes the body's first bytes (never AttributeError / UnicodeDecodeError / KeyError / ValueError).
    base_url = stub_with("--malformed", kind)
    policy = OpenAIServerPolicy(base_url, "stub-model", max_retries=2, backoff=0.01)
    with pytest.raises(OpenAIServerError) as info:
        policy.generate(states(1), SamplingParams(n=2))
    msg = str(info.value)
    assert "after 3 attempts" in msg and "malformed 200 answer" in msg
    assert repr(MALFORMED[kind][:40])[:-1] in msg  # the body's first bytes, as a bytes literal
    assert "OpenAI-compatible server" in msg
    assert stub_log(base_url)["attempts"] == 3


def test_malformed_200_then_good_answer_recovers(stub_with):
    base_url = stub_with("--malformed", "bad-usage", "--malformed-first", "2")
    policy = OpenAIServerPolicy(base_url, "stub-model", max_retries=2, backoff=0.01)
    (gens,) = policy.generate(states(1), SamplingParams(n=3))
    assert gens == [Generation(expected_text(0), 14, 12, "stop")] * 3
    assert stub_log(base_url)["attempts"] == 3


def test_per_state_seeds_sent_and_resent_on_retry(stub_with):
    # State i's requests carry seeds[i] (not params.seed); a retry after a malformed answer resends
    # the same seed, and a follow-up for a server that ignores n sends seed + choices collected so far.
    base_url = stub_with("--ignore-n", "--malformed", "no-choices", "--malformed-first", "1")
    policy = OpenAIServerPolicy(base_url, "stub-model", concurrency=1, max_retries=1, backoff=0.01)
    outs = policy.generate(states(3), SamplingParams(n=2, seed=7), seeds=[1000, 2000, 3000])
    assert [len(gens) for gens in outs] == [2] * 3
    log = stub_log(base_url)
    assert log["attempts"] == 7  # one malformed answer retried, then two requests per state
    sent = sorted((b["messages"][1]["content"][:6], b["n"], b["seed"]) for b in log["requests"])
    assert sent == [
        ("Task 0", 1, 1001),
        ("Task 0", 2, 1000),
        ("Task 1", 1, 2001),
        ("Task 1", 2, 2000),
        ("Task 2", 1, 3001),
        ("Task 2", 2, 3000),
    ]


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt during each test, however pytest was launched: a process
    started in the background by a non-interactive shell inherits SIGINT ignored, and then neither
    a real SIGINT nor _thread.interrupt_main reaches Python."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def interrupt_after(seconds: float, how: str) -> threading.Timer:
    """Ctrl-C in `seconds`: a real SIGINT to this process, or _thread.interrupt_main (which only sets
    the flag, like a SIGINT the OS delivered to another thread)."""
    if how == "sigint":
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    else:
        timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


@pytest.mark.parametrize("how", ["sigint", "interrupt_main"])
def test_ctrl_c_during_backoff_interrupts_at_once(stub_with, how):
    base_url = stub_with("--fail-first", "1000")
    policy = OpenAIServerPolicy(base_url, "stub-model", max_retries=5, backoff=4.0, max_backoff=4.0)
    timer = interrupt_after(0.5, how)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            policy.generate(states(3), SamplingParams())
    finally:
        timer.cancel()
    assert time.monotonic() - start < 2.0
    # The workers stopped waiting too: no retry reaches the server afterwards.
    attempts = stub_log(base_url)["attempts"]
    assert attempts == 3
    time.sleep(0.5)
    assert stub_log(base_url)["attempts"] == attempts


@pytest.mark.parametrize("how", ["sigint", "interrupt_main"])
def test_ctrl_c_mid_request_does_not_wait_for_it(stub_with, how):
    base_url = stub_with("--delay", "20")
    policy = OpenAIServerPolicy(base_url, "stub-model", concurrency=2, timeout=60)
    timer = interrupt_after(0.5, how)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            policy.generate(states(4), SamplingParams())
    finally:
        timer.cancel()
    assert time.monotonic() - start < 2.0
    assert stub_log(base_url)["attempts"] == 2  # the two queued states were never sent
