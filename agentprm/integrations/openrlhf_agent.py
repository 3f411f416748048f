"""OpenRLHF's agent interface over agentprm's environments, with a PRM's rewards: RL at cluster scale.

OpenRLHF (openrlhf.utils.agent) plays an agent through an `AgentExecutor` loaded from the file given
to `--train.agent_func_path`: each prompt of the dataset gets an `AgentInstance`, reset with the
prompt and its label, then stepped with each generated response until done; the per-step rewards
are summed into the sample's reward. This file is that module:

    python -m openrlhf.cli.train_ppo_ray ... \\
        --train.agent_func_path $(python -c "import agentprm.integrations.openrlhf_agent as m; print(m.__file__)") \\
        --data.input_key input --data.label_key label ...

with a dataset whose label names the task, "<env>:<task>" (e.g. "webshop:26", "babyai-agentgym:7";
`agentprm.integrations.openrlhf_agent.dataset_rows` writes such rows for a split). The reward is
set by environment variables, read when an instance is made:
  AGENTPRM_REWARD        env (the outcome; default), orm, pvm, agentprm or mc (agentprm.ppo.turn_rewards)
  AGENTPRM_PRM           the reward model's folder (a train-prm run dir or its model/), for orm/pvm/agentprm
  AGENTPRM_OUTCOME_COEF  weight of the outcome added at the end with a reward model (default 1)
  AGENTPRM_MAX_ROUNDS    round cap (default: the env's)
The observation text the executor tokenizes is the policy's chat template applied to agentprm's
renderer (the instruction, "OK.", o_0, then each observation as a user turn), so the trajectory
OpenRLHF trains on is the text agentprm's SFT and PRM saw. With a reward model the step rewards are
progress M_t - M_{t-1} (summed by OpenRLHF, they telescope to M_{T-1} - M_{-1} + the outcome: the
executor keeps only the sum). The reward model runs in the rollout worker's process (CPU or its GPU).

`LocalEngine` is an `llm_engine` over a transformers model: the executor runs without vLLM (CPU
checks, tests/test_openrlhf_agent.py).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor

import agentprm.envs as E
from agentprm import ppo
from agentprm.envs.splits import parse_tasks
from agentprm.prm.batch import encode, score_encoded
from agentprm.prm.value import load_value_model, reward_model_folder
from agentprm.prompts import OK_REPLY, instruction, to_text
from agentprm.types import Step, Trajectory


def parse_label(label: str) -> tuple[str, int]:
    """ "webshop:26" -> ("webshop", 26); ValueError saying the format otherwise.

    >>> parse_label("babyai-agentgym:7")
    ('babyai-agentgym', 7)
    """
    env, sep, task = str(label).rpartition(":")
    if not sep or not task.isdigit():
        raise ValueError(f"label {label!r:.80} must be '<env>:<task>', e.g. 'webshop:26'")
    if E.short_name(env) in E.MATH_ENVS:
        # Its feedback opens a user turn after each response; a math step continues the solution
        # in the same assistant message (agentprm.prompts), which this interface cannot express.
        raise ValueError(f"the OpenRLHF agent plays babyai, textcraft and webshop, not {env!r:.40}")
    return E.short_name(env), int(task)


def dataset_rows(env: str, tasks: str) -> list[dict]:
    """OpenRLHF dataset rows ({"input", "label"}) for the tasks of a split or range of an env.

    >>> dataset_rows("textcraft", "0:2")
    [{'input': 'textcraft:0', 'label': 'textcraft:0'}, {'input': 'textcraft:1', 'label': 'textcraft:1'}]
    """
    env = E.short_name(env)
    return [{"input": f"{env}:{t}", "label": f"{env}:{t}"} for t in parse_tasks(env, tasks)]


@lru_cache(maxsize=2)
def _reward_model(path: str):
    model, tok = load_value_model(reward_model_folder(path))
    return model.eval().requires_grad_(False), tok


class AgentInstance(AgentInstanceBase):
    """One episode of an agentprm environment, rewarded by the outcome or a reward model."""

    shared_tokenizer = None  # the training run's tokenizer: one per run, set before any instance

    def __init__(self, *args, **kwargs):
        self.reward = os.environ.get("AGENTPRM_REWARD", "env")
        if self.reward not in ppo.REWARD_SOURCES:
            raise ValueError(f"AGENTPRM_REWARD={self.reward!r}: choose one of {ppo.REWARD_SOURCES}")
        self.prm_path = os.environ.get("AGENTPRM_PRM")
        if self.reward != "env" and not self.prm_path:
            raise ValueError(f"AGENTPRM_REWARD={self.reward} needs AGENTPRM_PRM (a reward model folder)")
        self.outcome_coef = float(os.environ.get("AGENTPRM_OUTCOME_COEF", "1"))
        rounds = os.environ.get("AGENTPRM_MAX_ROUNDS")
        self.max_rounds = int(rounds) if rounds else None
        self.tokenizer = AgentInstance.shared_tokenizer  # the run's chat template (AgentExecutor sets it)
        self.steps: list[Step] = []
        self.paid = 0.0  # the sum of the rewards returned so far

    async def reset(self, states: dict, **kwargs):
        self.env_name, self.task = parse_label(states.get("label") or states["observation"])
        cap = self.max_rounds or E.MAX_ROUNDS[self.env_name]
        self.env = E.make(self.env_name, max_episode_steps=cap)
        self.o0, _ = self.env.reset(options={"task": self.task})
        self.steps, self.paid = [], 0.0
        messages = [
            {"role": "user", "content": instruction(self.env_name)},
            {"role": "assistant", "content": OK_REPLY},
            {"role": "user", "content": self.o0},
        ]
        return {"observation": to_text(self.tokenizer, messages, add_generation_prompt=True)}

    def _feedback(self, observation: str) -> str:
        """The text after a response: the observation as a user turn and the next assistant turn
        opened (the chat template's own strings, found by rendering around a marker). The response's
        end-of-turn token is not repeated: the engine's tokens end with it (vLLM keeps the EOS it
        stopped at in token_ids), so only a response cut by max_tokens lacks it."""
        marker = "\x00agentprm\x00"
        msgs = [{"role": "user", "content": "u"}, {"role": "assistant", "content": marker}]
        before = to_text(self.tokenizer, msgs, add_generation_prompt=False)
        after = to_text(
            self.tokenizer, [*msgs, {"role": "user", "content": observation}], add_generation_prompt=True
        )
        text = after[before.index(marker) + len(marker) :]
        eos = self.tokenizer.eos_token or ""
        return text[len(eos) :] if eos and text.startswith(eos) else text

    def _rewards_so_far(self, outcome: float, done: bool) -> list[float]:
        n = len(self.steps)
        if self.reward == "env":
            return ppo.turn_rewards("env", outcome if done else 0.0, [0.0] * n)
        model, tok = _reward_model(self.prm_path)
        traj = Trajectory(
            env=self.env_name, task=self.task, initial_observation=self.o0, steps=tuple(self.steps),
            reward=outcome, success=False, terminated=done, truncated=False, policy="openrlhf",
        )  # fmt: skip
        prev: list = []
        values = score_encoded(
            model, encode(self.env_name, [traj], tok, None), 1, tok.pad_token_id, q_prev=prev
        )
        rewards = ppo.turn_rewards(
            self.reward, outcome if done else 0.0, values[0].tolist(), float(prev[0]), self.outcome_coef
        )
        if self.reward == "orm" and not done:
            rewards[-1] = 0.0  # the ORM pays once, at the end
        return rewards

    async def step(self, state_dict: dict, **kwargs):
        response = state_dict["action_text"]
        obs, r, terminated, truncated, info = self.env.step(response)
        done = bool(terminated or truncated)
        self.steps.append(
            Step(response=response, action=info.get("action"), observation=obs, reward=float(r))
        )
        outcome = float(info.get("score", r)) if done else 0.0
        rewards = self._rewards_so_far(outcome, done)
        # Pay the newest turn's reward; for orm/env everything is paid at the end.
        step_reward = rewards[-1] if self.reward in ppo.PROGRESS_SOURCES else (sum(rewards) if done else 0.0)
        self.paid += step_reward
        return {
            "rewards": torch.tensor(step_reward),
            "scores": torch.tensor(outcome if done else 0.0),
            "environment_feedback": "" if done else self._feedback(obs),
            "done": done,
            "extra_logs": {
                "success": torch.tensor(float(info.get("success", False))),
                "turns": torch.tensor(float(len(self.steps))),
            },
        }


class AgentExecutor(MultiTurnAgentExecutor):
    """What OpenRLHF's --train.agent_func_path loads: the multi-turn executor over AgentInstance,
    each instance given the run's tokenizer (its chat template renders the observations)."""

    def __init__(self):
        super().__init__(AgentInstance)

    async def execute(
        self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None
    ):
        # OpenRLHF builds each instance without arguments; every call of a run has the same tokenizer
        AgentInstance.shared_tokenizer = hf_tokenizer
        return await super().execute(
            prompt, label, sampling_params, max_length, hf_tokenizer, llm_engine, images
        )


