"""agentprm.serving.env_server (AgentGym's env-server protocol) and agentprm.envs.agentgym_remote
(the client): served in-process by uvicorn on a free port, the remote env replays the local env step
for step; failing servers give clear errors within the timeout; envs do not leak."""

from __future__ import annotations

import gc
import json
import socket
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import TimeLimit

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
psutil = pytest.importorskip("psutil")

import agentprm.envs as E  # noqa: E402
from agentprm.envs.agentgym_remote import AgentGymEnv, AgentGymServerError  # noqa: E402
from agentprm.envs.react import format_react  # noqa: E402
from agentprm.experts import make_expert  # noqa: E402
from agentprm.rollout import run_episode  # noqa: E402
from agentprm.serving.env_server import make_app  # noqa: E402


@contextmanager
def serving(app):
    """Run `app` with uvicorn on a free local port in a thread -> its base url."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def post(url: str, route: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + route, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


# WebShop: a search and clicks (one refused) before the expert's episode; it ends on the search page.
WEBSHOP_COMMANDS = [
    "search[shoes]",
    "click[next >]",
    "click[< prev]",
    "click[no such button]",
    "click[back to search]",
]


# BabyAI task 38 (BossLevel) runs into the 20-round cap; TextCraft task 540 takes 11 rounds.
TASKS = {"babyai-agentgym": (7, 38, 125), "textcraft": (0, 300, 540), "webshop": (0, 7, 41)}


def _responses(name: str, task: int) -> list[str]:
    """The expert's responses on `task`: BabyAI's with deliberate invalid commands, WebShop's after
    the scripted commands above."""
    expert = make_expert(name, mistakes=0.3) if E.family(name) == "babyai" else make_expert(name)
    responses = [s.response for s in run_episode(name, task, expert).steps]
    return ([format_react("", c) for c in WEBSHOP_COMMANDS] if name == "webshop" else []) + responses


def _replay(env, task: int, responses: list[str]) -> list[tuple]:
    """(observation, reward, done, success, score) after the reset and after each response, to the end."""
    obs, info = env.reset(options={"task": task})
    out = [(obs, 0.0, False, info["success"], info["score"])]
    for response in responses:
        obs, reward, terminated, truncated, info = env.step(response)
        out.append((obs, reward, terminated or truncated, info["success"], info["score"]))
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("name", ["babyai-agentgym", "textcraft", "webshop"])
def test_remote_env_replays_the_local_env(name):
    family = E.family(name)
    extra = ["Thought: two.\nAction: inventory\nAction: turn left", "no action at all"]
    with serving(make_app(name, max_envs=8, idle_seconds=60)) as url:
        # The round cap is the caller's (the protocol has none): the same TimeLimit as the local env.
        remote = TimeLimit(AgentGymEnv(url, name, timeout=10), max_episode_steps=E.MAX_ROUNDS[name])
        for task in TASKS[name]:
            local = E.make(name)
            lo, linfo = local.reset(options={"task": task})
            ro, rinfo = remote.reset(options={"task": task})
            assert ro == lo and rinfo["task"] == task
            assert rinfo["available_actions"] == linfo.get("available_actions", [])
            responses = _responses(name, task)
            if family != "textcraft":  # local textcraft answers a missing Action itself (module docstring)
                responses = extra + responses
            for response in responses:
                lo, lr, lt, ltr, linfo = local.step(response)
                ro, rr, rt, rtr, rinfo = remote.step(response)
                assert (ro, rr, rt or rtr) == (lo, lr, lt or ltr), (name, task, response)
                assert (rinfo["success"], rinfo["score"]) == (linfo["success"], linfo["score"])
                if lt or ltr:
                    break
        remote.close()
        assert remote.unwrapped.env_id is None


@pytest.mark.parametrize("name", ["babyai-agentgym", "textcraft", "webshop"])
def test_remote_env_passes_gymnasiums_checker(name):
    num_tasks = E.make(name).unwrapped.num_tasks  # so that reset(seed=s) can draw a task, as the checker does
    with serving(make_app(name, max_envs=4, idle_seconds=60)) as url:
        env = AgentGymEnv(url, name, num_tasks=num_tasks, timeout=10)
        check_env(env, skip_render_check=True)
        env.close()


def test_concurrent_envs_do_not_mix():
    """Six clients play six BabyAI tasks at once on one server: each gets its local episode."""
    name, tasks = "babyai-agentgym", (7, 125, 226, 0, 41, 81)
    scripts = {t: _responses(name, t) for t in tasks}
    expected = {t: _replay(E.make(name), t, scripts[t]) for t in tasks}
    results, errors = {}, []

    def play(task: int) -> None:
        try:
            env = TimeLimit(AgentGymEnv(url, name, timeout=10), max_episode_steps=E.MAX_ROUNDS[name])
            results[task] = _replay(env, task, scripts[task])
            env.close()
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    with serving(make_app(name, max_envs=6, idle_seconds=60)) as url:
        threads = [threading.Thread(target=play, args=(t,)) for t in tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors and results == expected


def test_babyai_episode_reaches_success_remotely():
    """The expert solves task 0 through the server; done, reward and AgentGym's score agree."""
    with serving(make_app("babyai-agentgym", max_envs=2, idle_seconds=60)) as url:
        local, remote = E.make("babyai-agentgym"), AgentGymEnv(url, "babyai")
        local.reset(options={"task": 0})
        remote.reset(options={"task": 0})
        for response in _responses("babyai-agentgym", 0):
            lo, lr, lt, _, linfo = local.step(response)
            ro, rr, rt, _, rinfo = remote.step(response)
            assert (ro, rr, rt) == (lo, lr, lt)
        assert rt and rinfo["success"] and rinfo["agentgym_score"] == linfo["agentgym_score"] > 0
        # after the end, both answer "The episode has ended" (the client without asking the server)
        assert remote.step("Action: turn left")[:3] == local.step("Action: turn left")[:3]
        remote.close()


