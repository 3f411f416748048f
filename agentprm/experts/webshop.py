"""A scripted WebShop shopper that acts on what the pages show, plus the products' options (never
the goal's asin).

Each turn it reads the env's session (the page it is on, the products listed there, the goal's
instruction and wanted options) and writes a ReAct response:
  index page    -> search[<the instruction without its option and price clauses>]
  results page  -> click the best-matching product not tried yet: within the price cap, most
                   instruction words in its title, fewest other words, then (privileged: the
                   page does not show options) one offering the wanted options, then higher on
                   the page; "next >" when every product of the page was tried (or none is listed)
  item page     -> click each wanted option value the page offers, then Buy Now; if the page lacks a
                   wanted value, "< prev" and try the next product
  sub-page      -> "< prev"
Price caps are read from the instruction ("price lower than 50.00 dollars"). Its success rate per
split is in benchmarks/README.md.
"""

from __future__ import annotations

import re

from agentprm.envs.react import format_react

_PRICE = re.compile(r",? and price lower than ([0-9.]+) dollars")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with i im i'm me my need want looking find get buy please".split()
)


def search_query(instruction: str, goal_options: dict | list) -> str:
    """The instruction without its option and price clauses, lower-cased.

    >>> search_query("Find me men's sweaters with classic fit with color: yellow, and size: medium, "
    ...              "and price lower than 60.00 dollars", {"color": "yellow", "size": "medium"})
    "find me men's sweaters with classic fit"
    """
    text = _PRICE.sub("", instruction)
    if isinstance(goal_options, dict) and goal_options:
        name = next(iter(goal_options))
        cut = text.rfind(f" with {name}: ")
        if cut >= 0:
            text = text[:cut]
    return text.strip().lower()


def price_cap(instruction: str) -> float | None:
    """The cap in an instruction's price clause, None without one.

    >>> price_cap("a hat, and price lower than 40.00 dollars"), price_cap("a hat")
    (40.0, None)
    """
    m = _PRICE.search(instruction)
    return float(m.group(1)) if m else None


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _lowest_price(tag: str) -> float:
    prices = [float(x) for x in re.findall(r"\$([0-9.]+)", tag)]
    return min(prices) if prices else float("inf")


class WebShopExpert:
    """Scripted expert for agentprm/WebShop-v0 (module docstring); reset(env) before each episode."""

    name = "expert:webshop-shopper"

    def __init__(self) -> None:
        self.tried: set[str] = set()

    def reset(self, env) -> None:
        self.tried = set()

    def act(self, env) -> str:
        s = env.unwrapped.session
        goal = s.goal
        wanted = goal["goal_options"]
        wanted = list(wanted.values()) if isinstance(wanted, dict) else list(wanted)
        if s.kind == "index":
            query = search_query(s.instruction, goal["goal_options"])
            return format_react(f"I will search for what the instruction asks: {query}.", f"search[{query}]")
        if s.kind == "results":
            return self._choose(s)
        if s.kind == "sub":
            return format_react("I will go back to the product.", "click[< Prev]")
        product = s.shop.by_asin[s.asin]
        offered = {v for values in product["options"].values() for v in values}
        missing = [w for w in wanted if w.lower() not in offered]
        if missing:
            return format_react(
                f"This product does not offer {missing[0]}. I will go back and try another one.",
                "click[< Prev]",
            )
        chosen = set(s.options.values())
        for w in wanted:
            if w.lower() not in chosen:
                return format_react(f"I need to choose {w.lower()}.", f"click[{w.lower()}]")
        return format_react(
            "The product and its options match the instruction. I will buy it.", "click[Buy Now]"
        )

    def _choose(self, s) -> str:
        page = s.hits[(s.page_no - 1) * 10 : s.page_no * 10]
        want = _words(search_query(s.instruction, s.goal["goal_options"]))
        cap = price_cap(s.instruction)
        best, best_key = None, None
        wanted = s.goal["goal_options"]
        wanted = {v.lower() for v in (wanted.values() if isinstance(wanted, dict) else wanted)}
        for rank, p in enumerate(page):
            if p["asin"] in self.tried:
                continue
            title = _words(p["Title"])
            affordable = cap is None or _lowest_price(p["Price"]) < cap
            # privileged, like BabyAI's bot seeing the whole grid: among products whose titles match
            # equally well, one that offers the wanted options (its item page would show them)
            offers = wanted <= {v for values in p["options"].values() for v in values}
            key = (affordable, len(want & title), -len(title - want), offers, -rank)
            if best_key is None or key > best_key:
                best, best_key = p, key
        if best is None:
            return format_react(
                "None of these products is left to try. I will look at the next page.", "click[Next >]"
            )
        self.tried.add(best["asin"])
        return format_react(
            f"{best['Title']} matches the instruction best and costs {best['Price']}. I will open it.",
            f"click[{best['asin']}]",
        )
