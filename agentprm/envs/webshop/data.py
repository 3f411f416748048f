"""WebShop's product files -> a `Catalogue`, read with WebShop's own loading rules.

Where the data comes from (`resolve_data_dir`, `describe_source`):
  1. a folder given as an argument, else
  2. the folder in the environment variable AGENTPRM_WEBSHOP_DATA, else
  3. the embedded catalogue (catalogue.py): WebShop's real attribute file with generated product
     pages. Numbers measured on it are NOT comparable to the paper's.
A folder holds WebShop's own files: items_shuffle_1000.json (product pages), items_ins_v2_1000.json
(attributes and instructions) and, optionally, items_human_ins.json (human instructions).

A product is the dict WebShop's engine.load_products builds from a raw record: the record's keys
minus those clean_product_keys drops, plus Title (= name), Description (= full_description),
Reviews [], Rating 'N.A.', BulletPoints (small_description, made a list), pricing (list of floats),
Price (the tag shown on pages), options {lower-cased name: [normalised values]}, option_to_image,
Attributes (from the attribute file, ['DUMMY_ATTR'] when absent), instruction_text,
instruction_attributes, instructions (human instructions, only when that file is loaded), MainImage
(images[0]) and query lower-cased and stripped.

Rules kept from WebShop (engine.py):
- Records are taken in file order (the first `num_products` of them when given, before any check).
- Skipped: asin 'nan', an asin longer than 10 characters, an asin seen before (the first wins).
- Option value -> value.strip().replace('/', ' | ').lower(); option name -> name.lower(); an option
  whose value list is null is left out.
- pricing "" or missing -> [100.0] with tag "$100.0"; "$x" -> [x], tag f"${x}" (a float: "$34.0");
  "$x$y" or "$x - $y" -> [x, y], tag "$x to $y" (more prices: the first two).
- The price a product sells at (`Catalogue.prices`): the single price, or 100.0, or for a range a
  uniform draw between its two ends.
Deliberate differences, each where WebShop crashes or cannot be reproduced:
- WebShop draws range prices from the unseeded global `random` (AgentGym's server even calls
  random.seed(time.time()) before building each env), so its prices, and the price caps of goals
  built from them, change with every restart and env. Here the draw is random.Random(price_seed),
  one draw per ranged product in product order; the default seed is PRICE_SEED.
- A record WebShop's loader would crash on (a missing key, a wrong type, an empty image list, an
  unreadable price) is skipped and counted (`Catalogue.skipped`, one warning per load). Its asin is
  not taken, so a later well-formed record with the same asin is kept.
- WebShop raises KeyError for a product whose asin the attribute file lacks (synthetic goals mode);
  here it gets ['DUMMY_ATTR'] and no instruction. WebShop also insists on items_human_ins.json even
  when it does not use it; here that file is optional.
- instruction_text / instruction_attributes are always set (WebShop sets them only without human
  goals); `instructions` is added when the human file is loaded.

A missing or unreadable file raises WebShopDataError naming the file, the reason and what to do.

    >>> parse_pricing("$19.99$27.99")
    ([19.99, 27.99], '$19.99 to $27.99')
    >>> normalise_option_value(" Black/White ")
    'black | white'
"""

from __future__ import annotations

import json
import os
import random
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ENV_VAR = "AGENTPRM_WEBSHOP_DATA"
PRODUCTS_FILE = "items_shuffle_1000.json"
ATTRIBUTES_FILE = "items_ins_v2_1000.json"
HUMAN_FILE = "items_human_ins.json"
EMBEDDED_SOURCE = "embedded catalogue (not comparable to the paper)"

PRICE_SEED = 0  # seed of the range-price draw; WebShop's own draw is unseeded
DEFAULT_PRICE = 100.0  # WebShop's price for a product without pricing
DUMMY_ATTR = "DUMMY_ATTR"
# Keys engine.clean_product_keys drops from every raw record.
DROPPED_KEYS = (
    "product_information",
    "brand",
    "brand_url",
    "list_price",
    "availability_quantity",
    "availability_status",
    "total_reviews",
    "total_answered_questions",
    "seller_id",
    "seller_name",
    "fulfilled_by_amazon",
    "fast_track_message",
    "aplus_present",
    "small_description_old",
)
# Keys load_products reads with [] (a record without one crashes WebShop).
REQUIRED_KEYS = (
    "asin",
    "name",
    "full_description",
    "small_description",
    "customization_options",
    "images",
    "category",
    "query",
    "product_category",
)
_FIX = (
    f"Give the folder that holds WebShop's {PRODUCTS_FILE} and {ATTRIBUTES_FILE} (from WebShop's "
    f"setup.sh download), or unset {ENV_VAR} to use the embedded catalogue"
)


