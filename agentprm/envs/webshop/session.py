"""One WebShop shopping session: the page state machine of WebShop's text env (SimServer.receive),
without Flask or HTML. WebShopEnv wraps it in the ReAct contract.

What a command does (WebShop's rules; `command` is "search[...]" or "click[...]", its argument
lower-cased):
- search[<keywords>] (any page, as upstream allows; non-empty keywords): result page 1 of the top 50
  hits; the chosen product and options are forgotten. Upstream's debug searches are kept: "<r>" (50
  random products, drawn from the session's seeded RNG here), "<a> <attribute>", "<c> <category>",
  "<q> <query>" (every product with that attribute, category or query, in catalogue order).
- click[<value>] for a value among the page's clickables (never "search"):
  buy now -> the done page and the reward (the episode ends); back to search -> the index page;
  next > / < prev on a result page -> the next / previous result page; < prev on a sub-page -> the
  item page; < prev on an item page -> the result page it came from (options forgotten);
  description / features / reviews / attributes -> that sub-page; a product asin -> its item page
  (options reset only by a search); an option value -> the item page with that option chosen.
- anything else changes nothing; `step` says why (upstream silently shows the same page).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agentprm.envs.webshop import pages

SEARCH_RETURN_N = 50  # hits kept per search (WebShop's SEARCH_RETURN_N)
PRODUCT_WINDOW = 10  # hits per result page
_ACTION = re.compile(r"(.+)\[(.+)\]")  # WebShop's parse_action: name[arg] at the start, greedy


def parse_action(command: str) -> tuple[str, str | None]:
    """WebShop's parse_action: "name[arg]" -> (name, arg), else (command, None). The match is
    greedy and line-bound, as upstream's: "search[a [b] c]" -> ("search[a ", "b] c").

    >>> parse_action("click[Buy Now]"), parse_action("search[red [b] c]"), parse_action("look")
    (('click', 'Buy Now'), ('search[red ', 'b] c'), ('look', None))
    """
    m = _ACTION.match(command)
    return (m.group(1), m.group(2)) if m else (command, None)


@dataclass
class Shop:
    """Everything sessions share (built once per process): the products, their drawn prices, the
    search function (query -> asins, best first, at most 50) and the reward function
    (product, goal, price, options) -> (reward, info)."""

    products: list[dict]
    by_asin: dict[str, dict]
    prices: dict[str, float]
    attribute_to_asins: dict[str, set]
    search: Callable[[str], list[str]]
    reward: Callable[..., tuple[float, dict]]
    show_attrs: bool = False


@dataclass
class Session:
    """A shopping session for one goal. `page` is what the agent sees now."""

    shop: Shop
    goal: dict
    rng: random.Random = field(default_factory=random.Random)
    kind: str = "index"  # index | results | item | sub | done
    keywords: str = ""
    page_no: int = 1
    hits: list[dict] = field(default_factory=list)
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    sub: str | None = None
    reward: float = 0.0
    reward_info: dict = field(default_factory=dict)
    page: pages.Page | None = None

    def __post_init__(self) -> None:
        self.page = pages.index_page(self.goal["instruction_text"])

    @property
    def instruction(self) -> str:
        return self.goal["instruction_text"]

    def step(self, command: str) -> tuple[str | None, float, bool]:
        """Execute one command -> (None if it did something, else why it did nothing; reward; done)."""
        name, arg = parse_action(command)
        arg = arg.lower() if arg is not None else None
        if name == "search" and arg:
            self._search(arg, 1)
            return None, 0.0, False
        if name == "click" and arg is not None and arg in self.page.clickables and arg != "search":
            return self._click(arg)
        return self._why_not(name, arg), 0.0, False

    def _why_not(self, name: str, arg: str | None) -> str:
        if name == "search":
            return "search[...] needs keywords"
        if name == "click" and arg is not None:
            return f"{arg!r:.80} is not clickable on this page"
        return f"{(name + '[...]' if arg is not None else name)!r:.80} is not an action: use search[<keywords>] or click[<value>]"

    # -- pages ----------------------------------------------------------------------------------
    def _search(self, keywords: str, page_no: int) -> None:
        self.kind, self.keywords, self.page_no = "results", keywords, page_no
        self.asin, self.options, self.sub = None, {}, None
        if page_no == 1 or not self.hits:
            self.hits = self._top_n(keywords)
        window = self.hits[(page_no - 1) * PRODUCT_WINDOW : page_no * PRODUCT_WINDOW]
        self.page = pages.results_page(self.instruction, window, page_no, len(self.hits))

    def _top_n(self, keywords: str) -> list[dict]:
        words = keywords.split(" ")
        shop = self.shop
        if words[0] == "<r>":
            return self.rng.sample(shop.products, k=min(SEARCH_RETURN_N, len(shop.products)))
        if words[0] == "<a>":
            asins = shop.attribute_to_asins.get(" ".join(words[1:]).strip(), set())
            return [p for p in shop.products if p["asin"] in asins]
        if words[0] == "<c>":
            category = words[1].strip() if len(words) > 1 else ""
            return [p for p in shop.products if p["category"] == category]
        if words[0] == "<q>":
            query = " ".join(words[1:]).strip()
            return [p for p in shop.products if p["query"] == query]
        return [shop.by_asin[a] for a in shop.search(keywords)[:SEARCH_RETURN_N] if a in shop.by_asin]

    def _item(self) -> None:
        self.kind, self.sub = "item", None
        self.page = pages.item_page(self.instruction, self.shop.by_asin[self.asin], self.shop.show_attrs)

    def _click(self, value: str) -> tuple[None, float, bool]:
        if value == pages.BUY_NOW.lower():
            product = self.shop.by_asin[self.asin]
            self.reward, self.reward_info = self.shop.reward(
                product, self.goal, price=self.shop.prices[self.asin], options=self.options
            )
            self.kind = "done"
            self.page = pages.done_page(self.asin, self.options, self.reward)
            return None, self.reward, True
        if value == pages.BACK_TO_SEARCH.lower():
            self.kind, self.keywords, self.asin, self.options, self.sub = "index", "", None, {}, None
            self.page = pages.index_page(self.instruction)
        elif value == pages.NEXT_PAGE.lower() and self.kind == "results":
            self._search(self.keywords, self.page_no + 1)
        elif value == pages.PREV_PAGE.lower() and self.kind == "results":
            self._search(self.keywords, self.page_no - 1)
        elif value == pages.PREV_PAGE.lower() and self.kind == "sub":
            self._item()
        elif value == pages.PREV_PAGE.lower() and self.kind == "item":
            self._search(self.keywords, self.page_no)
        elif value in (s.lower() for s in pages.SUB_PAGES):
            self.sub = next(s for s in pages.SUB_PAGES if s.lower() == value)
            self.kind = "sub"
            self.page = pages.sub_page(self.instruction, self.shop.by_asin[self.asin], self.sub)
        elif self.kind == "results":  # a product link
            self.asin = value.upper()
            self._item()
        else:  # an option value on the item page, under its option's name (upstream's page maps a
            # value to the LAST radio button holding it)
            product = self.shop.by_asin[self.asin]
            name = [n for n, values in product["options"].items() if value in values][-1]
            self.options[name] = value
            self._item()
        return None, 0.0, False
