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
import re
import zlib
from collections import Counter
from importlib import resources
from typing import NamedTuple

SEED = 20240601  # the generator's seed; change it and every page changes
EMBEDDED_GOAL_COUNT = 6910  # the synthetic goals of the generated pages (see the module docstring)
ATTRIBUTES_RESOURCE = "items_ins_v2_1000.json"

# --- query -> category and "A › B › C" product category -------------------------------------------------
_FOOTWEAR = (
    "shoe", "sneaker", "boot", "sandal", "slipper", "loafer", "pump", "oxford", "flat", "clog",
    "mule", "footwear",
)  # fmt: skip
_ELECTRONICS = (
    "cable", "speaker", "camera", "flash", "mount", "surveillance", "projector", "iphone", "mac",
    "receiver", "amplifier", "soundbar", "lens", "charger", "headset", "tripod", "virtual reality",
    "printer", "vcr", "headphone", "turntable", "player", "streaming", "power protection",
    "television", "signal booster", "wearable", "binocular", "screen protector", "underwater",
    "car accessories", "online game", "video glasses", "multiroom", "surround sound",
)  # fmt: skip
_GROCERY = (
    "meat", "food", "snack", "candy", "beverage", "chees", "cracker", "milk", "fruit", "peas",
    "nutrition bars", "meal kit", "frozen", "pantry", "seafood", "applesauce", "raisin",
)  # fmt: skip
_BEAUTY = (
    "hair", "makeup", "skin", "nail", "shave", "tooth", "dental", "deodorant", "fragrance", "bath",
    "scrub", "body care", "lip", "cotton balls", "refillable", "bags & cases", "piercing", "tongue",
    "orthodontic", "toothpick", "shampoo", "styling",
)  # fmt: skip
# category -> (top level, [(keywords, middle level)], default middle level)
_PATHS = {
    "beauty": ("Beauty & Personal Care", [
        (("shave",), "Shave & Hair Removal"), (("hair", "shampoo", "styling"), "Hair Care"),
        (("makeup", "lip", "palette", "brush", "eyes"), "Makeup"), (("deodorant",), "Personal Care"),
        (("tooth", "dental", "tongue", "orthodontic", "toothpick"), "Oral Care"),
        (("fragrance",), "Fragrance"),
        (("nail", "foot"), "Foot, Hand & Nail Care"),
        (("skin", "scrub", "body", "bath", "cotton"), "Skin Care"),
    ], "Tools & Accessories"),
    "electronics": ("Electronics", [
        (("camera", "flash", "lens", "tripod", "underwater", "binocular"), "Camera & Photo"),
        (("speaker", "soundbar", "receiver", "amplifier", "turntable", "headphone", "headset", "cd",
          "surround", "multiroom"), "Home Audio"),
        (("tv", "projector", "blu-ray", "vcr", "streaming", "television", "video"), "Television & Video"),
    ], "Accessories & Supplies"),
    "grocery": ("Grocery & Gourmet Food", [
        (("snack", "cracker", "peas", "bars", "candy", "fruit", "raisin", "applesauce"), "Snacks & Sweets"),
        (("meat", "seafood", "deli", "frozen", "meal kit", "chees", "milk"), "Fresh & Chilled"),
        (("beverage",), "Beverages"),
    ], "Pantry Staples"),
    "garden": ("Home & Kitchen", [
        (("lamp", "sconce", "chandelier", "pendant"), "Lighting"),
        (("mattress", "bed", "blanket", "pillow"), "Bedding"),
        (("candle", "wall art", "mirror", "plant", "window"), "Home Décor"),
        (("office", "desk", "file cabinet", "drafting"), "Home Office Furniture"),
    ], "Furniture"),
}  # fmt: skip


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


def display(phrase: str) -> str:
    """A lower-case phrase as a title shows it; lower-cases back to itself.

    >>> display("men's t-shirts & tanks")
    "Men's T-shirts & Tanks"
    """
    return " ".join(
        w if w in ("&", "and", "with", "for") else w[:1].upper() + w[1:] for w in phrase.split(" ")
    )


def _has(query: str, words) -> bool:
    """Whether a word of the query starts with one of `words` ("chairs" does not hold "hair")."""
    return any(re.search(rf"(?<![a-z]){re.escape(w)}", query) for w in words)