# ---- a local llm_engine: run the executor without vLLM ---------------------------------------------------


@dataclass
class SamplingParams:
    """The fields of vllm.SamplingParams the executor reads and sets."""

    max_tokens: int | None = 96
    temperature: float = 1.0
    logprobs: int | None = None
    seed: int = 0


@dataclass
class _Completion:
    token_ids: list[int]
    text: str
    finish_reason: str
    logprobs: list | None = None


@dataclass
class _RequestOutput:
    outputs: list[_Completion] = field(default_factory=list)


class LocalEngine:
    """`await generate(prompt_token_ids, sampling_params)` over a transformers causal LM, returning
    vLLM's RequestOutput shape (outputs[0].token_ids / text / finish_reason); stops at the
    tokenizer's end-of-turn token, which stays in token_ids (as vLLM's stop at EOS) and out of text."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        ids = torch.tensor([list(prompt_token_ids)], device=next(self.model.parameters()).device)
        greedy = sampling_params.temperature == 0
        torch.manual_seed(sampling_params.seed)
        with torch.no_grad():
            out = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max(1, int(sampling_params.max_tokens or 1)),
                do_sample=not greedy,
                temperature=None if greedy else sampling_params.temperature,
                top_p=None,
                top_k=None,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[0, ids.shape[1] :].tolist()
        stopped = bool(new) and new[-1] == self.tokenizer.eos_token_id
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return _RequestOutput([_Completion(new, text, "stop" if stopped else "length")])


def run_episode(label: str, model, tokenizer, max_length: int = 2048, **sampling) -> dict:
    """One episode through OpenRLHF's executor with a local model: the dict OpenRLHF trains on."""
    executor = AgentExecutor()
    params = SamplingParams(**sampling)
    return asyncio.run(
        executor.execute(label, label, params, max_length, tokenizer, LocalEngine(model, tokenizer))
    )