def test_protocol_shapes_and_errors():
    """Routes, JSON shapes and AgentGym-style errors, as AgentGym's own clients see them."""
    with serving(make_app("babyai-agentgym", max_envs=2, idle_seconds=60)) as url:
        env_id = post(url, "/create")["id"]
        assert set(post(url, "/reset", {"id": env_id, "data_idx": 3})) == {
            "observation", "reward", "score", "deleted", "done"
        }  # fmt: skip
        step = post(url, "/step", {"id": env_id, "action": "turn left"})
        assert set(step) == {"observation", "reward", "score", "done"}
        with urllib.request.urlopen(f"{url}/observation?id={env_id}", timeout=10) as answer:
            assert json.loads(answer.read())["observation"].startswith("Your goal: ")
        assert post(url, "/close", {"id": env_id}) is True and post(url, "/close", {"id": env_id}) is False
        gone = post(url, "/step", {"id": env_id, "action": "turn left"})  # HTTP 200 + {"error"}
        assert gone == {"error": f"env {env_id} was closed: create a new one with POST /create"}
        assert (
            "out of range" in post(url, "/reset", {"id": post(url, "/create")["id"], "data_idx": -1})["error"]
        )
    with serving(make_app("textcraft", max_envs=2, idle_seconds=60)) as url:
        created = post(url, "/create", {"commands": None, "goal": None, "minecraft_dir": "x"})
        assert created["observation"].endswith("Goal: craft acacia planks.")  # task id 0
        with urllib.request.urlopen(f"{url}/commands?id={created['id']}", timeout=10) as answer:
            assert json.loads(answer.read()) == "craft 4 acacia planks using 1 acacia logs"
        assert post(url, "/create", {"goal": "gold ingot"})["observation"].endswith("craft gold ingot.")
    with serving(make_app("webshop", max_envs=1, idle_seconds=60)) as url:
        env_idx = post(url, "/create")
        assert isinstance(env_idx, int)
        assert post(url, "/reset", {"env_idx": env_idx, "session_id": 2})[1] is None
        step = post(url, "/step", {"env_idx": env_idx, "action": "search[shoes]"})
        assert set(step) == {"state", "reward", "done", "info"} and "Page 1" in step["state"]
        with pytest.raises(urllib.error.HTTPError) as full:  # full: 503 with a message that says what to do
            post(url, "/create")
        assert full.value.code == 503 and "max_envs=1" in json.loads(full.value.read())["error"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            post(url, "/step", {"env_idx": 99, "action": "search[x]"})
        assert missing.value.code == 404


def test_client_raises_the_servers_refusals():
    with serving(make_app("textcraft", max_envs=1, idle_seconds=60)) as url:
        remote = AgentGymEnv(url, "textcraft", timeout=5, retries=1, backoff=0.01)
        remote.reset(options={"task": 0})  # takes the only slot
        other = AgentGymEnv(url, "textcraft", timeout=5, retries=1, backoff=0.01)
        t0 = time.monotonic()
        with pytest.raises(
            AgentGymServerError,
            match=r"textcraft server http://127.0.0.1:\d+: POST /create .*503.*max_envs=1",
        ):
            other.reset(options={"task": 0})
        assert time.monotonic() - t0 < 2
        remote.close()
        other.reset(options={"task": 0})  # the slot is free again
        other.close()
        with pytest.raises(
            AgentGymServerError, match=r"serves textcraft, not babyai: use AgentGymEnv\(url, 'textcraft'\)"
        ):
            AgentGymEnv(url, "babyai").reset(options={"task": 0})


class _Fake(BaseHTTPRequestHandler):
    """A broken server: 404 on GET (no hello route), 500 on POST, or (delay) after `delay` seconds."""

    delay = 0.0

    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        if self.delay:
            time.sleep(self.delay)
        body = b"Internal Server Error"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client gave up on a slow answer (a broken pipe): expected here


@contextmanager
def fake_server(delay: float = 0.0):
    handler = type("Handler", (_Fake,), {"delay": delay})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_failing_servers_give_clear_errors_in_time():
    with fake_server() as url:
        env = AgentGymEnv(url, "babyai", timeout=2, retries=2, backoff=0.01)
        with pytest.raises(
            AgentGymServerError, match=r"babyai server http://127.0.0.1:\d+: POST /create answered HTTP 500"
        ):
            env.reset(options={"task": 0})
    with fake_server(delay=3.0) as url:
        env = AgentGymEnv(url, "webshop", timeout=0.5, retries=3, backoff=0.01)
        t0 = time.monotonic()
        with pytest.raises(AgentGymServerError, match=r"POST /create: no answer within 0.5 s"):
            env.reset(options={"task": 0})
        assert time.monotonic() - t0 < 1.5  # a read timeout is not retried (the server may have run it)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: connection refused
    env = AgentGymEnv(dead, "textcraft", timeout=1, retries=2, backoff=0.01)
    t0 = time.monotonic()
    with pytest.raises(AgentGymServerError, match=r"could not connect after 3 tries .*start the server"):
        env.reset(options={"task": 0})
    assert time.monotonic() - t0 < 2
    sock.close()


def test_idle_envs_expire():
    app = make_app("textcraft", max_envs=4, idle_seconds=0.2)
    with serving(app) as url:
        remote = AgentGymEnv(url, "textcraft", timeout=5)
        remote.reset(options={"task": 1})
        assert len(app.state.pool) == 1
        time.sleep(0.6)  # the background sweep runs every idle_seconds / 4
        assert len(app.state.pool) == 0
        with pytest.raises(AgentGymServerError, match=r"expired after 0.2 s unused: create a new one"):
            remote.step("Action: inventory")
        remote.close()  # the server answers false for an expired env: nothing to warn about


@pytest.mark.slow  # 1000 create/step/close cycles: ~8 s; run with -m slow
def test_many_cycles_keep_memory_flat():
    """1000 create/reset/step/close cycles: the live-env count returns to 0 and RSS stays flat.
    (TextCraft: its envs build in 0.4 ms, so the cycles measure the server and client, not minigrid.)"""
    app = make_app("textcraft", max_envs=4, idle_seconds=600)
    process = psutil.Process()

    def cycles(n: int) -> None:
        for i in range(n):
            env = AgentGymEnv(url, "textcraft", timeout=10)
            env.reset(options={"task": i % 544})
            env.step("Action: get 1 oak logs")
            env.close()

    with serving(app) as url:
        cycles(100)  # warm up: level caches, allocator pools, threads
        gc.collect()
        before = process.memory_info().rss
        cycles(1000)
        gc.collect()
        after = process.memory_info().rss
        assert len(app.state.pool) == 0 and app.state.pool.ids() == []
    grown = (after - before) / 2**20
    print(f"RSS before {before / 2**20:.1f} MiB, after 1000 cycles {after / 2**20:.1f} MiB (+{grown:.1f})")
    assert grown < 8, f"RSS grew {grown:.1f} MiB over 1000 create/step/close cycles"


def test_recipes_play_agentgym_servers_by_name(tiny_policy, tmp_path, monkeypatch):
    """`agentprm collect --env agentgym-babyai` with $AGENTPRM_AGENTGYM_URL set plays the server's
    episodes: the same trajectories (responses, observations, rewards) as collecting on the local
    babyai-agentgym env with the same policy and seed; the records name the remote env."""
    from agentprm import jsonl
    from agentprm.recipes import collect

    def run(env: str, out: str) -> list[dict]:
        collect.main(
            collect.Args(
                policy=tiny_policy, env=env, tasks="0,7", n=2, max_rounds=3, max_new_tokens=24,
                run_dir=tmp_path / out, threads=1,
            )
        )  # fmt: skip
        return sorted(
            jsonl.read(tmp_path / out / "trajectories.jsonl"), key=lambda r: (r["task"], r["sample"])
        )

    with serving(make_app("babyai-agentgym", max_envs=8, idle_seconds=60)) as url:
        monkeypatch.setenv(E.URL_ENV, url)
        assert url in E.mode_note("agentgym-babyai")
        remote = run("agentgym-babyai", "remote")
    local = run("babyai-agentgym", "local")
    assert len(remote) == len(local) == 4 and {r["env"] for r in remote} == {"agentgym-babyai"}

    def play(r: dict) -> list:
        return [(s["response"], s["observation"], s["reward"]) for s in r["steps"]]

    assert [play(r) for r in remote] == [play(r) for r in local]
    assert [r["reward"] for r in remote] == [r["reward"] for r in local]


def test_remote_env_names_resolve_and_need_a_server(monkeypatch):
    assert E.family("agentgym-webshop") == "webshop"
    assert E.env_id("agentgym-textcraft") == "agentprm/AgentGym-TextCraft-v0"
    assert E.family("agentprm/AgentGym-WebShop-v0") == "webshop"
    monkeypatch.setenv(E.URL_ENV, "http://127.0.0.1:9")  # discard port: nothing listens
    env = E.make("agentgym-babyai")
    assert env.unwrapped.url == "http://127.0.0.1:9"
    env.unwrapped.retries, env.unwrapped.backoff = 0, 0.0
    with pytest.raises(AgentGymServerError, match="AGENTPRM_AGENTGYM_URL"):
        env.reset(options={"task": 0})
