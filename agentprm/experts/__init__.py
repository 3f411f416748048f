"""Scripted experts that write ReAct responses: BabyAI (minigrid's BabyAIBot) and TextCraft (a planner)."""

from __future__ import annotations


def make_expert(env: str):
    """Short env name -> a fresh expert agent (reset(env), act(env) -> response)."""
    if env == "babyai":
        from agentprm.experts.babyai import BabyAIExpert

        return BabyAIExpert()
    if env == "textcraft":
        from agentprm.experts.textcraft import TextCraftExpert

        return TextCraftExpert()
    raise ValueError(f"no expert for environment {env!r}: choose babyai or textcraft")
