"""Scripted experts that write ReAct responses: BabyAI (minigrid's BabyAIBot) and TextCraft (a planner), WebShop (a shopper)."""

from __future__ import annotations


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
    raise ValueError(f"no expert for environment {env!r}: choose babyai, textcraft or webshop")
