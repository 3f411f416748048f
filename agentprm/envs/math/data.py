r"""Where math problems come from: a built-in generator, reasoning-gym's gsm_symbolic, the user's JSONL.

Every source gives a Problem (question, reference solution in GSM8K's format, answer value, where it
came from), one per task index. Nothing is downloaded.

- builtin_problem(i): a deterministic procedural generator of GSM8K-style word problems, the
  default data and what CI runs on. Task i uses template TEMPLATES[i % 9] (shopping change, pages
  left, cookies shared, ages, a percentage sold, weekly savings, fencing, distance, marbles in bags)
  with numbers drawn by random.Random(f"agentprm-math/{i}") (string seeds hash the same on every
  machine and Python): 3 or 4 steps of integer arithmetic, an integer answer, and a reference
  solution written the way GSM8K's are ("The pens cost 4 * $3 = $12.") ending "#### <n>".
  BUILTIN_NUM_TASKS tasks; envs/splits.py pins test = 0..199, train = 200..4999.
- gsm_symbolic_problems(): reasoning-gym's "gsm_symbolic" (an optional extra: pip install
  'agentprm[math]'), 100 templates derived from GSM8K's test questions with exact answers and
  step-by-step solutions (metadata["answer_cot"]). Task i < 200 is item i of
  create_dataset("gsm_symbolic", size=200, seed=GSM_SYMBOLIC_TEST_SEED), task 200 + j item j of
  size=2000, seed=GSM_SYMBOLIC_TRAIN_SEED; reasoning-gym seeds item j with seed + j, so the two
  seed ranges never meet. The items depend on reasoning-gym's version (pinned in the extra).
- load_jsonl(path): the user's GSM8K-format JSONL, {"question": str, "answer": str ending in
  "#### <n>"} per line (other keys are ignored, blank lines skipped), validated line by line: a bad
  line raises MathDataError "<path>:<line>: <what is wrong>". user_problems(path) takes a file or
  a folder holding test.jsonl and/or train.jsonl (GSM8K's own layout: grade_school_math/data),
  test problems first.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from agentprm.envs.math.answers import FINAL, final_answer, format_number, parse_number

BUILTIN_NUM_TASKS = 5000
BUILTIN_TEST = 200  # tasks 0..199 are the test split (envs/splits.py)
GSM_SYMBOLIC_TEST, GSM_SYMBOLIC_TRAIN = 200, 2000
GSM_SYMBOLIC_TEST_SEED, GSM_SYMBOLIC_TRAIN_SEED = 1_000_000, 0
GSM_SYMBOLIC_NUM_TASKS = GSM_SYMBOLIC_TEST + GSM_SYMBOLIC_TRAIN
GSM_SYMBOLIC_VERSION = "0.1.25"  # the items depend on reasoning-gym's version (pyproject's extra)
DATA_ENV = "AGENTPRM_MATH_DATA"


@dataclass(frozen=True)
class Problem:
    """One math task: the question the player sees, the reference solution (GSM8K format, ends in
    "#### <answer>"), the answer's value, and where it came from ("builtin:ages", "path:line", ...)."""

    question: str
    solution: str
    answer: Fraction
    source: str


class MathDataError(ValueError):
    """A line of a math data file is not a valid problem: "<path>:<line>: <reason>"."""

    def __init__(self, path: str | os.PathLike, lineno: int, reason: str):
        self.path, self.lineno, self.reason = os.fspath(path), lineno, reason
        super().__init__(f"{self.path}:{lineno}: {reason}")


# -- the built-in generator -----------------------------------------------------------------------

_PEOPLE = [
    ("Natalia", "she", "her"), ("James", "he", "his"), ("Aisha", "she", "her"), ("Tom", "he", "his"),
    ("Mei", "she", "her"), ("Carlos", "he", "his"), ("Priya", "she", "her"), ("Omar", "he", "his"),
    ("Lena", "she", "her"), ("Kofi", "he", "his"), ("Sofia", "she", "her"), ("Ivan", "he", "his"),
    ("Hana", "she", "her"), ("Diego", "he", "his"), ("Zoe", "she", "her"), ("Ravi", "he", "his"),
]  # fmt: skip