class WebShopDataError(ValueError):
    """A WebShop data file (or folder) is missing or unreadable; the message names it and the fix."""


@dataclass(frozen=True)
class Catalogue:
    """WebShop's loaded products, in the shape engine.load_products returns them.

    products: product dicts in file order (duplicates and bad asins left out).
    by_asin: asin -> product (WebShop's product_item_dict).
    prices: asin -> the price the product sells at (float).
    attribute_to_asins: attribute -> set of asins whose Attributes list it.
    source: one line for reports, e.g. "WebShop files from /data/webshop" or EMBEDDED_SOURCE.
    skipped: reason -> number of raw records left out for it.
    """

    products: list[dict]
    by_asin: dict[str, dict]
    prices: dict[str, float]
    attribute_to_asins: dict[str, set[str]]
    source: str
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def has_human_instructions(self) -> bool:
        """Whether items_human_ins.json was loaded (products then may carry `instructions`)."""
        return any("instructions" in p for p in self.products)


def normalise_option_value(value: str) -> str:
    """WebShop's option value normalisation: strip, '/' -> ' | ', lower-case.

    >>> normalise_option_value("Navy/White"), normalise_option_value("  X-Large ")
    ('navy | white', 'x-large')
    """
    return value.strip().replace("/", " | ").lower()


def parse_pricing(pricing: str | None) -> tuple[list[float], str]:
    """A raw record's pricing string -> (prices, price tag), as WebShop's loader parses it.

    Each "$"-separated piece keeps only digits and dots. ValueError when a piece has no number.

    >>> parse_pricing("")
    ([100.0], '$100.0')
    >>> parse_pricing("$877.80")
    ([877.8], '$877.8')
    >>> parse_pricing("$1,299.00 - $1,499.50")
    ([1299.0, 1499.5], '$1299.0 to $1499.5')
    """
    if not pricing:
        return [DEFAULT_PRICE], f"${DEFAULT_PRICE}"
    if not isinstance(pricing, str):
        raise ValueError(f"pricing is a {type(pricing).__name__}, not a string")
    prices = []
    for piece in pricing.split("$")[1:]:
        digits = re.sub(r"[^\d.]", "", piece)
        try:
            prices.append(float(digits))
        except ValueError:
            raise ValueError(f"pricing {pricing!r:.60} has a piece without a number") from None
    if not prices:
        raise ValueError(f"pricing {pricing!r:.60} has no '$'")
    if len(prices) == 1:
        return prices, f"${prices[0]}"
    return prices[:2], f"${prices[0]} to ${prices[1]}"


def parse_options(customization_options) -> tuple[dict[str, list[str]], dict[str, str | None]]:
    """A raw record's customization_options -> (options, option_to_image), WebShop's rules.

    options: lower-cased option name -> normalised values in record order; an option whose list is
    null is left out. option_to_image: normalised value -> its image (None when it has none).
    ValueError for a shape WebShop cannot read.

    >>> parse_options({"Color": [{"value": "Navy/White", "image": "a.jpg"}], "Size": None})
    ({'color': ['navy | white']}, {'navy | white': 'a.jpg'})
    >>> parse_options("")
    ({}, {})
    """
    if not customization_options:
        return {}, {}
    if not isinstance(customization_options, Mapping):
        raise ValueError(f"customization_options is a {type(customization_options).__name__}")
    options: dict[str, list[str]] = {}
    option_to_image: dict[str, str | None] = {}
    for name, contents in customization_options.items():
        if contents is None:
            continue
        if not isinstance(contents, list):
            raise ValueError(f"option {name!r} is a {type(contents).__name__}, not a list")
        values = []
        for content in contents:
            if not isinstance(content, Mapping) or not isinstance(content.get("value"), str):
                raise ValueError(f"option {name!r} has an entry without a string 'value'")
            value = normalise_option_value(content["value"])
            values.append(value)
            option_to_image[value] = content.get("image")
        options[name.lower()] = values
    return options, option_to_image