def category_of(query: str) -> str:
    """WebShop's five categories, from the query's words.

    >>> [category_of(q) for q in ("men's shorts", "men's fragrance", "hdmi cables", "beds", "cheeses")]
    ['fashion', 'beauty', 'electronics', 'garden', 'grocery']
    >>> category_of("home office chairs"), category_of("mirrors"), category_of("decorative mirrors")
    ('garden', 'beauty', 'garden')
    """
    if query.startswith(("men's ", "women's ")) and "fragrance" not in query:
        return "fashion"
    if query == "mirrors":  # WebShop's beauty query (makeup mirrors); "decorative mirrors" is home
        return "beauty"
    for category, words in (("electronics", _ELECTRONICS), ("grocery", _GROCERY), ("beauty", _BEAUTY)):
        if _has(query, words):
            return category
    return "garden"


def product_category_of(query: str, category: str) -> str:
    """The "A › B › C" breadcrumb of a query (related queries share A and B).

    >>> product_category_of("women's pumps", "fashion")
    "Clothing, Shoes & Jewelry › Women › Shoes › Women's Pumps"
    """
    if category == "fashion":
        who = "Women" if query.startswith("women's") else "Men"
        kind = "Shoes" if _has(query, _FOOTWEAR) else "Clothing"
        return f"Clothing, Shoes & Jewelry › {who} › {kind} › {display(query)}"
    top, rules, default = _PATHS[category]
    middle = next((mid for words, mid in rules if _has(query, words)), default)
    return f"{top} › {middle} › {display(query)}"


# --- options ----------------------------------------------------------------------------------
COLORS = (
    "Black", "White", "Navy", "Grey", "Heather Grey", "Red", "Blue", "Light Blue", "Dark Blue",
    "Green", "Army Green", "Olive", "Khaki", "Beige", "Brown", "Coffee", "Pink", "Light Pink",
    "Purple", "Yellow", "Orange", "Burgundy", "Wine Red", "Charcoal", "Teal", "Ivory", "Black/White",
    "Navy/White", "Grey/Black", "Multicolor",
)  # fmt: skip
APPAREL_SIZES = ("X-Small", "Small", "Medium", "Large", "X-Large", "XX-Large", "3X-Large", "4X-Large")
SHOE_SIZES = (
    "5",
    "5.5",
    "6",
    "6.5",
    "7",
    "7.5",
    "8",
    "8.5",
    "9",
    "9.5",
    "10",
    "10.5",
    "11",
    "11.5",
    "12",
    "13",
)
WAIST_SIZES = (
    "28W x 30L", "29W x 30L", "30W x 30L", "30W x 32L", "32W x 30L", "32W x 32L", "33W x 32L",
    "34W x 30L", "34W x 32L", "36W x 32L", "38W x 32L", "40W x 32L",
)  # fmt: skip
BED_SIZES = ("Twin", "Twin XL", "Full", "Queen", "King", "California King")
FINISHES = (
    "Espresso", "Walnut", "Rustic Brown", "White", "Black", "Grey", "Natural", "Oak", "Cherry",
    "Antique White", "Distressed Grey", "Navy Blue",
)  # fmt: skip
FURNITURE_SIZES = ("24 Inch", "30 Inch", "36 Inch", "42 Inch", "48 Inch", "55 Inch", "60 Inch")
BEAUTY_SIZES = (
    "0.5 Fl Oz (Pack of 1)", "1 Fl Oz (Pack of 1)", "1.7 Fl Oz (Pack of 1)", "3.4 Fl Oz (Pack of 1)",
    "6.8 Fl Oz (Pack of 1)", "8 Fl Oz (Pack of 2)", "16 Fl Oz (Pack of 1)", "2 Count", "3 Count",
    "4 Count", "6 Count", "12 Count",
)  # fmt: skip
SCENTS = (
    "Unscented", "Lavender", "Coconut", "Citrus", "Vanilla", "Rose", "Peppermint", "Eucalyptus",
    "Sandalwood", "Green Tea", "Cherry Blossom", "Ocean Breeze",
)  # fmt: skip
BEAUTY_COLORS = (
    "Black",
    "Brown",
    "Nude",
    "Pink",
    "Coral",
    "Red",
    "Silver",
    "Gold",
    "Clear",
    "Purple",
    "Natural",
)
FLAVORS = (
    "Original", "Sea Salt", "Barbecue", "Honey", "Spicy", "Cheddar", "Garlic & Herb", "Chocolate",
    "Vanilla", "Strawberry", "Mixed Berry", "Peanut Butter",
)  # fmt: skip
GROCERY_SIZES = (
    "2 Ounce (Pack of 12)", "4 Ounce (Pack of 6)", "8 Ounce (Pack of 3)", "12 Ounce (Pack of 1)",
    "1 Pound (Pack of 2)", "16 Ounce (Pack of 4)", "24 Count", "48 Count",
)  # fmt: skip
DEVICE_COLORS = ("Black", "White", "Silver", "Space Grey", "Blue", "Red")
STYLES = ("Standard", "Pro", "Bundle", "With Case", "2-Pack", "Wireless", "Wired")
LENGTHS = ("3 Feet", "6 Feet", "10 Feet", "15 Feet", "25 Feet", "50 Feet")
# Sizes run in order (a window); colours and the like are any subset.
_ORDERED = {
    APPAREL_SIZES,
    SHOE_SIZES,
    WAIST_SIZES,
    BED_SIZES,
    FURNITURE_SIZES,
    BEAUTY_SIZES,
    GROCERY_SIZES,
    LENGTHS,
}

