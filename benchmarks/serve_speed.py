"""PRM server throughput: N concurrent clients for S seconds vs one request at a time.

    python benchmarks/serve_speed.py [--prm runs/prm-td] [--clients 8] [--seconds 10] [--soak 0.2]

The server (`agentprm serve`'s code: make_app under uvicorn) runs in a child process, so clients
and server do not share one interpreter. Without --prm a fresh value model of the "tiny" preset
(the demo's size; tokenizer trained on the payload trajectories) is written to a temp folder: speed
does not depend on the weights. Payloads: BabyAI expert trajectories (tasks 400..; /score_steps with
a trajectory) and beam-search states with 4 candidates each (/score_steps with state + candidates),
alternating. "Steps" = steps of a trajectory or candidates of a state, each one M value.

Phases: (1) one client, one request at a time, S seconds; (2) --clients clients, S seconds. Each
reports steps/s, requests/s, p50/p99 latency and errors. Every good answer is checked against an
in-process PRMScorer on the same weights (|diff| < 1e-4; else it counts as an error).
--soak P: in phase 2 each request is, with probability P, a bad payload (malformed JSON, unknown
env, wrong types, too large, ...) that must get a 4xx; a 5xx, a dropped connection or a wrong
answer counts as an error. At the end /health must still answer "ok".
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from agentprm.experts import make_expert
from agentprm.models.tokenizer import env_tokenizer
from agentprm.prm.scorers import PRMScorer
from agentprm.prm.value import build_value_model, load_value_model
from agentprm.rollout import run_episode

BUDGET = 512
JUNK = ["Thought: hmm\nAction: turn left", "Action: pick up purple key 9", "Action: go forward"]
BAD = [
    b"{not json",
    b"[1, 2, 3]",
    json.dumps({"env": "nethack", "messages": [{"role": "user", "content": "o"}]}).encode(),
    json.dumps({"env": 7, "trajectory": {}}).encode(),
    json.dumps({"env": "babyai", "trajectory": {"env": "babyai"}}).encode(),
    json.dumps({"env": "babyai", "messages": []}).encode(),
    json.dumps({"env": "babyai", "state": {"initial_observation": "o"}, "candidates": []}).encode(),
    json.dumps(
        {"env": "babyai", "state": {"initial_observation": "o"}, "candidates": ["go " * 70000]}
    ).encode(),
    json.dumps({"env": "babyai", "messages": [{"role": "user", "content": "x" * 3_000_000}]}).encode(),
]


def post(url: str, data: bytes) -> tuple[int, object]:
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:200]


def start_server(folder: Path, threads: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import warnings; warnings.filterwarnings('ignore');"
        "from pathlib import Path; from agentprm.recipes import serve;"
        f"serve.main(serve.Args(prm=Path({str(folder)!r}), port={port}, threads={threads}, max_prompt_tokens={BUDGET}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode} (see its error above)")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start within 60 s")


def run_phase(url: str, jobs, clients: int, seconds: float, soak: float, seed: int) -> dict:
    """`clients` threads send requests for `seconds`; returns the phase's numbers."""
    lock = threading.Lock()
    stats = {
        "steps": 0,
        "requests": 0,
        "bad_sent": 0,
        "bad_refused": 0,
        "errors": 0,
        "latency": [],
        "first": [],
    }
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        rng = random.Random(seed + k)
        while time.monotonic() < stop:
            if rng.random() < soak:
                status, _ = post(f"{url}/score_steps", rng.choice(BAD))
                with lock:
                    stats["bad_sent"] += 1
                    stats["bad_refused"] += 400 <= status < 500
                    stats["errors"] += not 400 <= status < 500
                    if not 400 <= status < 500:
                        stats["first"].append(f"bad payload answered {status}")
                continue
            body, want, steps = rng.choice(jobs)
            start = time.perf_counter()
            try:
                status, answer = post(f"{url}/score_steps", body)
            except OSError as e:
                status, answer = -1, repr(e)
            elapsed = time.perf_counter() - start
            ok = status == 200 and max(abs(a - b) for a, b in zip(answer["scores"], want, strict=True)) < 1e-4
            with lock:
                stats["requests"] += 1
                stats["latency"].append(elapsed)
                if ok:
                    stats["steps"] += steps
                else:
                    stats["errors"] += 1
                    stats["first"].append(f"{status}: {str(answer)[:120]}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    lat = sorted(stats["latency"]) or [float("nan")]
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": stats["requests"],
        "steps_per_s": round(stats["steps"] / wall, 1),
        "requests_per_s": round(stats["requests"] / wall, 1),
        "p50_ms": round(1000 * lat[len(lat) // 2], 1),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
        "bad_sent": stats["bad_sent"],
        "bad_refused_4xx": stats["bad_refused"],
        "errors": stats["errors"],
        "first_errors": stats["first"][:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prm", default=None, help="an HF PRM folder (default: a fresh tiny value model)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=0.0, help="share of bad payloads in phase 2")
    parser.add_argument("--tasks", type=int, default=12, help="BabyAI expert trajectories (tasks 400..)")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    trajs = [run_episode("babyai", 400 + i, make_expert("babyai")) for i in range(args.tasks)]
    tmp = tempfile.TemporaryDirectory()
    folder = Path(args.prm) if args.prm else Path(tmp.name) / "model"
    if not args.prm:
        tok = env_tokenizer("babyai", trajs)
        build_value_model("tiny", tok).save_pretrained(folder)
        tok.save_pretrained(folder)
    model, tok = load_value_model(folder, device="cpu")
    local = PRMScorer(model.eval(), tok, budget=BUDGET)
    jobs = []  # (request body, expected scores, steps it scores)
    for t, want in zip(trajs, local.score_trajectories("babyai", trajs), strict=True):
        jobs.append((json.dumps({"env": "babyai", "trajectory": t.to_dict()}).encode(), want, t.num_steps))
        state, cands = t.state(t.num_steps - 1), [t.steps[-1].response, *JUNK]
        body = {
            "env": "babyai",
            "state": {
                "initial_observation": state.initial_observation,
                "responses": list(state.responses),
                "observations": list(state.observations),
            },
            "candidates": cands,
        }
        jobs.append((json.dumps(body).encode(), local.score("babyai", [state], [cands])[0], len(cands)))

    proc, url = start_server(folder, args.threads)
    try:
        one = run_phase(url, jobs, 1, args.seconds, 0.0, args.seed)
        many = run_phase(url, jobs, args.clients, args.seconds, args.soak, args.seed)
        with urllib.request.urlopen(f"{url}/health", timeout=10) as r:
            health = json.loads(r.read())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps({"one_at_a_time": one, "concurrent": many, "health_after": health}, indent=1))
    print(
        f"steps/s: {one['steps_per_s']} one at a time -> {many['steps_per_s']} with {args.clients} clients "
        f"({many['steps_per_s'] / max(one['steps_per_s'], 1e-9):.2f}x); p50/p99 {many['p50_ms']}/{many['p99_ms']} ms; "
        f"errors {one['errors'] + many['errors']}; bad payloads refused {many['bad_refused_4xx']}/{many['bad_sent']}; "
        f"health after: {health['status']}"
    )


if __name__ == "__main__":
    main()
