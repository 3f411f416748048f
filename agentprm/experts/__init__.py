"""Scripted experts: BabyAI (minigrid's BabyAIBot), TextCraft (a planner) and WebShop (a shopper) write
ReAct responses; the math envs' expert writes the reference solution one step at a time."""

from __future__ import annotations

from agentprm.envs import MATH_ENVS


def make_expert(env: str, mistakes: float = 0.0, misread: float = 0.0, goal_mistakes: float = 0.0):
    """Short env name -> a fresh expert agent (reset(env), act(env) -> response).

    mistakes (BabyAI only): probability per round of a deliberate invalid command before the planned
    one (recovery data; see BabyAIExpert); misread: share of those whose Thought misstates the goal;
    goal_mistakes: share of those naming the goal's object while it is not in view."""
    if env in ("babyai", "babyai-agentgym"):  # the same expert for AgentGym-exact BabyAI
        from agentprm.experts.babyai import BabyAIExpert

        return BabyAIExpert(mistakes=mistakes, misread=misread, goal_mistakes=goal_mistakes)
    if mistakes or misread or goal_mistakes:
        raise ValueError(f"deliberate mistakes are implemented for the BabyAI expert only, not {env!r}")
    if env == "textcraft":
        from agentprm.experts.textcraft import TextCraftExpert

        return TextCraftExpert()
    if env == "webshop":
        from agentprm.experts.webshop import WebShopExpert

        return WebShopExpert()
    if env in MATH_ENVS:
        from agentprm.experts.math import MathExpert

        return MathExpert()
    raise ValueError(
        f"no expert for environment {env!r}: choose babyai, babyai-agentgym, textcraft, webshop or "
        f"one of the math envs {', '.join(MATH_ENVS)}"
    )
