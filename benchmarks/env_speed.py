"""High-level environment steps per second for every registered env (targets: BabyAI >= 300/s,
TextCraft >= 1000/s on a 2-core machine). Random valid commands, resets included in the time.

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


def measure(name: str, seconds: float, seed: int = 0) -> dict:
    env = E.make(name)
    rng = random.Random(seed)
    steps = resets = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        task = rng.randrange(400) if name == "babyai" else rng.randrange(544)
        _, info = env.reset(options={"task": task})
        resets += 1
        for _ in range(20):
            commands = info.get("available_actions") or TEXTCRAFT_COMMANDS
            _, _, terminated, truncated, info = env.step(f"Thought:\nx\n\nAction:\n{rng.choice(commands)}")
            steps += 1
            if terminated or truncated:
                break
    elapsed = time.perf_counter() - start
    return {
        "env": name,
        "steps": steps,
        "resets": resets,
        "seconds": round(elapsed, 2),
        "steps_per_second": round(steps / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in E.ENV_IDS:
        print(json.dumps(measure(name, args.seconds)))


if __name__ == "__main__":
    main()
