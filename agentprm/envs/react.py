"""ReAct parsing: the model's whole response "Thought: ...\\nAction: <cmd>" -> <cmd>.

AgentGym's rules (agentenv TextCraft/BabyAI clients), re-implemented:
- the command is the text after "Action:" up to the end of that line ("Action:\\n<cmd>" also works,
  because the whitespace after the colon may include the newline);
- more than one "Action:" -> ONLY_ONE_ACTION error observation, reward 0, the env is not stepped;
- no "Action:" at all -> NO_ACTION error observation (AgentGym passes "" on; we say what is wrong);
- for BabyAI and TextCraft, characters outside [A-Za-z0-9, ] are removed and whitespace collapsed.

Nothing here raises on any string input: a malformed response is an error observation, never an
exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ONLY_ONE_ACTION = "Error: Only one 'Action' is allowed per response. Please adjust your response."
NO_ACTION = (
    "Error: No 'Action' found in your response. Please respond in the format "
    '"Thought:\\n<your thought>\\n\\nAction:\\n<your action>".'
)

_ACTION_RE = re.compile(r"Action:\s*(.*?)(?=\n|$)", re.DOTALL)
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9, ]+")


@dataclass(frozen=True)
class Parsed:
    """Result of parsing one response: exactly one of `action` / `error` is set."""

    action: str | None
    error: str | None


def parse_react(response: str, strict_charset: bool = True) -> Parsed:
    """Extract the command from a ReAct response.

    Args:
        response: the model's full output for one turn.
        strict_charset: drop characters outside [A-Za-z0-9, ] (BabyAI/TextCraft rule).

    Example:
        >>> parse_react("Thought: go.\\nAction: turn left").action
        'turn left'
        >>> parse_react("Action: a\\nAction: b").error == ONLY_ONE_ACTION
        True
    """
    if not isinstance(response, str):
        return Parsed(None, NO_ACTION)
    if response.endswith("</s>"):
        response = response[: -len("</s>")]
    matches = _ACTION_RE.findall(response)
    if len(matches) > 1:
        return Parsed(None, ONLY_ONE_ACTION)
    if not matches:
        return Parsed(None, NO_ACTION)
    action = matches[0]
    if strict_charset:
        action = _NOT_ALLOWED.sub("", action)
    action = " ".join(action.split())
    return Parsed(action, None)


def format_react(thought: str, action: str) -> str:
    """The response format the system prompts ask for (and the experts write).

    >>> format_react("I see a ball.", "go to red ball 1")
    'Thought:\\nI see a ball.\\n\\nAction:\\ngo to red ball 1'
    """
    return f"Thought:\n{thought}\n\nAction:\n{action}"
