"""PRM scoring: one forward pass per trajectory vs one forward pass per step, as a ratio in one run
(target >= 5x for 10-step trajectories), plus PRM training tokens/s.

    python benchmarks/prm_speed.py [--model runs/sft-babyai/model] [--steps 10] [--trajectories 16]

Trajectories are real BabyAI episodes (the expert's, cut or padded with "turn left" steps to
exactly --steps steps). Without --model a fresh tiny value model is used (speed does not depend
on the weights).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch

from agentprm.experts import make_expert
from agentprm.models.tokenizer import env_tokenizer
from agentprm.prm.batch import encode, pad, step_values
from agentprm.prm.losses import prm_loss
from agentprm.prm.value import build_value_model, load_value_model, token_values
from agentprm.prompts import render_messages, to_text
from agentprm.rollout import replay, run_episode
from agentprm.types import Step, Trajectory


def fixed_length(task: int, steps: int) -> Trajectory:
    expert = run_episode("babyai", task, make_expert("babyai"))
    responses = [s.response for s in expert.steps][: steps - 1]
    responses += ["Thought:\nI will look around.\n\nAction:\nturn left"] * (steps - len(responses))
    _, obs = replay("babyai", task, responses)
    return Trajectory(
        env="babyai",
        task=task,
        initial_observation=obs[0],
        reward=0.0,
        success=False,
        terminated=False,
        truncated=False,
        policy="bench",
        steps=[Step(r, None, o) for r, o in zip(responses, obs[1:], strict=True)],
    )


def value_model(path: str | None, trajs):
    """(model, tokenizer) in eval mode: a PRM / backbone folder, or a fresh tiny value model whose
    tokenizer is trained on `trajs` (speed does not depend on the weights)."""
    if path:
        model, tok = load_value_model(path, device="cpu")
    else:
        tok = env_tokenizer("babyai", trajs)
        model = build_value_model("tiny", tok)
    return model.eval(), tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--trajectories", type=int, default=16)
    parser.add_argument("--budget", type=int, default=2048)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    trajs = [fixed_length(400 + i, args.steps) for i in range(args.trajectories)]
    model, tok = value_model(args.model, trajs)
    enc = encode("babyai", trajs, tok, args.budget)
    with torch.no_grad():
        start = time.perf_counter()
        for i in range(0, len(enc), 8):
            step_values(model, enc[i : i + 8], tok.pad_token_id)
        one_pass = time.perf_counter() - start
        start = time.perf_counter()
        for t in trajs:  # one forward pass per step: the prefix (s_t, a_t) re-encoded every time
            for k in range(t.num_steps):
                msgs = render_messages("babyai", t.state(k)) + [
                    {"role": "assistant", "content": t.steps[k].response}
                ]
                ids = torch.tensor([tok(to_text(tok, msgs, add_generation_prompt=False))["input_ids"]])
                token_values(model, ids, torch.ones_like(ids))
        per_step = time.perf_counter() - start
    n_steps = sum(t.num_steps for t in trajs)
    # training throughput: forward + backward over batches of 8 trajectories
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(enc), 8):
        batch = enc[i : i + 8]
        values, _ = step_values(model, batch, tok.pad_token_id)
        v, m = pad(values)
        loss, _ = prm_loss(v, torch.zeros_like(v), m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens += sum(len(s.ids) for e in batch for s in e.segments)
    train = time.perf_counter() - start
    print(
        json.dumps(
            {
                "trajectories": len(trajs),
                "steps_per_trajectory": args.steps,
                "one_pass_steps_per_second": round(n_steps / one_pass, 1),
                "per_step_steps_per_second": round(n_steps / per_step, 1),
                "speedup": round(per_step / one_pass, 2),
                "training_tokens_per_second": round(tokens / train, 1),
                "model": args.model or "fresh tiny preset",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