def _person(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(_PEOPLE)


def _change(rng):
    name, he, _ = _person(rng)
    thing, other = rng.sample(["notebooks", "pens", "apples", "mugs", "candles", "socks", "books"], 2)
    a, p, b, q = rng.randint(2, 12), rng.randint(2, 25), rng.randint(2, 12), rng.randint(1, 15)
    x, y = a * p, b * q
    total = x + y
    bill = next(v for v in (20, 50, 100, 200, 500) if v > total)
    question = (
        f"{name} buys {a} {thing} for ${p} each and {b} {other} for ${q} each. {he.capitalize()} pays "
        f"with a ${bill} bill. How much change does {he} get back?"
    )
    steps = [
        f"The {thing} cost {a} * ${p} = ${x}.",
        f"The {other} cost {b} * ${q} = ${y}.",
        f"In total {he} spends ${x} + ${y} = ${total}.",
        f"{he.capitalize()} gets ${bill} - ${total} = ${bill - total} in change.",
    ]
    return question, steps, bill - total


def _pages(rng):
    name, he, _ = _person(rng)
    p, d, q, e = rng.randint(5, 40), rng.randint(2, 9), rng.randint(5, 40), rng.randint(2, 9)
    read1, read2 = p * d, q * e
    read = read1 + read2
    left = rng.randint(5, 300)
    total = read + left
    question = (
        f"{name} is reading a {total}-page book. {he.capitalize()} reads {p} pages a day for {d} days, "
        f"then {q} pages a day for {e} days. How many pages does {he} still have to read?"
    )
    steps = [
        f"In the first {d} days {he} reads {p} * {d} = {read1} pages.",
        f"In the next {e} days {he} reads {q} * {e} = {read2} pages.",
        f"{he.capitalize()} has read {read1} + {read2} = {read} pages.",
        f"{he.capitalize()} still has {total} - {read} = {left} pages to read.",
    ]
    return question, steps, left


def _cookies(rng):
    name, he, _ = _person(rng)
    baked = rng.choice(["cookies", "muffins", "brownies", "cupcakes", "biscuits"])
    n, k, friends = rng.randint(2, 12), rng.randint(6, 48), rng.randint(2, 12)
    made = n * k
    eaten = made % friends or friends
    while made - eaten < friends:  # each friend gets at least one
        k += 1
        made = n * k
        eaten = made % friends or friends
    left = made - eaten
    question = (
        f"{name} bakes {n} trays of {baked} with {k} {baked} on each tray. {he.capitalize()} eats "
        f"{eaten} of them and shares the rest equally among {friends} friends. How many {baked} "
        "does each friend get?"
    )
    steps = [
        f"{name} bakes {n} * {k} = {made} {baked}.",
        f"After eating {eaten}, {he} has {made} - {eaten} = {left} {baked} left.",
        f"Each friend gets {left} / {friends} = {left // friends} {baked}.",
    ]
    return question, steps, left // friends


def _ages(rng):
    (a, *_), (b, *_), (c, *_) = rng.sample(_PEOPLE, 3)
    older, times, c_age, years = rng.randint(2, 30), rng.randint(2, 6), rng.randint(2, 15), rng.randint(2, 20)
    b_age = times * c_age
    a_age = b_age + older
    question = (
        f"{a} is {older} years older than {b}. {b} is {times} times as old as {c}, who is {c_age} "
        f"years old. How old will {a} be in {years} years?"
    )
    steps = [
        f"{b} is {times} * {c_age} = {b_age} years old.",
        f"{a} is {b_age} + {older} = {a_age} years old.",
        f"In {years} years {a} will be {a_age} + {years} = {a_age + years} years old.",
    ]
    return question, steps, a_age + years


def _percent(rng):
    thing = rng.choice(["shirts", "hats", "umbrellas", "lamps", "backpacks", "scarves"])
    n = 20 * rng.randint(3, 60)
    p = rng.choice([10, 20, 25, 40, 50, 75])
    sold = n * p // 100
    more = rng.randint(1, n - sold - 1)
    question = (
        f"A shop has {n} {thing}. It sells {p}% of them on Monday and {more} more on Tuesday. "
        f"How many {thing} are left?"
    )
    steps = [
        f"On Monday it sells {p}/100 * {n} = {sold} {thing}.",
        f"After Monday it has {n} - {sold} = {n - sold} {thing}.",
        f"After Tuesday it has {n - sold} - {more} = {n - sold - more} {thing} left.",
    ]
    return question, steps, n - sold - more


def _savings(rng):
    name, he, his = _person(rng)
    wage, hours, days = rng.randint(8, 40), rng.randint(2, 9), rng.randint(2, 6)
    weekly_hours = hours * days
    earned = weekly_hours * wage
    spent = rng.randint(1, earned - 1)
    weeks = rng.randint(2, 12)
    saved = earned - spent
    question = (
        f"{name} earns ${wage} an hour. {he.capitalize()} works {hours} hours a day, {days} days a "
        f"week, and spends ${spent} of {his} pay each week. How much money does {he} save in "
        f"{weeks} weeks?"
    )
    steps = [
        f"{he.capitalize()} works {hours} * {days} = {weekly_hours} hours a week.",
        f"{he.capitalize()} earns {weekly_hours} * ${wage} = ${earned} a week.",
        f"{he.capitalize()} saves ${earned} - ${spent} = ${saved} a week.",
        f"In {weeks} weeks {he} saves {weeks} * ${saved} = ${weeks * saved}.",
    ]
    return question, steps, weeks * saved


def _fence(rng):
    length, width, cost = rng.randint(5, 120), rng.randint(3, 80), rng.randint(2, 40)
    gates = rng.randint(1, 4)
    gate_cost = rng.randint(10, 90)
    perimeter = 2 * (length + width)
    fence = perimeter * cost
    question = (
        f"A rectangular garden is {length} meters long and {width} meters wide. Fencing costs ${cost} "
        f"per meter, and each of its {gates} gates costs ${gate_cost} extra. How much does it cost to "
        "fence the whole garden?"
    )
    steps = [
        f"The perimeter is 2 * ({length} + {width}) = {perimeter} meters.",
        f"The fencing costs {perimeter} * ${cost} = ${fence}.",
        f"The gates cost {gates} * ${gate_cost} = ${gates * gate_cost}.",
        f"In total it costs ${fence} + ${gates * gate_cost} = ${fence + gates * gate_cost}.",
    ]
    return question, steps, fence + gates * gate_cost


def _distance(rng):
    vehicle = rng.choice(["train", "bus", "truck", "ferry", "car"])
    v, t1, u, t2 = rng.randint(20, 120), rng.randint(1, 9), rng.randint(20, 120), rng.randint(1, 9)
    d1, d2 = v * t1, u * t2
    question = (
        f"A {vehicle} travels at {v} km per hour for {t1} hours, stops, and then travels at {u} km "
        f"per hour for {t2} hours. How many kilometers does it travel in total?"
    )
    steps = [
        f"First it travels {v} * {t1} = {d1} km.",
        f"Then it travels {u} * {t2} = {d2} km.",
        f"In total it travels {d1} + {d2} = {d1 + d2} km.",
    ]
    return question, steps, d1 + d2


def _marbles(rng):
    name, he, _ = _person(rng)
    red, per_bag = rng.randint(5, 60), rng.randint(2, 9)  # 9 or more choices of `fewer`: one fits
    blue = 2 * red
    fewer = rng.choice([g for g in range(1, blue) if (red + blue + blue - g) % per_bag == 0])
    green = blue - fewer
    total = red + blue + green
    question = (
        f"{name} has {red} red marbles, twice as many blue marbles, and {fewer} fewer green marbles "
        f"than blue marbles. {he.capitalize()} puts all of them into bags of {per_bag}. How many bags "
        f"does {he} fill?"
    )
    steps = [
        f"{he.capitalize()} has 2 * {red} = {blue} blue marbles.",
        f"{he.capitalize()} has {blue} - {fewer} = {green} green marbles.",
        f"In total {he} has {red} + {blue} + {green} = {total} marbles.",
        f"{he.capitalize()} fills {total} / {per_bag} = {total // per_bag} bags.",
    ]
    return question, steps, total // per_bag


# name -> rng -> (question, steps without their newlines, integer answer)
TEMPLATES: dict[str, Callable[[random.Random], tuple[str, list[str], int]]] = {
    "change": _change,
    "pages": _pages,
    "cookies": _cookies,
    "ages": _ages,
    "percent": _percent,
    "savings": _savings,
    "fence": _fence,
    "distance": _distance,
    "marbles": _marbles,
}


@functools.lru_cache(maxsize=8192)
def builtin_problem(i: int) -> Problem:
    """Task i of the built-in generator (module docstring): the same problem on every machine.

    A train task (i >= BUILTIN_TEST) whose question is a test task's draws again (seed
    "agentprm-math/{i}/1", then /2, ...), so the train split never holds a test question.

    >>> p = builtin_problem(3)
    >>> p.source, p.answer, p.solution.splitlines()[-1]
    ('builtin:ages', Fraction(66, 1), '#### 66')
    """
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < BUILTIN_NUM_TASKS:
        raise ValueError(f"built-in math task {i!r} is out of range: use an int 0 <= i < {BUILTIN_NUM_TASKS}")
    name = list(TEMPLATES)[i % len(TEMPLATES)]
    seed, redraw = f"agentprm-math/{i}", 0
    question, steps, answer = TEMPLATES[name](random.Random(seed))
    while i >= BUILTIN_TEST and question in _test_questions():
        redraw += 1
        question, steps, answer = TEMPLATES[name](random.Random(f"{seed}/{redraw}"))
    solution = "".join(s + "\n" for s in steps) + f"{FINAL} {answer}"
    return Problem(question, solution, Fraction(answer), f"builtin:{name}")


@functools.lru_cache(maxsize=1)
def _test_questions() -> frozenset[str]:
    return frozenset(builtin_problem(i).question for i in range(BUILTIN_TEST))


class BuiltinProblems(Sequence):
    """The built-in generator's tasks as a sequence, generated on first access."""

    def __len__(self) -> int:
        return BUILTIN_NUM_TASKS

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return builtin_problem(i)


# -- reasoning-gym's gsm_symbolic ------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def gsm_symbolic_problems() -> list[Problem]:
    """The GSM_SYMBOLIC_NUM_TASKS gsm_symbolic problems (module docstring); ImportError naming the
    extra when reasoning-gym is not installed."""
    try:
        import reasoning_gym
    except ImportError:
        raise ImportError(
            "agentprm/GSMSymbolic-v0 needs reasoning-gym: pip install 'agentprm[math]' (or "
            "reasoning-gym==0.1.25); agentprm/Math-v0 needs nothing extra"
        ) from None
    # The distribution's version (reasoning_gym.__version__ lags it: 0.1.19 in 0.1.25).
    installed = importlib.metadata.version("reasoning-gym")
    if installed != GSM_SYMBOLIC_VERSION:
        warnings.warn(
            f"reasoning-gym {installed} is installed; the pinned gsm-symbolic splits were drawn "
            f"with {GSM_SYMBOLIC_VERSION}, whose problems may differ",
            stacklevel=2,
        )
    out = []
    for seed, size in (
        (GSM_SYMBOLIC_TEST_SEED, GSM_SYMBOLIC_TEST),
        (GSM_SYMBOLIC_TRAIN_SEED, GSM_SYMBOLIC_TRAIN),
    ):
        data = reasoning_gym.create_dataset("gsm_symbolic", size=size, seed=seed)
        for j in range(size):
            item = data[j]
            where = f"gsm_symbolic:seed {seed} item {j}"
            answer, reason = parse_number(str(item["answer"]))
            solution = item["metadata"]["answer_cot"]
            stated = final_answer(solution)
            if answer is None or stated is None or parse_number(stated)[0] != answer:
                raise ValueError(
                    f"{where}: reference answer {item['answer']!r} is unreadable or unlike its "
                    f"solution's final line ({reason or stated!r}): check the reasoning-gym version"
                )
            out.append(Problem(item["question"], solution, answer, where))
    return out


# -- the user's GSM8K-format JSONL ----------------------------------------------------------------


def parse_line(raw: str) -> tuple[str, str, Fraction]:
    """One JSONL line -> (question, answer text, reference value); ValueError(reason) if invalid.

    >>> parse_line('{"question": "2 + 3?", "answer": "2 + 3 = 5\\\\n#### 5"}')
    ('2 + 3?', '2 + 3 = 5\\n#### 5', Fraction(5, 1))
    """
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(
            f'expected an object {{"question": ..., "answer": ...}}, got {type(record).__name__}'
        )
    for key in ("question", "answer"):
        if key not in record:
            raise ValueError(f"missing field {key!r} (a GSM8K line has 'question' and 'answer')")
        if not isinstance(record[key], str) or not record[key].strip():
            raise ValueError(f"field {key!r} must be non-empty text, got {record[key]!r:.80}")
    stated = final_answer(record["answer"])
    if stated is None:
        raise ValueError("the answer has no final line '#### <number>' (GSM8K's format)")
    value, reason = parse_number(stated)
    if value is None:
        raise ValueError(f"the answer's final line cannot be read: {reason}")
    return record["question"], record["answer"], value


def load_jsonl(path: str | os.PathLike) -> list[Problem]:
    """Every problem of a GSM8K-format JSONL file; MathDataError("<path>:<line>: ...") on a bad line.

    Read as UTF-8; blank lines are skipped; an empty file is an error too (it has no problem)."""
    path = Path(path)
    problems = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise MathDataError(path, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not text.strip():
                continue
            try:
                question, answer, value = parse_line(text)
            except ValueError as e:
                raise MathDataError(path, lineno, str(e)) from None
            problems.append(Problem(question, answer, value, f"{path}:{lineno}"))
    if not problems:
        raise MathDataError(path, 1, "the file holds no problem (one JSON object per line)")
    return problems


@dataclass(frozen=True)
class UserData:
    """The user's problems (test first) and their splits: {"test", "train"} for a GSM8K folder,
    {"all"} for one file."""

    problems: list[Problem]
    splits: dict[str, list[int]]
    where: str


def resolve_path(data_path: str | os.PathLike | None = None) -> Path:
    """data_path, else $AGENTPRM_MATH_DATA; ValueError saying how to give one when neither is set."""
    given = data_path if data_path is not None else os.environ.get(DATA_ENV)
    if not given:
        raise ValueError(
            f"agentprm/GSM8K-v0 plays your own GSM8K-format JSONL (one {{'question', 'answer': "
            f"'... #### <n>'}} per line): set {DATA_ENV}=/path/to/test.jsonl, or to a folder with "
            "test.jsonl and train.jsonl (GSM8K's grade_school_math/data), or pass data_path=...; "
            "nothing is downloaded"
        )
    path = Path(given).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"math data {path} does not exist (from {'data_path' if data_path is not None else DATA_ENV})"
        )
    return path


def user_problems(data_path: str | os.PathLike | None = None) -> UserData:
    """The user's GSM8K data (module docstring), read once per file version."""
    path = resolve_path(data_path).resolve()
    files = (
        [path]
        if path.is_file()
        else [path / n for n in ("test.jsonl", "train.jsonl") if (path / n).is_file()]
    )
    if not files:
        raise FileNotFoundError(
            f"{path} holds neither test.jsonl nor train.jsonl: give a JSONL file or such a folder"
        )
    stamp = tuple((os.fspath(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _read_user(stamp, path.is_file())


@functools.lru_cache(maxsize=4)
def _read_user(stamp: tuple, single: bool) -> UserData:
    problems, splits = [], {}
    for name, *_ in stamp:
        part = load_jsonl(name)
        key = "all" if single else Path(name).stem
        splits[key] = list(range(len(problems), len(problems) + len(part)))
        problems += part
    return UserData(problems, splits, ", ".join(name for name, *_ in stamp))


def describe(problem: Problem) -> str:
    """One line naming a problem and its answer (for logs).

    >>> describe(builtin_problem(0))[:40]
    'builtin:change, answer 16: James buys 7 '
    """
    return f"{problem.source}, answer {format_number(problem.answer)}: {problem.question}"