def make_product(record: Mapping, attributes: Mapping, human: Mapping | None = None) -> dict:
    """One raw record (items_shuffle format) -> WebShop's product dict (see the module docstring).

    `attributes` is the attribute file ({asin: {"attributes", "instruction"?,
    "instruction_attributes"?}}), `human` the human instruction file or None. The record is not
    changed (the product shares its lists). ValueError for a record WebShop's loader would crash on.
    """
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"missing keys {missing}")
    for key in ("asin", "name", "full_description", "category", "query", "product_category"):
        if not isinstance(record[key], str):
            raise ValueError(f"{key} is not a string but {type(record[key]).__name__}")
    bullets = record["small_description"]
    bullets = bullets if isinstance(bullets, list) else [bullets]
    if not all(isinstance(b, str) for b in bullets):
        raise ValueError("small_description holds a non-string")
    images = record["images"]
    if not isinstance(images, list) or not images:
        raise ValueError("images is not a non-empty list")
    pricing, price_tag = parse_pricing(record.get("pricing"))
    options, option_to_image = parse_options(record["customization_options"])

    asin = record["asin"]
    entry = attributes.get(asin, {})
    # Key order follows WebShop's in-place edits of the record (its pages iterate some dicts).
    product = {k: v for k, v in record.items() if k not in DROPPED_KEYS}
    product.update(
        Title=record["name"],
        Description=record["full_description"],
        Reviews=[],
        Rating="N.A.",
        BulletPoints=bullets,
        pricing=pricing,
        Price=price_tag,
        options=options,
        option_to_image=option_to_image,
        Attributes=entry["attributes"] if "attributes" in entry else [DUMMY_ATTR],
        instruction_text=entry.get("instruction"),
        instruction_attributes=entry.get("instruction_attributes"),
    )
    if human is not None and asin in human:
        product["instructions"] = human[asin]
    product["MainImage"] = images[0]
    product["query"] = record["query"].lower().strip()
    return product


