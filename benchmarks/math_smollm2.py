"""A pretrained policy zero-shot on math (issue 20's policy survey): SmolLM2-135M-Instruct answers the
first N test problems of a math env in ONE response each (it does not stop after a line), and we
count how many the env rewards (a correct "#### <n>" line), how many responses write "####" at all,
and how many end with the right number however written (a lenient reading, for context only).

    pip install 'agentprm[smollm2]'
    python benchmarks/math_smollm2.py --problems 20 --temperature 0.0
"""

from __future__ import annotations

import argparse
import json
import re
import time

from agentprm.envs import make
from agentprm.envs.splits import parse_tasks
from agentprm.policies import make_policy
from agentprm.policy import SamplingParams
from agentprm.prompts import render_messages
from agentprm.types import State

NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="math")
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    tasks = parse_tasks(args.env, "test")[: args.problems]
    policy = make_policy("smollm2", batch_size=len(tasks), max_prompt_tokens=1024)
    envs, messages = [], []
    for t in tasks:
        env = make(args.env)
        o, _ = env.reset(options={"task": t})
        envs.append(env)
        messages.append(render_messages(args.env, State(o)))
    start = time.time()
    params = SamplingParams(n=1, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=0)
    outs = policy.generate(messages, params)
    seconds = time.time() - start
    rewarded = hashes = lenient = 0
    for env, (gen,) in zip(envs, outs, strict=True):
        reference = float(env.unwrapped.problem.answer)
        _, reward, *_ = env.step(gen.text)
        rewarded += reward > 0
        hashes += "####" in gen.text
        numbers = NUMBER.findall(gen.text)
        lenient += bool(numbers) and float(numbers[-1].replace(",", "").rstrip(".")) == reference
    print(
        json.dumps(
            {
                "env": args.env,
                "problems": len(tasks),
                "temperature": args.temperature,
                "env_rewarded": rewarded,
                "writes_####": hashes,
                "last_number_correct": lenient,
                "seconds": round(seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
