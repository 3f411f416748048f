"""High-level environment steps per second for every registered env (targets: BabyAI >= 300/s,
TextCraft >= 1000/s, WebShop >= 500/s including search, on a 2-core machine). Random valid commands,
resets included in the time. WebShop draws a search (words of the instruction) or a click on one of
the page's clickables; its catalogue and index are built before the clock starts (once per process),
and that build is timed on its own first (the embedded catalogue's records, generated from
WebShop's attribute file: the first line printed).

    python benchmarks/env_speed.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings

import agentprm.envs as E

TEXTCRAFT_COMMANDS = [
    "inventory",
    "get 1 oak log",
    "craft 4 oak planks using 1 oak log",
    "get 2 stick",
    "look",
]


def _commands(info: dict, rng: random.Random) -> list[str]:
    actions = info.get("available_actions")
    if isinstance(actions, dict):  # WebShop: search with instruction words, or click a clickable
        words = info["goal"].split()
        query = " ".join(rng.sample(words, min(len(words), 4)))
        return [f"search[{query}]"] + [f"click[{c}]" for c in actions["clickables"] if c != "search"]
    return actions or TEXTCRAFT_COMMANDS


def measure(name: str, seconds: float, seed: int = 0) -> dict:
    env = E.make(name)
    rng = random.Random(seed)
    num_tasks = env.unwrapped.num_tasks if name != "babyai" else 400
    steps = resets = searches = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, info = env.reset(options={"task": rng.randrange(num_tasks)})
        resets += 1
        for _ in range(20):
            commands = _commands(info, rng)
            command = rng.choice(commands)
            _, _, terminated, truncated, info = env.step(f"Thought:\nx\n\nAction:\n{command}")
            steps += 1
            searches += command.startswith("search[")
            if terminated or truncated:
                break
    elapsed = time.perf_counter() - start
    return {
        "env": name,
        "steps": steps,
        "resets": resets,
        "searches": searches,
        "seconds": round(elapsed, 2),
        "steps_per_second": round(steps / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from agentprm.envs.webshop.catalogue import embedded_records

    start = time.perf_counter()
    embedded_records()
    print(json.dumps({"webshop_embedded_records_seconds": round(time.perf_counter() - start, 3)}))
    for name in sorted(set(E.ENV_IDS) - E.REMOTE, key=list(E.ENV_IDS).index):  # agentgym-* need a server
        try:
            E.make(name)
        except (ImportError, ValueError, OSError) as e:  # an optional extra or the user's data is missing
            print(json.dumps({"env": name, "skipped": str(e)[:200]}))
            continue
        print(json.dumps(measure(name, args.seconds)))


if __name__ == "__main__":
    main()
