r"""Final answers and reasoning steps of a math solution, as pure functions (no env state).

The format is GSM8K's own: a solution is reasoning steps, one per line, then the final-answer line
"#### <number>". The final answer of a response is the text after its FIRST "####", up to the end
of that line (final_answer); it is correct when it reads as a number (parse_number) equal to the
reference, compared exactly as fractions, so "12.0" == "12" and "$1,234.50" == "1234.5".

What parse_number tolerates, and what it refuses (each refusal comes with a reason for the player):
  tolerated: thousands commas ("1,234"), a currency sign before or after the sign ("$12.50",
    "-$5", "$-5"), unit words and symbols after the number ("12 apples", "12%", "12 km."),
    trailing zeros ("12.0", "12.50"), a sentence's closing period ("12."), markdown bold ("**12**"),
    a leading "+" or the Unicode minus sign ("−5").
  refused: nothing at all ("#### "), words ("twelve"), digits other than ASCII 0-9 ("١٢", "１２"),
    commas that do not group thousands ("1,23"), a second number ("12 or 13", "3/4", "5 + 7 = 12").

split_steps turns a reference solution into the steps an expert writes, one env step each: its
lines (or its paragraphs, when blank lines separate them, as in reasoning-gym's structured
solutions), each ending at the step delimiter "\n", then the final line "#### <answer>".

    >>> final_answer("Natalia sold 48 + 24 = 72 clips.\n#### 72")
    '72'
    >>> check_answer("$1,234.50", parse_number("1234.5")[0])
    (True, '')
    >>> check_answer("twelve", parse_number("12")[0])[1]
    "'twelve' is not a number"
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

FINAL = "####"
# A step ends at this delimiter; the renderer closes a response that lacks it (close_step).
DELIMITER = "\n"

# No answer needs more digits; int() would refuse a string of over 4300.
MAX_DIGITS = 100
_CURRENCY = "$€£¥₹"
_NUMBER = re.compile(
    rf"(?P<sign>[-+]?)\s*[{_CURRENCY}]?\s*(?P<sign2>-?)\s*"
    r"(?P<int>[0-9][0-9,]*)?(?:\.(?P<frac>[0-9]+))?(?P<rest>.*)",
    re.DOTALL,
)
_THOUSANDS = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
# GSM8K's calculator annotations: "48/2 = <<48/2=24>>24 clips".
_CALCULATOR = re.compile(r"<<[^<>\n]*>>")


def _shown(text: str, limit: int = 40) -> str:
    """A quote of `text` for a reason, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_number(text: str) -> tuple[Fraction | None, str]:
    """The number an answer states -> (value, "") or (None, why it is not one); never raises.

    >>> parse_number("$1,234.50")
    (Fraction(2469, 2), '')
    >>> parse_number("12.0 apples.")
    (Fraction(12, 1), '')
    >>> parse_number("1,23")
    (None, "'1,23' is not a number: commas may only group thousands (1,234)")
    """
    if not isinstance(text, str):
        return None, f"the answer is a {type(text).__name__}, not text"
    body = text.strip().strip("*").strip().replace("−", "-")  # markdown bold; the Unicode minus
    if not body:
        return None, "there is no answer after '####'"
    other = sorted({c for c in body if unicodedata.category(c) == "Nd" and not "0" <= c <= "9"})
    if other:
        return None, f"{_shown(body)} uses digits other than 0-9 ({''.join(other)!r})"
    m = _NUMBER.fullmatch(body)
    whole, frac = m.group("int"), m.group("frac")
    if whole is None and frac is None:
        return None, f"{_shown(body)} is not a number"
    if whole and "," in whole:
        if not _THOUSANDS.fullmatch(whole):
            return None, f"{_shown(body)} is not a number: commas may only group thousands (1,234)"
        whole = whole.replace(",", "")
    rest = m.group("rest").strip()
    if any("0" <= c <= "9" for c in rest):
        return None, f"{_shown(body)} holds more than one number: write the answer alone"
    if m.group("sign") and m.group("sign2"):
        return None, f"{_shown(body)} has two signs"
    if len(whole or "") + len(frac or "") > MAX_DIGITS:  # int() refuses over 4300 digits
        return None, f"{_shown(body)} has more than {MAX_DIGITS} digits"
    value = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
    return (-value if "-" in (m.group("sign") + m.group("sign2")) else value), ""