# An option dimension: (raw option name, value pool, fewest values, most values).
Dim = tuple[str, tuple[str, ...], int, int]


def _option_menu(category: str, query: str) -> list[list[Dim]]:
    """The option layouts a product of this query may get (one is drawn per product)."""
    if category == "fashion":
        if _has(query, _FOOTWEAR):
            return [[("Color", COLORS, 3, 7), ("Size", SHOE_SIZES, 5, 10)]]
        sizes = WAIST_SIZES if ("pants" in query or "jeans" in query) else APPAREL_SIZES
        return [
            [("Color", COLORS, 4, 11), ("Size", sizes, 4, 7)],
            [("Color", COLORS, 3, 8), ("Size", sizes, 5, 7)],
        ]
    if category == "beauty":
        return [
            [("Size", BEAUTY_SIZES, 1, 6)],
            [("Scent", SCENTS, 2, 7)],
            [("Color", BEAUTY_COLORS, 2, 8)],
            [("Scent", SCENTS, 2, 5), ("Size", BEAUTY_SIZES, 1, 4)],
            [],
        ]
    if category == "grocery":
        return [
            [("Flavor Name", FLAVORS, 2, 7)],
            [("Flavor Name", FLAVORS, 2, 5), ("Size", GROCERY_SIZES, 1, 4)],
            [],
        ]
    if category == "electronics":
        if "cable" in query:
            return [[("Size", LENGTHS, 2, 5)], [("Color", DEVICE_COLORS, 1, 2), ("Size", LENGTHS, 2, 4)]]
        return [
            [("Color", DEVICE_COLORS, 1, 5)],
            [("Style", STYLES, 2, 5)],
            [("Color", DEVICE_COLORS, 2, 3), ("Style", STYLES, 1, 3)],
            [],
        ]
    if _has(query, ("mattress", "bed")):
        return [[("Size", BED_SIZES, 2, 5)], [("Color", FINISHES, 1, 4), ("Size", BED_SIZES, 2, 5)]]
    return [[("Color", FINISHES, 2, 7)], [("Color", FINISHES, 2, 6), ("Size", FURNITURE_SIZES, 1, 3)], []]


def _pick(pool: tuple[str, ...], k: int, rng: random.Random) -> list[str]:
    """k values of a pool: a window for sizes, any subset (in pool order) for the rest."""
    if pool in _ORDERED:
        start = rng.randrange(len(pool) - k + 1)
        return list(pool[start : start + k])
    return [pool[i] for i in sorted(rng.sample(range(len(pool)), k))]


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
        small = _has(query, ("lamp", "sconce", "pillow", "blanket", "candle", "wall art", "plant", "window"))
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
        layout = rng.choice(_option_menu(category_of(query), query))
        layouts.append(layout)
        counts.append([rng.randint(lo, min(hi, len(pool))) for _, pool, lo, hi in layout])
    _fit_counts(layouts, counts, EMBEDDED_GOAL_COUNT)
    target_options = {}
    for asin, layout, c in zip(targets, layouts, counts, strict=True):
        rng = _rng(asin, "values")
        target_options[asin] = [
            (name, pool, _pick(pool, k, rng)) for (name, pool, _, _), k in zip(layout, c, strict=True)
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
