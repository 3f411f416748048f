"""Math word problems as multi-step text environments (the paper's Section 5.3).

answers.py  the answer checker and the step splitter (pure functions)
data.py     the problems: the built-in generator, reasoning-gym's gsm_symbolic, the user's GSM8K JSONL
env.py      MathEnv: one reasoning step per env step, reward 1 for a correct "#### <n>" line
"""

from agentprm.envs.math.answers import check_answer, close_step, final_answer, parse_number, split_steps
from agentprm.envs.math.env import MAX_STEP_CHARS, REFUSED, SYSTEM_PROMPT, MathEnv

__all__ = [
    "MAX_STEP_CHARS",
    "REFUSED",
    "SYSTEM_PROMPT",
    "MathEnv",
    "check_answer",
    "close_step",
    "final_answer",
    "parse_number",
    "split_steps",
]
