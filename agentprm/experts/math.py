r"""Math expert: writes the reference solution, one step per env step (data for SFT and the PRM).

The steps are answers.split_steps of the problem's reference solution: its lines (or paragraphs),
each ending at the step delimiter "\n", then "#### <answer>". The expert is stateless: the env's
step count says which step comes next, so it also continues a replayed prefix of its own steps.
Past the reference (a prefix written by someone else), it writes the final line.

    >>> import agentprm.envs as E
    >>> env = E.make("math")
    >>> _ = env.reset(options={"task": 0})
    >>> expert = MathExpert()
    >>> expert.reset(env)
    >>> expert.act(env)
    'The notebooks cost 7 * $16 = $112.\n'
"""

from __future__ import annotations

from agentprm.envs.math.answers import split_steps


class MathExpert:
    """Scripted expert for the math envs (agentprm/Math-v0, GSMSymbolic-v0, GSM8K-v0)."""

    name = "expert:math-reference"

    def reset(self, env) -> None:
        """Nothing to keep between steps: the env's step count picks the next step."""

    def act(self, env) -> str:
        base = env.unwrapped
        steps = split_steps(base.problem.solution)
        return steps[min(base.steps_taken, len(steps) - 1)]
