"""The embedded default catalogue: WebShop's real attribute file plus generated product pages.

NUMBERS MEASURED ON THIS CATALOGUE ARE NOT COMPARABLE TO THE PAPER'S. The product pages of
WebShop's 1000-product setting (items_shuffle_1000.json) are not redistributable here, so this
module writes a page for each of the 1000 asins of the real items_ins_v2_1000.json (shipped in
data/ with WebShop's MIT licence) in items_shuffle_1000.json's own record format, and the same
loader (data.py) reads them. Point AGENTPRM_WEBSHOP_DATA at WebShop's files for paper numbers.

How the pages are made (deterministic: every random choice comes from random.Random seeded with
SEED and the asin, so every machine writes the same records; no network, nothing cached on disk):
- Target products: the 415 asins with an instruction. The instruction is "Find me <attributes>
  <query> [with <attributes>] [for <attributes>]" (`parse_instruction`); the page's query is that
  query, its title is "<Brand> <some attributes> <Query> [with <attributes>]", every instruction
  attribute appears verbatim in the description and the first bullet, the category and
  "A › B › C" product category follow from the query (`category_of`, `product_category_of`).
- Options: per category (colour and size for clothes and shoes, bed sizes for beds, scent or size
  for beauty, flavour and size for food, finish for furniture, ...). The value counts are then
  adjusted so that the synthetic goals (one per combination of option values) number exactly
  EMBEDDED_GOAL_COUNT = 6910, so every AgentGym task id (AgentEval's test ids go up to 6904,
  AgentTraj-L's training ids to 6909) is a valid index here too. The goal behind an index is
  NOT the goal upstream has there.
- Prices: by category; some clothes carry a price range ("$19.99$27.99", the format of the real
  file), which the loader turns into a seeded draw. The goal's price cap is drawn above the price
  (goals.py), so a target always satisfies its own cap.
- Distractors: the 585 asins without an instruction. Each joins the query family whose target
  attributes share most of its own attributes (idf-weighted; families with fewest distractors take
  the ones that share nothing) and becomes a near miss of one target there (its "twin"), with the
  same kind in its title and one flaw (`_distractor`): an instruction attribute missing, a price
  above every cap the twin's goals can have, or none of the twin's values for one option. So a
  search finds several close pages and only reading price, options and text tells them apart.
  Targets sharing a query (up to 9) compete with each other too.
- Generic sentences never contain an attribute phrase of the attribute file, and option values are
  never written into the text, so the reward's attribute match sees only the chosen attributes.

    >>> records = embedded_records()
    >>> len(records), sorted(records[0])[:4]
    (1000, ['asin', 'category', 'customization_options', 'full_description'])
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections import Counter
from importlib import resources
from typing import NamedTuple

from agentprm.envs.webshop.kinds import (
    Dim,
    category_of,
    display,
    has_word,
    option_menu,
    pick_values,
    product_category_of,
)

SEED = 20240601  # the generator's seed; change it and every page changes
EMBEDDED_GOAL_COUNT = 6910  # the synthetic goals of the generated pages (see the module docstring)
ATTRIBUTES_RESOURCE = "items_ins_v2_1000.json"


class Instruction(NamedTuple):
    """A synthetic WebShop instruction "Find me <pre> <query> [with <with_>] [for <for_>]"."""

    query: str
    pre: tuple[str, ...]
    with_: tuple[str, ...]
    for_: tuple[str, ...]


def parse_instruction(text: str, attributes: list[str]) -> Instruction:
    """Split a synthetic instruction into its query and attribute groups (attributes in file order).

    ValueError when the text does not have that shape.

    >>> parse_instruction("Find me non slip shave & hair removal with stainless steel",
    ...                   ["non slip", "stainless steel"])
    Instruction(query='shave & hair removal', pre=('non slip',), with_=('stainless steel',), for_=())
    """
    if not text.startswith("Find me "):
        raise ValueError(f"instruction {text!r:.60} does not start with 'Find me '")
    rest = text[len("Find me ") :]
    n = len(attributes)
    for k in range(n, -1, -1):  # most leading attributes first
        pre = ", ".join(attributes[:k])
        if k and not rest.startswith(pre + " "):
            continue
        body = rest[len(pre) + 1 :] if k else rest
        for m in range(k, n + 1):
            with_, for_ = attributes[k:m], attributes[m:]
            tail = (" with " + ", ".join(with_) if with_ else "") + (
                " for " + ", ".join(for_) if for_ else ""
            )
            if len(body) > len(tail) and body.endswith(tail):
                return Instruction(
                    body[: len(body) - len(tail)], tuple(attributes[:k]), tuple(with_), tuple(for_)
                )
    raise ValueError(f"instruction {text!r:.60} does not list its attributes in the synthetic shape")


def _fit_counts(layouts: list[list[Dim]], counts: list[list[int]], total: int) -> None:
    """Change value counts (the last dimension of each layout, one step at a time, within its bounds)
    until the products of the counts sum to `total`. Changes `counts` in place."""
    missing = total - sum(math.prod(c) for c in counts)
    while missing:
        step_made = False
        for layout, c in zip(layouts, counts, strict=True):
            if not layout or not missing:
                continue
            _, pool, lo, hi = layout[-1]
            unit = math.prod(c[:-1])  # what one more (or one fewer) last value changes
            if missing > 0 and unit <= missing and c[-1] < min(hi + 2, len(pool)):
                c[-1] += 1
                missing -= unit
                step_made = True
            elif missing < 0 and unit <= -missing and c[-1] > max(lo - 1, 1):
                c[-1] -= 1
                missing += unit
                step_made = True
        if not step_made:
            raise RuntimeError(f"cannot reach {total} goals: {missing} left over")


# --- text -------------------------------------------------------------------------------------
_SYLLABLES = (
    "ka",
    "lo",
    "ve",
    "ra",
    "mi",
    "to",
    "sa",
    "ne",
    "ri",
    "do",
    "lu",
    "fa",
    "zen",
    "tor",
    "bel",
    "mar",
    "qui",
    "vo",
)
# Generic sentences: none contains an attribute phrase of the attribute file (a test checks).
_FILLER = (
    "Ships in a plain recyclable box.",
    "Backed by a 30-day return window.",
    "Please compare the measurements with your own before ordering.",
    "Colours can look slightly different on different screens.",
    "Our support team answers questions within one business day.",
    "Each unit is inspected before it leaves the warehouse.",
)
_BULLET_TAILS = (
    "one of the points buyers ask about most",
    "listed here so you can compare",
    "as described on the label",
    "a feature of this model",
)


def _brand(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()


def _rng(asin: str, purpose: str) -> random.Random:
    # A str seed is hashed with SHA-512 by random, so this is the same on every machine and run.
    return random.Random(f"{SEED}:{purpose}:{asin}")


def _title(brand: str, query: str, ins: Instruction) -> str:
    head = " ".join(display(a) for a in ins.pre[:2])
    title = f"{brand} {head + ' ' if head else ''}{display(query)}"
    if ins.with_:
        title += " with " + " and ".join(display(a) for a in ins.with_[:2])
    if ins.for_:
        title += f", for {display(ins.for_[0])}"
    return title


def _texts(
    brand: str, query: str, ins: Instruction, extra: list[str], rng: random.Random
) -> tuple[str, list[str]]:
    """(full_description, small_description) naming every attribute of `ins` and `extra` verbatim."""
    sentences = [
        f"The {brand} {query}" + (f" is {_and(list(ins.pre))}." if ins.pre else " is made for everyday use.")
    ]
    if ins.with_:
        sentences.append(f"It comes with {_and(list(ins.with_))}.")
    if ins.for_:
        sentences.append(f"Made for {_and(list(ins.for_))}.")
    if extra:
        sentences.append(f"Also: {_and(extra)}.")
    sentences.append(rng.choice(_FILLER))
    every = list(ins.pre) + list(ins.with_) + list(ins.for_)
    bullets = [f"{display(query)}: {', '.join(every) if every else 'see the description'}"]
    bullets += [f"{display(a)} - {rng.choice(_BULLET_TAILS)}" for a in every[:4] + extra[:2]]
    bullets.append(rng.choice(_FILLER))
    return " ".join(sentences), bullets


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _pricing(category: str, query: str, rng: random.Random) -> tuple[float, float | None]:
    """(low, high or None) for a target product."""
    if category == "fashion":
        low = rng.uniform(9, 70)
        return (low, low + rng.uniform(4, 18)) if rng.random() < 0.4 else (low, None)
    if category == "garden":
        small = has_word(
            query, ("lamp", "sconce", "pillow", "blanket", "candle", "wall art", "plant", "window")
        )
        return (rng.uniform(15, 150) if small else rng.uniform(60, 650)), None
    span = {"beauty": (4, 60), "electronics": (8, 400), "grocery": (3, 45)}[category]
    return rng.uniform(*span), None


def _price_text(low: float, high: float | None) -> str:
    return f"${low:.2f}" if high is None else f"${low:.2f}${high:.2f}"


def _options_record(options: list[tuple[str, list[str]]], asin: str) -> dict | str:
    if not options:
        return ""
    record = {}
    for name, values in options:
        with_image = name in ("Color", "Style")  # real records carry images on colour swatches only
        record[name] = [
            {
                "value": v,
                "image": f"https://webshop.invalid/{asin}/{name.lower()}-{i}.jpg" if with_image else None,
            }
            for i, v in enumerate(values)
        ]
    return record


def _record(asin, name, description, bullets, pricing, options, category, query, n_images) -> dict:
    # Key order of a real items_shuffle_1000.json record (the keys clean_product_keys drops left out).
    return {
        "name": name,
        "full_description": description,
        "pricing": pricing,
        "images": [f"https://webshop.invalid/{asin}/{k}.jpg" for k in range(n_images)],
        "product_category": product_category_of(query, category),
        "small_description": bullets,
        "customization_options": _options_record(options, asin),
        "asin": asin,
        "category": category,
        "query": display(query),
    }


# --- the catalogue --------------------------------------------------------------------------------
def generate_records(attributes: dict) -> list[dict]:
    """One items_shuffle_1000.json record per asin of the attribute file, in its order.

    NOT comparable to the paper (see the module docstring). Deterministic for a given file.
    """
    parsed = {
        asin: parse_instruction(e["instruction"], e["instruction_attributes"])
        for asin, e in attributes.items()
        if e.get("instruction") and e.get("instruction_attributes")
    }
    targets = list(parsed)

    # 1. Targets: option layouts and value counts, fitted to EMBEDDED_GOAL_COUNT goals.
    layouts, counts = [], []
    for asin in targets:
        query = parsed[asin].query
        rng = _rng(asin, "options")
        layout = rng.choice(option_menu(category_of(query), query))
        layouts.append(layout)
        counts.append([rng.randint(lo, min(hi, len(pool))) for _, pool, lo, hi in layout])
    _fit_counts(layouts, counts, EMBEDDED_GOAL_COUNT)
    target_options = {}
    for asin, layout, c in zip(targets, layouts, counts, strict=True):
        rng = _rng(asin, "values")
        target_options[asin] = [
            (name, pool, pick_values(pool, k, rng)) for (name, pool, _, _), k in zip(layout, c, strict=True)
        ]

    records: dict[str, dict] = {}
    target_price: dict[str, tuple[float, float | None]] = {}
    for asin in targets:
        ins, query = parsed[asin], parsed[asin].query
        category = category_of(query)
        rng = _rng(asin, "page")
        brand = _brand(rng)
        extra = [
            a for a in attributes[asin]["attributes"] if a not in attributes[asin]["instruction_attributes"]
        ]
        description, bullets = _texts(brand, query, ins, extra, rng)
        low, high = _pricing(category, query, rng)
        target_price[asin] = (low, high)
        name = _title(brand, query, ins)
        records[asin] = _record(
            asin,
            name,
            description,
            bullets,
            _price_text(low, high),
            [(n, values) for n, _, values in target_options[asin]],
            category,
            query,
            rng.randint(1, 4),
        )

    # 2. Distractors: a query family each (idf-weighted attribute overlap), a twin target in it.
    by_query: dict[str, list[str]] = {}
    for asin in targets:
        by_query.setdefault(parsed[asin].query, []).append(asin)
    vocab = {q: {a for t in ts for a in attributes[t]["attributes"]} for q, ts in by_query.items()}
    spread = Counter(a for words in vocab.values() for a in words)
    taken: Counter = Counter()
    for asin, entry in attributes.items():
        if asin in parsed:
            continue
        own = entry.get("attributes", [])

        def rank(q: str, own=own, asin=asin) -> tuple:
            score = sum(1 / spread[a] for a in own if a in vocab[q])
            return (-score, taken[q], zlib.crc32(f"{asin}|{q}".encode()))

        query = min(by_query, key=rank)
        twin = by_query[query][taken[query] % len(by_query[query])]
        taken[query] += 1
        records[asin] = _distractor(
            asin, own, query, twin, parsed[twin], vocab[query], target_options[twin], target_price[twin]
        )
    return [records[asin] for asin in attributes]


def _distractor(asin, own, query, twin, ins, vocab, twin_options, twin_price) -> dict:
    """A near miss of `twin` (same kind in the title), of one of three kinds, drawn 4 : 3 : 3:
    "attribute": one of the twin's instruction attributes (two, from four or more) left out of the
        text; price near the twin's; options partly the twin's values;
    "price": the twin's attributes and option values, priced above every cap its goals can have;
    "option": the twin's attributes, price near the twin's, and for one option none of the twin's
        values.
    A kind that cannot be made (nothing can be left out without still showing through another
    phrase; no option with values to spare) becomes "price"."""
    rng = _rng(asin, "distractor")
    category = category_of(query)
    every = list(ins.pre) + list(ins.with_) + list(ins.for_)
    extra = [a for a in own if a in vocab and a not in every]

    def shows(attr: str, kept: list[str]) -> bool:
        # Would the attribute still be found in the text (the reward checks substrings)?
        return attr in own or any(attr in t for t in [query, *kept, *extra])

    droppable = [a for a in every if not shows(a, [b for b in every if b != a])]
    spare = [d for d, (_, pool, values) in enumerate(twin_options) if len(pool) > len(values)]
    kind = rng.choices(("attribute", "price", "option"), weights=(4, 3, 3))[0]
    if (kind == "attribute" and (not droppable or len(every) < 2)) or (kind == "option" and not spare):
        kind = "price"

    dropped: set[str] = set()
    if kind == "attribute":
        n_drop = 2 if len(every) >= 4 and rng.random() < 0.3 else 1
        dropped = set(rng.sample(droppable, min(len(droppable), n_drop)))
    kept = Instruction(query, *(tuple(a for a in group if a not in dropped) for group in ins[1:]))
    brand = _brand(rng)
    description, bullets = _texts(brand, query, kept, extra, rng)

    low, high = twin_price
    if kind == "price":
        pricing = f"${(high or low) + rng.uniform(45, 120):.2f}"  # caps are at most 40 above the price
    elif rng.random() < 0.06:
        pricing = ""  # WebShop reads this as $100.0
    else:
        pricing = f"${max(1.99, low * rng.uniform(0.6, 1.3)):.2f}"

    options = [(name, list(values)) for name, _, values in twin_options]
    if kind == "option":
        d = rng.choice(spare)
        name, pool, values = twin_options[d]
        others = [v for v in pool if v not in values]
        chosen = set(rng.sample(others, rng.randint(1, min(len(others), len(values) + 1))))
        options[d] = (name, [v for v in pool if v in chosen])
    elif kind == "attribute":
        for d, (name, pool, values) in enumerate(twin_options):
            new = set(rng.sample(pool, min(len(pool), rng.randint(0, 3))))
            chosen = [v for v in pool if (v in values and rng.random() < 0.5) or v in new]
            options[d] = (name, chosen or [rng.choice(pool)])
    return _record(
        asin,
        _title(brand, query, kept),
        description,
        bullets,
        pricing,
        options,
        category,
        query,
        rng.randint(1, 4),
    )


def embedded_attributes() -> dict:
    """WebShop's real items_ins_v2_1000.json, shipped in this package's data/ (MIT, data/LICENSE.md)."""
    path = resources.files("agentprm.envs.webshop") / "data" / ATTRIBUTES_RESOURCE
    return json.loads(path.read_text(encoding="utf-8"))


def embedded_records() -> list[dict]:
    """The generated items_shuffle_1000.json records of the embedded catalogue (fresh each call).
    NOT comparable to the paper."""
    return generate_records(embedded_attributes())
