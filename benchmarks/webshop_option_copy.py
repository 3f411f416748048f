"""Does a WebShop policy copy the goal's options? Teacher-forced, on goals it never trained on.

The tiny policy after 650 SFT steps wrote the expert's format but clicked options the goal did not
ask for (benchmarks/README.md, WebShop), so it never bought a fully right product. This measures that
one skill directly, cheaply and without sampling: the expert plays held-out training goals (neither
in SFT, the first --sft-tasks of the train split, nor in the PRM data, its last 200, nor test); at
each of its option clicks the policy scores every option value of the item page as the expert's
response "Thought:\\nI need to choose <v>.\\n\\nAction:\\nclick[<v>]" (sum of the response tokens'
log-probabilities, end-of-turn included, on the exact prompt the policy sees: fit_messages at
--max-prompt-tokens). Option accuracy = the share of clicks where the expert's value scores highest;
chance = mean 1 / (values on the page). A checkpoint's accuracy tracks whether more SFT steps help
before a whole greedy evaluation is worth its CPU.

    python benchmarks/webshop_option_copy.py --policy runs/reproduce-webshop/sft/model
    python benchmarks/webshop_option_copy.py --policy runs/reproduce-webshop/sft/checkpoint.pt
"""

from __future__ import annotations

import dataclasses
import re

import torch
import tyro

from agentprm import envs as E
from agentprm.envs.splits import parse_tasks
from agentprm.envs.webshop.pages import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, SUB_PAGES
from agentprm.experts import make_expert
from agentprm.models.loading import load_policy_model
from agentprm.models.presets import build_model
from agentprm.ppo import token_logprobs
from agentprm.prompts import fit_messages, to_text, token_counter, with_response
from agentprm.rollout import run_episode
from agentprm.types import State

_CHOOSE = re.compile(r"I need to choose (.*)\.\n\nAction:\nclick\[(.*)\]$")
# the page's buttons (lower-cased, as clickables list them); every other clickable is an option value
_BUTTONS = {b.lower() for b in (BACK_TO_SEARCH, PREV_PAGE, NEXT_PAGE, BUY_NOW, *SUB_PAGES)}


@dataclasses.dataclass
class Args:
    policy: str = "runs/reproduce-webshop/sft/model"
    """an HF folder, or a running SFT's checkpoint.pt (its weights and tokenizer, on --preset)"""
    preset: str = "tiny"
    goals: str = "2000:2100"
    """positions in the train split (neither SFT's first 2000, nor the PRM data's last 200, nor test)"""
    max_prompt_tokens: int = 1024
    max_rounds: int = 6
    threads: int | None = None


def option_steps(tasks: list[int], max_rounds: int) -> list[tuple[State, str, list[str]]]:
    """(s_t, the expert's option value, the option values of the page) at every expert option click."""
    out = []
    env = E.make("webshop", max_episode_steps=max_rounds)
    for task in tasks:
        traj = run_episode("webshop", task, make_expert("webshop"), env=env, max_rounds=max_rounds)
        env.reset(options={"task": task})
        info = None
        for t, step in enumerate(traj.steps):
            m = _CHOOSE.search(step.response)
            if m and info is not None:
                values = [c for c in info["available_actions"]["clickables"] if c not in _BUTTONS]
                if m.group(2) in values and len(values) > 1:
                    out.append((State.of(traj.initial_observation, traj.steps[:t]), m.group(2), values))
            _, _, _, _, info = env.step(step.response)
    return out


@torch.no_grad()
def response_logprob(model, tok, prompt: str, texts: list[str]) -> list[float]:
    """Sum of log p(token) over each text's tokens after the shared `prompt` (a prefix of each)."""
    if not all(x.startswith(prompt) for x in texts):
        raise ValueError("each text must extend the prompt (the chat template changed?)")
    head = tok(prompt, add_special_tokens=False)["input_ids"]
    n = len(head)
    ids = [tok(x, add_special_tokens=False)["input_ids"] for x in texts]
    if any(x[:n] != head or len(x) <= n for x in ids):
        raise ValueError("the prompt's tokens must be a prefix of each text's (a merge across the boundary?)")
    width = max(map(len, ids))
    batch = torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x in ids])
    att = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    logp = token_logprobs(model(input_ids=batch, attention_mask=att).logits, batch)
    return [float(logp[row, n : len(x)].sum()) for row, x in enumerate(ids)]


def main(args: Args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.policy.endswith(".pt"):
        ckpt = torch.load(args.policy, weights_only=False)
        tok = ckpt["tokenizer"]
        model = build_model(args.preset, tok)
        model.load_state_dict(ckpt["model"])
        print(f"{args.policy}: SFT step {ckpt['step']}")
    else:
        model, tok = load_policy_model(args.policy)
    model.eval()
    count = token_counter(tok)
    lo, hi = (int(x) for x in args.goals.split(":"))
    tasks = parse_tasks("webshop", "train")[lo:hi]
    steps = option_steps(tasks, args.max_rounds)
    right, chance = 0, 0.0
    for state, want, values in steps:
        msgs = fit_messages("webshop", state, count, args.max_prompt_tokens)
        prompt = to_text(tok, msgs)
        texts = [
            to_text(
                tok,
                with_response("webshop", msgs, f"Thought:\nI need to choose {v}.\n\nAction:\nclick[{v}]"),
                False,
            )
            for v in values
        ]
        scores = response_logprob(model, tok, prompt, texts)
        right += values[max(range(len(values)), key=scores.__getitem__)] == want
        chance += 1 / len(values)
    result = {
        "policy": args.policy,
        "option_clicks": len(steps),
        "goals": len(tasks),
        "option_accuracy": round(right / max(1, len(steps)), 3),
        "chance": round(chance / max(1, len(steps)), 3),
    }
    print(result)
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
