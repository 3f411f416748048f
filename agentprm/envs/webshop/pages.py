"""WebShop's text-mode pages: what the agent reads on each page and what it may click there.

WebShop renders an HTML page (templates/*.html) and its text mode keeps the visible text nodes, each
stripped, joined by " [SEP] " (web_agent_text_env.convert_html_to_text with simple=True). This module
writes the same strings without HTML: one function per page, each returning a `Page` (its text and
its clickables in AgentGym's available_actions order). benchmarks/webshop_agentgym_diff.py renders
WebShop's own templates with Flask and BeautifulSoup and compares them with these functions.

Rules of the original that matter for an exact copy:
- A text node is a template's literal text plus a value ("Price: $10.99", " <bullet point>"); the
  page keeps node.strip(). BeautifulSoup turns a whitespace-only node into "\\n" (dropped) when it
  holds a newline, else into " " (kept as an empty segment): `_node` does the same. An empty value
  with no literal text around it makes no node at all.
- Instruction headers are two nodes ("Instruction:" and the instruction) because of a <br>.
- "< Prev" shows on result pages after the first, "Next >" on every result page (also the last),
  and on item and sub-pages "< Prev" goes back.
- Clickables are the lower-cased button texts and product asins in page order, then the option
  values (as stored: already lower-case); a value equal to an earlier key keeps that key's place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SEP = " [SEP] "
BUY_NOW, NEXT_PAGE, PREV_PAGE, BACK_TO_SEARCH = "Buy Now", "Next >", "< Prev", "Back to Search"
SUB_PAGES = ("Description", "Features", "Reviews", "Attributes")  # WebShop's ACTION_TO_TEMPLATE


@dataclass(frozen=True)
class Page:
    """One rendered page: `text` is the observation, `clickables` the values click[...] accepts
    (AgentGym's available_actions()["clickables"]), `has_search_bar` whether search[...] is offered."""

    text: str
    clickables: tuple[str, ...]
    has_search_bar: bool = False

    def available_actions(self) -> dict:
        """AgentGym's GET /available_actions answer for this page."""
        return {"has_search_bar": self.has_search_bar, "clickables": list(self.clickables)}


def _node(text: str) -> str | None:
    """One HTML text node -> its segment of the observation (None: no segment).

    >>> _node("  Price: $1.0 "), _node(" "), _node("\\n  "), _node("")
    ('Price: $1.0', '', None, None)
    """
    if text.strip():
        return text.strip()
    if not text or "\n" in text:
        return None
    return ""


def _join(nodes: list[str]) -> str:
    return SEP.join(s for s in map(_node, nodes) if s is not None)


def _clickables(buttons: list[str], options: list[str] = ()) -> tuple[str, ...]:
    keys = dict.fromkeys(b.lower() for b in buttons)
    keys.update(dict.fromkeys(options))
    return tuple(keys)


def _header(instruction: str) -> list[str]:
    return ["Instruction:", str(instruction), BACK_TO_SEARCH]


def index_page(instruction: str) -> Page:
    """The search page a session starts on.

    >>> index_page("i need a red shirt").text
    'WebShop [SEP] Instruction: [SEP] i need a red shirt [SEP] Search'
    """
    return Page(_join(["WebShop", "Instruction: ", str(instruction), "Search"]), ("search",), True)


def results_page(instruction: str, products: list[dict], page: int, total: int) -> Page:
    """Result page `page` (1-based) showing `products` (the page's window of the hits), of `total` hits.

    >>> p = results_page("i need", [{"asin": "B01", "Title": "Red Shirt", "Price": "$10.0"}], 1, 1)
    >>> p.text, p.clickables
    ('Instruction: [SEP] i need [SEP] Back to Search [SEP] Page 1 (Total results: 1) [SEP] Next > [SEP] B01 [SEP] Red Shirt [SEP] $10.0', ('back to search', 'next >', 'b01'))
    """
    nav = [PREV_PAGE, NEXT_PAGE] if page > 1 else [NEXT_PAGE]
    nodes = [*_header(instruction), f"Page {page} (Total results: {total})", *nav]
    for p in products:
        nodes += [str(p["asin"]), str(p["Title"]), str(p["Price"])]
    return Page(_join(nodes), _clickables([BACK_TO_SEARCH, *nav, *(str(p["asin"]) for p in products)]))


def item_page(instruction: str, product: dict, show_attrs: bool = False) -> Page:
    """A product's page: its options (name, then values), title, price, rating, sub-page buttons and
    Buy Now. show_attrs adds the Attributes button (WebShop's show_attrs; AgentGym leaves it off)."""
    nodes = [*_header(instruction), PREV_PAGE]
    values = []
    for name, contents in product["options"].items():
        nodes.append(str(name))
        nodes += [str(v) for v in contents]
        values += [str(v) for v in contents]
    nodes += [str(product["Title"]), f"Price: {product['Price']}", f"Rating: {product['Rating']}"]
    subs = list(SUB_PAGES if show_attrs else SUB_PAGES[:3])
    nodes += [*subs, BUY_NOW]
    return Page(_join(nodes), _clickables([BACK_TO_SEARCH, PREV_PAGE, *subs, BUY_NOW], values))


def sub_page(instruction: str, product: dict, which: str) -> Page:
    """A product's Description, Features, Reviews or Attributes page (WebShop never loads reviews:
    its Reviews page is empty)."""
    nodes = [*_header(instruction), PREV_PAGE]
    if which == "Description":
        nodes.append(str(product["Description"]))
    elif which == "Features":
        nodes += [f" {b}" for b in product["BulletPoints"]]
    elif which == "Reviews":
        for r in product.get("Reviews", []):
            nodes += [f'"{r.get("title")}"', str(r.get("score")), str(r.get("body"))]
    elif which == "Attributes":
        nodes += [f" {a}" for a in product["Attributes"]]
        nodes += [str(product.get(k)) for k in ("category", "query", "product_category")]
    else:
        raise ValueError(f"no sub-page {which!r}: choose one of {SUB_PAGES}")
    return Page(_join(nodes), _clickables([BACK_TO_SEARCH, PREV_PAGE]))


def _tojson(value) -> str:
    """Flask's `tojson` filter: sorted keys, ASCII, and <, >, &, ' escaped for HTML."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=True)
    for ch, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(ch, code)
    return text


def done_page(asin: str, options: dict, reward: float) -> Page:
    """The page after Buy Now, as WebShop's text env renders it (goal fields unset, shown as None
    or left empty; the hidden debug block is visible text too).

    >>> done_page("B01", {"color": "red"}, 0.5).text.split(" [SEP] ")[6:9]
    ['B01', 'options', '{"color": "red"}']
    """
    nodes = [
        "Thank you for shopping with us!",
        "Your code: ",
        "None",
        " (Paste it in your MTurk interface.)",
        "Purchased",
        "asin",
        str(asin),
        "options",
        _tojson(options),
        "attrs",
        "None",
        "category",
        "None",
        "query",
        "None",
        "product category",
        "None",
        "Target",
        "asin",
        "options",
        "attrs",
        "price upper",
        "instuction text",  # sic: WebShop's template
        "category",
        "product category",
        "query",
        "Goal ",
        "None",
        "Reward",
        "Your score (min 0.0, max 1.0)",
        str(reward),
        "Reward Details ",
        "None",
    ]
    return Page(_join(nodes), ())
