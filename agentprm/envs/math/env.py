r"""Math word problems as a multi-step text environment (the paper's Section 5.3).

The instruction is the problem; each step() takes ONE reasoning step; the episode ends at the final
answer "#### <number>" (GSM8K's own format) or at the step cap registered with the env.

    >>> env = MathEnv()
    >>> env.reset(options={"task": 2})[0][:44]
    'Lena bakes 5 trays of cookies with 16 cookie'
    >>> env.step("Lena bakes 5 * 16 = 80 cookies.\n")[:3]
    ('', 0.0, False)
    >>> env.step("#### 8")[:3]
    ('The final answer 8 is correct.', 1.0, True)

Step format (what the system prompt asks for, agentprm.prompts renders, the expert writes):
- A step is one line of reasoning ending at the delimiter "\n" (answers.DELIMITER). A response
  may hold several lines; it is still one step. A response without the newline is a step too: the
  renderer closes it with one (answers.close_step), so a server's stop=["\n"] (which drops the
  newline it stopped at) and a model that ends its turn right after the step render alike.
- The final step holds "####": the text after its first "####", to the end of that line, is the
  final answer. Reward 1.0 if it states the reference number (answers.check_answer: exact, and
  tolerant of commas, currency, units and trailing zeros), else 0.0; the episode terminates
  either way and the observation says which, or why the answer could not be read ("#### ",
  "#### twelve", "#### ١٢", "#### 12 or 13").
- The observation after any other step is empty: generation resumes after the previous step (the
  paper's setting), and the renderer shows the steps so far as ONE assistant message that the next
  step continues (agentprm.prompts.render_messages).
- A step over MAX_STEP_CHARS characters is refused: the episode ends with reward 0 and an
  observation that starts with REFUSED (agentprm.envs.rejected; SFT never imitates it). It ends
  the episode because no observation of a step is ever shown to the policy.
- A policy that never writes "####" (e.g. "The answer is 12." alone) plays on until the step cap
  truncates the episode with reward 0; the record's truncated=True says so.
Nothing a policy writes raises: only a non-str response (a caller's bug) is refused, with NOT_TEXT
as its observation, without ending the episode (as every TextEnv does with a malformed response).

Why one assistant message (agentprm.prompts): with no observation between steps, alternating turns
would put an end-of-turn token and an empty user turn between two lines of one solution, a layout
no instruct model has seen; continuing the message is the paper's "generation resumes after the
previous step". The policy ends each step with its end-of-turn token (SFT teaches "step\n<eos>"),
and the PRM reads M(s_t, a_t) at that token in a sequence that ends there, one sequence per step.

Sources (envs/math/data.py), one registered id each (envs/__init__.py):
  source="builtin"       agentprm/Math-v0         the built-in generator (default; CI)
  source="gsm_symbolic"  agentprm/GSMSymbolic-v0  reasoning-gym's gsm_symbolic (pip install 'agentprm[math]')
  source="gsm8k"         agentprm/GSM8K-v0        the user's GSM8K JSONL: data_path=..., else $AGENTPRM_MATH_DATA

info: "task", "success", "score" (1.0 once the final answer is correct), "answer" (the final answer's
text, None before it), "steps" (steps taken), "source" (where the problem came from).
`problem` (data.Problem) and `steps_taken` are public for the expert and tests.
"""

from __future__ import annotations

from agentprm.envs.base import TextEnv
from agentprm.envs.math import data
from agentprm.envs.math.answers import FINAL, check_answer, final_answer, format_number
from agentprm.envs.react import Parsed

SYSTEM_PROMPT = (
    "You are given a math word problem. Solve it step by step. Every round, write exactly ONE "
    'reasoning step: a single line, such as a calculation "48 / 2 = 24 clips in May.", ending with a '
    "newline. Your next step continues the solution right after it; nothing else is said in between.\n"
    f'When you know the answer, write the final step as "{FINAL} <number>": the number alone, in digits '
    f'0-9, without units (for example "{FINAL} 72"). The episode ends at that line, and only the number '
    "after it is checked.\n\n"
)
# About ten times the longest reference step of the built-in and gsm_symbolic data (a 208-character
# paragraph); a longer response is refused (module docstring).
MAX_STEP_CHARS = 2000
REFUSED = "Step refused: "
NOT_TEXT = "Step refused: the response is not text."
SOURCES = ("builtin", "gsm_symbolic", "gsm8k")


def problems(source: str, data_path=None):
    """The task list of a source (a sequence of data.Problem; index = task)."""
    if source == "builtin":
        return data.BuiltinProblems()
    if source == "gsm_symbolic":
        return data.gsm_symbolic_problems()
    if source == "gsm8k":
        return data.user_problems(data_path).problems
    raise ValueError(f"unknown math source {source!r}: choose one of {SOURCES}")


class MathEnv(TextEnv):
    """Math word problems, one reasoning step per env step (module docstring).

    Deterministic: the task alone fixes the problem (the reset seed changes nothing).
    """

    def __init__(self, source: str = "builtin", data_path=None, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        if data_path is not None and source != "gsm8k":
            raise ValueError(f"data_path is for the user's GSM8K data (source='gsm8k'), not {source!r}")
        self.source = source
        self.problems = problems(source, data_path)
        self.num_tasks = len(self.problems)
        self.problem: data.Problem | None = None
        self.steps_taken = 0
        self.answer: str | None = None
        self.success = False

    def _parse(self, response) -> Parsed:
        if not isinstance(response, str):
            return Parsed(None, NOT_TEXT)
        return Parsed(response.strip(), None)

    def _reset_task(self, task: int) -> tuple[str, dict]:
        self.problem = self.problems[task]
        self.steps_taken, self.answer, self.success = 0, None, False
        return self.problem.question, self._info()

    def _info(self) -> dict:
        return {
            "task": self.task,
            "success": self.success,
            "score": 1.0 if self.success else 0.0,
            "answer": self.answer,
            "steps": self.steps_taken,
            "source": self.problem.source if self.problem else None,
        }

    def _execute(self, step: str) -> tuple[str, float, bool, bool, dict]:
        self.steps_taken += 1
        if len(step) > MAX_STEP_CHARS:
            obs = (
                f"{REFUSED}it is {len(step)} characters long; a step is one line of reasoning of at "
                f"most {MAX_STEP_CHARS} characters. The episode ends with reward 0."
            )
            return obs, 0.0, True, False, self._info()
        answer = final_answer(step)
        if answer is None:  # a reasoning step: generation resumes after it
            return "", 0.0, False, False, self._info()
        self.answer = answer
        self.success, reason = check_answer(answer, self.problem.answer)
        if self.success:
            obs = f"The final answer {format_number(self.problem.answer)} is correct."
        elif reason.startswith("the answer "):  # a number, not the expected one
            obs = f"The final answer is wrong: {reason}."
        else:
            obs = (
                f"The final answer cannot be read: {reason}. Write the last step as "
                f"'{FINAL} <number>' with digits 0-9, e.g. '{FINAL} 1234'."
            )
        return obs, float(self.success), True, False, self._info()