def load_products(
    records: Sequence,
    attributes: Mapping,
    human: Mapping | None = None,
    num_products: int | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Raw records -> (products in file order, {skip reason: count}), WebShop's skip rules.

    >>> rec = {"asin": "B000000001", "name": "Mug", "full_description": "", "small_description": [],
    ...        "customization_options": "", "images": ["i.jpg"], "category": "garden",
    ...        "query": "Mugs ", "product_category": "", "pricing": "$5"}
    >>> products, skipped = load_products([rec, rec, {**rec, "asin": "nan"}], {})
    >>> [(p["asin"], p["Price"], p["query"], p["Attributes"]) for p in products], skipped
    ([('B000000001', '$5.0', 'mugs', ['DUMMY_ATTR'])], {'duplicate asin': 1, "asin 'nan'": 1})
    """
    if num_products is not None:
        records = records[:num_products]  # WebShop assumes the file is already shuffled
    products, seen, skipped = [], set(), Counter()
    for record in records:
        asin = record.get("asin") if isinstance(record, Mapping) else None
        if asin == "nan":
            skipped["asin 'nan'"] += 1
            continue
        if isinstance(asin, str) and len(asin) > 10:
            skipped["asin longer than 10 characters"] += 1
            continue
        if isinstance(asin, str) and asin in seen:
            skipped["duplicate asin"] += 1
            continue
        try:
            if not isinstance(record, Mapping):
                raise ValueError(f"the record is a {type(record).__name__}, not an object")
            product = make_product(record, attributes, human)
        except ValueError as e:
            skipped[f"unreadable record ({e})"] += 1
            continue
        seen.add(asin)
        products.append(product)
    return products, dict(skipped)


def draw_prices(products: Sequence[Mapping], seed: int = PRICE_SEED) -> dict[str, float]:
    """asin -> selling price: the single price, or a uniform draw in a range (seeded, one draw per
    ranged product in product order; WebShop's generate_product_prices with a seed).

    >>> draw_prices([{"asin": "A", "pricing": [3.0]}, {"asin": "B", "pricing": [1.0, 2.0]}], seed=0)
    {'A': 3.0, 'B': 1.8444218515250481}
    """
    rng = random.Random(seed)
    prices = {}
    for product in products:
        pricing = product["pricing"]
        prices[product["asin"]] = pricing[0] if len(pricing) == 1 else rng.uniform(*pricing[:2])
    return prices


def attribute_index(products: Sequence[Mapping]) -> dict[str, set[str]]:
    """attribute -> asins whose Attributes list it (WebShop's attribute_to_asins)."""
    index: dict[str, set[str]] = {}
    for product in products:
        for attribute in product["Attributes"]:
            index.setdefault(attribute, set()).add(product["asin"])
    return index


def build_catalogue(
    records: Sequence,
    attributes: Mapping,
    human: Mapping | None = None,
    *,
    num_products: int | None = None,
    price_seed: int = PRICE_SEED,
    source: str = "",
) -> Catalogue:
    """Raw records + attribute file (+ human file) -> Catalogue; warns once about unreadable records."""
    products, skipped = load_products(records, attributes, human, num_products)
    unreadable = {k: n for k, n in skipped.items() if k.startswith("unreadable")}
    if unreadable:
        shown = "; ".join(f"{n} x {k}" for k, n in list(unreadable.items())[:3])
        warnings.warn(
            f"{source or 'WebShop products'}: skipped {sum(unreadable.values())} product records "
            f"WebShop's loader would crash on ({shown}); the other {len(products)} are loaded",
            stacklevel=2,
        )
    return Catalogue(
        products=products,
        by_asin={p["asin"]: p for p in products},
        prices=draw_prices(products, price_seed),
        attribute_to_asins=attribute_index(products),
        source=source,
        skipped=skipped,
    )


def read_json(path: Path, expect: type, what: str):
    """Read one WebShop JSON file whose top level must be `expect` (list or dict).

    WebShopDataError naming the file, the reason and what to do when it is missing, not JSON or of
    the wrong shape.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise WebShopDataError(f"{what} {path} does not exist. {_FIX}.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise WebShopDataError(f"{what} {path} cannot be read ({e}). {_FIX}.") from None
    except json.JSONDecodeError as e:
        raise WebShopDataError(
            f"{what} {path} is not valid JSON ({e}); the file is damaged or truncated. Download it "
            f"again (WebShop's setup.sh) or unset {ENV_VAR} to use the embedded catalogue."
        ) from None
    if not isinstance(data, expect):
        kind = "a list of product records" if expect is list else "an object keyed by asin"
        raise WebShopDataError(
            f"{what} {path} holds a JSON {type(data).__name__}, not {kind}; it is not WebShop's file. {_FIX}."
        )
    return data


def _check_attributes(data: dict, path: Path) -> dict:
    """The attribute file's entries must be objects with an 'attributes' list (goals read them)."""
    for asin, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("attributes", []), list):
            raise WebShopDataError(
                f"attribute file {path}: the entry for {asin!r} is not an object with an "
                f"'attributes' list; it is not WebShop's {ATTRIBUTES_FILE}. {_FIX}."
            )
    return data


def _check_human(data: dict, path: Path) -> dict:
    """The human instruction file maps asins to lists of instruction objects."""
    for asin, entries in data.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise WebShopDataError(
                f"human instruction file {path}: the entry for {asin!r} is not a list of objects; "
                f"it is not WebShop's {HUMAN_FILE}. Replace it, or remove it to use synthetic goals only."
            )
    return data


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The WebShop data folder to use: `data_dir`, else $AGENTPRM_WEBSHOP_DATA, else None (embedded).

    WebShopDataError when the chosen folder does not exist.
    """
    origin = "the data_dir argument"
    if data_dir is None or str(data_dir) == "":
        data_dir, origin = os.environ.get(ENV_VAR, ""), f"${ENV_VAR}"
        if not data_dir:
            return None
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise WebShopDataError(
            f"WebShop data folder {path} (from {origin}) is not a folder. Point it at the folder "
            f"that holds {PRODUCTS_FILE} and {ATTRIBUTES_FILE}, or unset {ENV_VAR} to use the "
            "embedded catalogue."
        )
    return path


def describe_source(data_dir: str | os.PathLike | None = None) -> str:
    """One line for reports saying which data a run uses.

    >>> describe_source(None) if not os.environ.get(ENV_VAR) else EMBEDDED_SOURCE
    'embedded catalogue (not comparable to the paper)'
    """
    path = resolve_data_dir(data_dir)
    return EMBEDDED_SOURCE if path is None else f"WebShop files from {path}"


def load_catalogue(
    data_dir: str | os.PathLike | None = None,
    *,
    num_products: int | None = None,
    price_seed: int = PRICE_SEED,
) -> Catalogue:
    """The catalogue a run uses: WebShop's files from the resolved folder (items_human_ins.json read
    when present), or the embedded one. AgentGym's server loads the 1000-product files whole
    (num_products=1000 on a 1000-record file)."""
    path = resolve_data_dir(data_dir)
    if path is None:
        from agentprm.envs.webshop import catalogue  # generation only when it is the source

        records, attributes = catalogue.embedded_records(), catalogue.embedded_attributes()
        return build_catalogue(
            records, attributes, num_products=num_products, price_seed=price_seed, source=EMBEDDED_SOURCE
        )
    records = read_json(path / PRODUCTS_FILE, list, "WebShop product file")
    attributes = _check_attributes(
        read_json(path / ATTRIBUTES_FILE, dict, "WebShop attribute file"), path / ATTRIBUTES_FILE
    )
    human = None
    if (path / HUMAN_FILE).exists():
        human = _check_human(
            read_json(path / HUMAN_FILE, dict, "WebShop human instruction file"), path / HUMAN_FILE
        )
    return build_catalogue(
        records,
        attributes,
        human,
        num_products=num_products,
        price_seed=price_seed,
        source=f"WebShop files from {path}",
    )
