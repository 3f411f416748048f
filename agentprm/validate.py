"""Range checks for the recipes' Args, run at construction (so both the CLI and Python callers get
them): a bad value raises ValueError naming the flag, the allowed range and the value given.

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Args:
    ...     n: int = 1
    ...     def __post_init__(self):
    ...         at_least(self, 1, "n")
    >>> Args(n=0)
    Traceback (most recent call last):
    ...
    ValueError: --n must be >= 1, got 0
"""

from __future__ import annotations


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def at_least(args, low: float, *names: str) -> None:
    """Every named field is None (unset) or >= low."""
    for name in names:
        value = getattr(args, name)
        if value is not None and not value >= low:
            raise ValueError(f"{_flag(name)} must be >= {low}, got {value}")


def positive(args, *names: str) -> None:
    """Every named field is None (unset) or > 0."""
    for name in names:
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise ValueError(f"{_flag(name)} must be > 0, got {value}")


def within(
    args, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    """The field is in the interval [low, high] (open ends where asked)."""
    value = getattr(args, name)
    ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{_flag(name)} must be in {interval}, got {value}")


def one_of(args, name: str, choices) -> None:
    value = getattr(args, name)
    if value not in choices:
        raise ValueError(f"{_flag(name)} must be one of {', '.join(map(str, choices))}, got {value!r}")


def sampling(args) -> None:
    """The checks every recipe that samples from a policy shares."""
    at_least(args, 0.0, "temperature")
    if hasattr(args, "top_p"):
        within(args, "top_p", 0.0, 1.0, low_open=True)
    at_least(args, 1, "max_new_tokens", "max_prompt_tokens", "batch_size", "max_rounds", "threads")