def final_answer(response: str) -> str | None:
    """The text after the first "####" of a response, up to the end of its line; None without one.

    >>> final_answer("So she has 5 + 7 = 12.\\n#### 12\\n"), final_answer("The answer is 12."), final_answer("#### ")
    ('12', None, '')
    """
    at = response.find(FINAL)
    if at < 0:
        return None
    return response[at + len(FINAL) :].split("\n", 1)[0].strip()


def check_answer(answer: str, reference: Fraction) -> tuple[bool, str]:
    """Whether the final answer's text states the reference number -> (correct, why not).

    A malformed answer is wrong, with the reason (parse_number's); a number that differs says so.

    >>> check_answer("18", Fraction(18)), check_answer("12.50", Fraction(25, 2))
    ((True, ''), (True, ''))
    >>> check_answer("17", Fraction(18))
    (False, 'the answer 17 is not the expected number')
    """
    value, reason = parse_number(answer)
    if value is None:
        return False, reason
    if value != reference:
        return False, f"the answer {format_number(value)} is not the expected number"
    return True, ""


def format_number(value: Fraction) -> str:
    """A number as a final answer writes it: an integer plainly, else its exact decimal if it has one.

    >>> format_number(Fraction(72)), format_number(Fraction(-25, 2)), format_number(Fraction(1, 3))
    ('72', '-12.5', '1/3')
    """
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:  # no finite decimal (1/3): the fraction itself
        return f"{value.numerator}/{value.denominator}"
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
    return f"{float(value):.{digits}f}" if digits <= 15 else str(value)


def close_step(response: str) -> str:
    r"""A step as the solution so far shows it: the response, ended by the delimiter if it lacks one
    (a server's stop=["\n"] drops the newline it stopped at; the model's turn may end before it).

    >>> close_step("48 / 2 = 24"), close_step("48 / 2 = 24\n")
    ('48 / 2 = 24\n', '48 / 2 = 24\n')
    """
    return response if response.endswith(DELIMITER) else response + DELIMITER


def split_steps(solution: str) -> list[str]:
    r"""A reference solution -> its steps: every step but the last ends with "\n" (a paragraph step
    with the blank line after it), the last is "#### <answer>"; "".join(steps) is the solution
    with GSM8K's calculator annotations ("<<48/2=24>>") removed, line ends normalised and blank
    lines before the final line dropped.

    Steps are the solution's lines, or its paragraphs when blank lines separate them (reasoning-gym's
    structured solutions: "1. Initial amounts:\n   - ...\n   - ..." is one step). Text on the
    "####" line before the marker stays a step of its own. A solution without "####" gets none.

    >>> split_steps("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72")
    ['Natalia sold 48/2 = 24 clips in May.\n', 'Natalia sold 48+24 = 72 clips.\n', '#### 72']
    >>> split_steps("Step one:\n- a\n- b\n\nStep two.\n#### 5")
    ['Step one:\n- a\n- b\n\n', 'Step two.\n', '#### 5']
    """
    text = _CALCULATOR.sub("", solution.replace("\r\n", "\n").replace("\r", "\n"))
    at = text.find(FINAL)
    body, final = (
        (text, None) if at < 0 else (text[:at], FINAL + " " + text[at + len(FINAL) :].split("\n")[0].strip())
    )
    body = body.strip("\n")
    steps: list[str] = []
    if body.strip():
        if re.search(r"\n[ \t]*\n", body):  # paragraphs: each block with the blank line after it
            blocks = [b for b in re.split(r"\n[ \t]*\n", body) if b.strip()]
            steps = [b.strip("\n") + "\n\n" for b in blocks]
            # The closing line of the last paragraph ("Therefore ... 637 items.") ends it plainly.
            steps[-1] = steps[-1][:-1]
        else:
            steps = [line + "\n" for line in body.split("\n") if line.strip()]
    return steps + ([final] if final is not None else [])
