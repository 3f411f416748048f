"""WebShop data: the loader's rules on real records, file errors, the embedded catalogue, goals, splits.

Real records: tests/data/webshop_items_real.json, the first 18 records of WebShop's
items_shuffle_1000.json (tests/data/README.md). Expected values below were worked out by hand from
those records and WebShop's rules unless a comment says otherwise.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from agentprm.envs.webshop import catalogue as cat_mod
from agentprm.envs.webshop import data, goals
from agentprm.envs.webshop.catalogue import embedded_attributes, embedded_records, parse_instruction
from agentprm.envs.webshop.data import WebShopDataError, build_catalogue, load_catalogue

REAL = Path(__file__).parent / "data" / "webshop_items_real.json"
ATTRIBUTES_DIGEST = "f88a36314a397b53b3d9c3fa5878e5f7b26d35019a51ec83fbedeca61a948f6f"
# sha256 of json.dumps(embedded_records(), sort_keys=True): changes only when the generator does.
EMBEDDED_DIGEST = "3027eea05ceb4c6747f0b35aa165880d18631ec76967836fc2bba8cf7d6385ba"
GOAL_KEYS = {
    "asin", "category", "query", "name", "product_category", "instruction_text", "attributes",
    "price_upper", "goal_options", "weight",
}  # fmt: skip


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return json.loads(REAL.read_text())


@pytest.fixture(scope="module")
def attributes() -> dict:
    return embedded_attributes()


@pytest.fixture(scope="module")
def real(records, attributes) -> data.Catalogue:
    return build_catalogue(records, attributes, source="fixture")


@pytest.fixture(scope="module")
def embedded(monkeypatch_module) -> data.Catalogue:
    return load_catalogue(None)


@pytest.fixture(scope="module")
def monkeypatch_module():
    # The embedded catalogue must not pick up a WebShop folder from the caller's environment.
    mp = pytest.MonkeyPatch()
    mp.delenv(data.ENV_VAR, raising=False)
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def embedded_goals(embedded) -> list[dict]:
    return goals.task_goals(embedded)


# --- the loader on real records ---------------------------------------------------------------------
def test_shipped_attribute_file_is_webshops(attributes):
    shipped = Path(cat_mod.__file__).parent / "data" / cat_mod.ATTRIBUTES_RESOURCE
    # sha256 of AgentGym's agentenv-webshop/webshop/data/items_ins_v2_1000.json (147,099 bytes)
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == ATTRIBUTES_DIGEST
    assert len(attributes) == 1000
    assert sum(1 for e in attributes.values() if e.get("instruction")) == 415


def test_real_records_load_with_webshops_rules(real, records):
    assert len(real.products) == 18 and real.skipped == {}
    assert [p["asin"] for p in real.products] == [r["asin"] for r in records]  # file order
    p = real.by_asin["B06Y3VLDFB"]
    assert p["pricing"] == [877.8] and p["Price"] == "$877.8" and real.prices["B06Y3VLDFB"] == 877.8
    assert (
        p["Title"]
        == p["name"]
        == "Vhomes Lights Reclaimed Wood Console Table The Genessis Collection Sofa-Tables"
    )
    assert p["Description"] == p["full_description"]
    assert p["BulletPoints"][1] == "Material:SOLID WOOD "
    assert p["Reviews"] == [] and p["Rating"] == "N.A."
    assert p["MainImage"] == "https://m.media-amazon.com/images/I/51Y1zY1ZdZL.jpg"
    assert p["query"] == "console tables" and p["category"] == "garden"
    assert p["Attributes"] == ["console table", "solid wood"] and p["instruction_text"] is None
    # clean_product_keys drops these; "page" stays
    assert not set(data.DROPPED_KEYS) & set(p) and p["page"] == 378
    assert real.by_asin["B09B7G7P58"]["model"] == "\u200eDining Table Set"


def test_prices_single_empty_and_ranged(real):
    empty = real.by_asin["B08R3XSC65"]
    assert empty["pricing"] == [100.0] and empty["Price"] == "$100.0" and real.prices["B08R3XSC65"] == 100.0
    assert real.by_asin["B07B6DVG41"]["Price"] == "$34.0"
    ranged = real.by_asin["B08ZRR3DZT"]  # "$19.99$27.99"
    assert ranged["pricing"] == [19.99, 27.99] and ranged["Price"] == "$19.99 to $27.99"
    # seed 0: the first ranged product takes random.Random(0).random() = 0.8444218515250481
    assert real.prices["B08ZRR3DZT"] == pytest.approx(19.99 + 8.0 * 0.8444218515250481, abs=1e-9)
    assert 16.99 <= real.prices["B07MGB73NJ"] <= 26.99


def test_parse_pricing_forms():
    assert data.parse_pricing(None) == ([100.0], "$100.0")
    assert data.parse_pricing("$5") == ([5.0], "$5.0")
    assert data.parse_pricing("$19.99 - $27.99") == ([19.99, 27.99], "$19.99 to $27.99")
    assert data.parse_pricing("$1$2$3") == ([1.0, 2.0], "$1.0 to $2.0")
    with pytest.raises(ValueError, match="without a number"):
        data.parse_pricing("$abc")


def test_options_are_normalised(real, records):
    dress = real.by_asin["B08ZRR3DZT"]
    assert dress["options"] == {
        "size": ["x-small", "small", "medium", "large", "x-large"],
        "color": ["black", "light blue", "pink", "plain black", "red", "white", "chocolate brown", "khaki"],
    }
    assert dress["option_to_image"]["light blue"] == "https://m.media-amazon.com/images/I/41fmYlplW0L.jpg"
    assert dress["option_to_image"]["x-small"] is None  # size entries have no "image"
    assert real.by_asin["B09DG92LJL"]["options"] == {}  # {"Color": null}
    assert real.by_asin["B079HGJ5MH"]["option_to_image"] == {"500ml": None, "1000ml": None}
    assert real.by_asin["B09B7G7P58"]["options"]["color"][1] == "brown finish+black cushion"
    slashed = copy.deepcopy(records[5])
    slashed["customization_options"]["Color"][0]["value"] = " Navy/White "
    assert data.make_product(slashed, {})["options"]["color"][0] == "navy | white"


def test_attributes_and_instructions(real, records):
    assert real.by_asin["B08R3XSC65"]["Attributes"] == []  # listed but empty: stays empty
    shampoo = real.by_asin["B07B6DVG41"]
    assert shampoo["instruction_text"].startswith("Find me sulfate free, paraben free shampoo & conditioner")
    assert shampoo["instruction_attributes"][0] == "sulfate free"
    assert real.attribute_to_asins["console table"] == {"B06Y3VLDFB", "B09DG92LJL"}

    orphan = build_catalogue(records[3:4], {})  # an asin the attribute file lacks
    assert orphan.products[0]["Attributes"] == [data.DUMMY_ATTR]
    assert orphan.products[0]["instruction_text"] is None


def test_skip_rules_are_counted(records, attributes):
    first = records[0]
    extra = [
        {**first, "asin": "nan"},
        {**first, "asin": "B0123456789"},  # 11 characters
        {**first, "name": "a later duplicate"},
        {**{k: v for k, v in first.items() if k != "images"}, "asin": "B0MISSING1"},
        {**first, "asin": "B0NOIMAGE1", "images": []},
        {**first, "asin": "B0BADPRICE", "pricing": "$abc"},
        "not a record",
    ]
    with pytest.warns(UserWarning, match="skipped 4 product records"):
        cat = build_catalogue(records + extra, attributes)
    assert len(cat.products) == 18
    assert cat.by_asin[first["asin"]]["name"] == first["name"]  # the first copy wins
    assert cat.skipped == {
        "asin 'nan'": 1,
        "asin longer than 10 characters": 1,
        "duplicate asin": 1,
        "unreadable record (missing keys ['images'])": 1,
        "unreadable record (images is not a non-empty list)": 1,
        "unreadable record (pricing '$abc' has a piece without a number)": 1,
        "unreadable record (the record is a str, not an object)": 1,
    }


def test_unreadable_records_are_skipped_without_taking_the_asin(records, attributes):
    broken = {k: v for k, v in records[0].items() if k != "name"}
    with pytest.warns(UserWarning, match="skipped 3 product records"):
        cat = build_catalogue(
            [broken, {**records[1], "images": []}, {**records[2], "asin": 7}, records[0]], attributes
        )
    assert [p["asin"] for p in cat.products] == [records[0]["asin"]]
    reasons = sorted(k for k in cat.skipped)
    assert reasons == [
        "unreadable record (asin is not a string but int)",
        "unreadable record (images is not a non-empty list)",
        "unreadable record (missing keys ['name'])",
    ]


def test_num_products_takes_the_first_records(records, attributes):
    cat = build_catalogue(records, attributes, num_products=5)
    assert [p["asin"] for p in cat.products] == [r["asin"] for r in records[:5]]


def test_records_are_not_changed(records, attributes):
    before = json.dumps(records)
    build_catalogue(records, attributes)
    assert json.dumps(records) == before


# --- seeded price draw ----------------------------------------------------------------------------
def test_price_draw_is_seeded(records, attributes):
    a = build_catalogue(records, attributes, price_seed=5).prices
    b = build_catalogue(records, attributes, price_seed=5).prices
    c = build_catalogue(records, attributes, price_seed=6).prices
    assert a == b
    assert a["B08ZRR3DZT"] != c["B08ZRR3DZT"] and a["B07MGB73NJ"] != c["B07MGB73NJ"]
    assert {k: v for k, v in a.items() if k not in ("B08ZRR3DZT", "B07MGB73NJ")} == {
        k: v for k, v in c.items() if k not in ("B08ZRR3DZT", "B07MGB73NJ")
    }


# --- files and folders ------------------------------------------------------------------------------
def write_folder(folder: Path, records, attributes, human=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / data.PRODUCTS_FILE).write_text(json.dumps(records))
    (folder / data.ATTRIBUTES_FILE).write_text(json.dumps(attributes))
    if human is not None:
        (folder / data.HUMAN_FILE).write_text(json.dumps(human))
    return folder


def test_missing_file_names_it(tmp_path, attributes):
    (tmp_path / data.ATTRIBUTES_FILE).write_text(json.dumps(attributes))
    with pytest.raises(WebShopDataError) as e:
        load_catalogue(tmp_path)
    message = str(e.value)
    assert str(tmp_path / data.PRODUCTS_FILE) in message and "does not exist" in message
    assert data.ENV_VAR in message


@pytest.mark.parametrize(
    "name, text, reason",
    [
        (data.PRODUCTS_FILE, '[{"asin": ', "is not valid JSON"),
        (data.PRODUCTS_FILE, '{"asin": "B0"}', "holds a JSON dict, not a list of product records"),
        (data.ATTRIBUTES_FILE, "[]", "holds a JSON list, not an object keyed by asin"),
        (data.ATTRIBUTES_FILE, '{"B0": ["x"]}', "the entry for 'B0' is not an object"),
        (data.HUMAN_FILE, '{"B0": "x"}', "the entry for 'B0' is not a list of objects"),
    ],
)
def test_bad_files_fail_with_path_and_reason(tmp_path, records, attributes, name, text, reason):
    write_folder(tmp_path, records, attributes)
    (tmp_path / name).write_text(text)
    with pytest.raises(WebShopDataError) as e:
        load_catalogue(tmp_path)
    assert str(tmp_path / name) in str(e.value) and reason in str(e.value)


def test_folder_from_argument_or_environment(tmp_path, records, attributes, monkeypatch):
    folder = write_folder(tmp_path / "ws", records, attributes)
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.resolve_data_dir() is None
    assert data.describe_source() == "embedded catalogue (not comparable to the paper)"
    assert data.describe_source(folder) == f"WebShop files from {folder}"
    monkeypatch.setenv(data.ENV_VAR, str(folder))
    assert data.resolve_data_dir() == folder
    cat = load_catalogue()
    assert cat.source == f"WebShop files from {folder}" and len(cat.products) == 18
    assert not cat.has_human_instructions
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(WebShopDataError, match=r"nowhere \(from \$AGENTPRM_WEBSHOP_DATA\) is not a folder"):
        data.resolve_data_dir()


# --- the embedded catalogue -------------------------------------------------------------------------
def test_embedded_catalogue_loads_with_the_same_loader(embedded, records):
    assert embedded.source == data.EMBEDDED_SOURCE and embedded.skipped == {}
    assert len(embedded.products) == 1000
    assert [p["asin"] for p in embedded.products] == list(embedded_attributes())
    generated = embedded_records()
    real_keys = set().union(*records)
    for rec in generated:
        assert set(rec) <= real_keys  # the real record format, nothing invented
        assert isinstance(rec["pricing"], str) and isinstance(rec["small_description"], list)
        assert rec["customization_options"] == "" or isinstance(rec["customization_options"], dict)
    pricings = [r["pricing"] for r in generated]
    assert any(p == "" for p in pricings) and any(p.count("$") == 2 for p in pricings)


def test_embedded_records_are_deterministic():
    first = embedded_records()  # no timing here: speed targets live in benchmarks/
    digest = hashlib.sha256(json.dumps(first, sort_keys=True).encode()).hexdigest()
    assert hashlib.sha256(json.dumps(embedded_records(), sort_keys=True).encode()).hexdigest() == digest
    assert digest == EMBEDDED_DIGEST
    # another process with another hash seed writes the same records (no set or dict-order luck)
    code = (
        "import hashlib, json; from agentprm.envs.webshop.catalogue import embedded_records; "
        "print(hashlib.sha256(json.dumps(embedded_records(), sort_keys=True).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == digest


def test_target_pages_match_their_instructions(embedded, attributes):
    for p in embedded.products:
        entry = attributes[p["asin"]]
        if not entry.get("instruction"):
            continue
        ins = parse_instruction(entry["instruction"], entry["instruction_attributes"])
        assert p["query"] == ins.query
        assert ins.query in p["Title"].lower()  # the kind the instruction names
        for attribute in entry["instruction_attributes"]:
            assert attribute in p["Description"].lower() and attribute in p["BulletPoints"][0]
        assert p["category"] == cat_mod.category_of(ins.query)
        assert p["product_category"].endswith(" › " + cat_mod.display(ins.query))


def test_distractors_join_target_families(embedded, attributes):
    target_queries = {p["query"] for p in embedded.products if p["instruction_text"]}
    distractors = [p for p in embedded.products if not p["instruction_text"]]
    assert len(distractors) == 585
    assert all(p["query"] in target_queries for p in distractors)
    # a family holds several pages: the search has something to choose between
    sizes = {q: sum(p["query"] == q for p in embedded.products) for q in target_queries}
    assert min(sizes.values()) >= 2 and len(target_queries) == 184


def test_generic_text_carries_no_attribute(attributes):
    phrases = {a for e in attributes.values() for a in e["attributes"]}
    for text in (*cat_mod._FILLER, *cat_mod._BULLET_TAILS):
        assert not [a for a in phrases if a in text.lower()], text


def test_parse_instruction_reads_every_real_instruction(attributes):
    parsed = [
        parse_instruction(e["instruction"], e["instruction_attributes"])
        for e in attributes.values()
        if e.get("instruction")
    ]
    assert len(parsed) == 415 and len({p.query for p in parsed}) == 184
    assert parse_instruction(
        "Find me space saving, easy assemble living room sets for dining room",
        ["space saving", "easy assemble", "dining room"],
    ) == ("living room sets", ("space saving", "easy assemble"), (), ("dining room",))
    with pytest.raises(ValueError):
        parse_instruction("Get me shoes", ["x"])


# --- synthetic goals --------------------------------------------------------------------------------
def test_synthetic_goals_on_real_records(real):
    built = goals.synthetic_goals(real.products, real.prices)
    # 7 instructed products: 1 + 1 + 5*8 + 13 + 2 + 5*8 + 2 option combinations
    assert len(built) == 99
    shampoo = built[0]
    assert set(shampoo) == GOAL_KEYS
    # price 34.0 -> caps 40, 50, 60, 70; random.Random(233) samples 60 and 50 -> 60
    assert shampoo["instruction_text"] == (
        "Find me sulfate free, paraben free shampoo & conditioner with hyaluronic acid, coconut oil for "
        "damaged hair, hair growth, hair loss, and price lower than 60.00 dollars"
    )
    assert shampoo["price_upper"] == 60.0 and shampoo["goal_options"] == {} and shampoo["weight"] == 1.0
    assert (
        shampoo["name"] == real.by_asin["B07B6DVG41"]["Title"] and shampoo["query"] == "shampoo & conditioner"
    )
    dress = next(g for g in built if g["asin"] == "B08ZRR3DZT")  # options sorted: color, then size
    assert dress["instruction_text"] == (
        "Find me women's dresses with polyester spandex for daily wear with color: black, and size: x-small, "
        "and price lower than 40.00 dollars"
    )
    assert dress["goal_options"] == {"color": "black", "size": "x-small"}
    # 'polyester spandex' is in 80 goals (two dresses/tops x 40), 'daily wear' in 40
    assert dress["weight"] == pytest.approx((1 / 80 + 1 / 40) / 2)
    lamp = next(g for g in built if g["asin"] == "B09KQQNRRM")
    # 5 attributes in its 2 goals only, 'dining room' also in the 13 dining-set goals
    assert lamp["weight"] == pytest.approx((5 / 2 + 1 / 15) / 6)


def test_price_caps_and_the_draws_they_take():
    def product(asin, price, options=None):
        return {
            "asin": asin, "category": "c", "query": "q", "Title": f"T {asin}", "product_category": "a › b",
            "instruction_text": f"Find me {asin}", "instruction_attributes": ["x"], "options": options or {},
        }  # fmt: skip

    plain = [product("A", 45.0, {"size": ["s", "m"], "color": ["navy"]})]
    prices = {"A": 45.0, "EXPENSIVE": 985.0}
    alone = goals.synthetic_goals(plain, prices)
    # caps 50, 60, 70, 80; random.Random(233) samples the 3rd and 2nd -> upper 70
    assert [g["instruction_text"] for g in alone] == [
        "Find me A with color: navy, and size: s, and price lower than 70.00 dollars",
        "Find me A with color: navy, and size: m, and price lower than 70.00 dollars",
    ]
    assert [g["weight"] for g in alone] == [0.5, 0.5]  # attribute "x" is in 2 goals
    # a product with fewer than 2 caps gets no price text and takes no draw from the seeded stream
    with_expensive = goals.synthetic_goals([product("EXPENSIVE", 985.0), *plain], prices)
    assert with_expensive[0]["instruction_text"] == "Find me EXPENSIVE"
    assert with_expensive[0]["price_upper"] == goals.NO_PRICE_CAP
    assert [g["instruction_text"] for g in with_expensive[1:]] == [g["instruction_text"] for g in alone]


def test_task_order_is_agentgyms_shuffle(real):
    built = goals.synthetic_goals(real.products, real.prices)
    upstream = list(built)
    random.seed(233)  # what AgentGym's SimServer does to its goal list
    random.shuffle(upstream)
    shuffled = goals.task_goals(real)
    assert shuffled == upstream and shuffled != built
    assert shuffled[0]["instruction_text"] == (  # pinned: task 0 of these 18 records
        "Find me space saving, easy assemble living room sets for dining room with color: brown finish+black "
        "cushion, and price lower than 330.00 dollars"
    )


def test_embedded_goals(embedded, embedded_goals):
    assert len(embedded_goals) == cat_mod.EMBEDDED_GOAL_COUNT == 6910
    assert goals.task_goals(embedded) == embedded_goals  # same seed, same list
    for goal in embedded_goals:
        assert set(goal) == GOAL_KEYS
        product = embedded.by_asin[goal["asin"]]
        assert set(goal["goal_options"]) == set(product["options"])
        assert all(v in product["options"][k] for k, v in goal["goal_options"].items())
        options = ", and ".join(f"{k}: {v}" for k, v in sorted(goal["goal_options"].items()))
        assert goal["instruction_text"] == (
            f"{product['instruction_text']}{' with ' + options if options else ''}, and price lower than "
            f"{goal['price_upper']:.2f} dollars"
        )
        price = embedded.prices[goal["asin"]]
        assert price < goal["price_upper"] <= price + 40 and goal["price_upper"] in goals.PRICE_CAPS


def test_goal_for_task(embedded_goals):
    assert goals.goal_for_task(embedded_goals, 6909) is embedded_goals[6909]
    for bad in (6910, -1, "3", True):
        with pytest.raises(IndexError, match="has 6910 goals \\(tasks 0 to 6909\\)"):
            goals.goal_for_task(embedded_goals, bad)


def test_splits_are_agentevals_and_disjoint(embedded_goals):
    n = len(embedded_goals)
    test, train = goals.split("test", n), goals.split("train", n)
    assert len(test) == len(set(goals.AGENTEVAL_TEST_IDS)) == 200
    assert goals.AGENTEVAL_TEST_IDS[0] == 5238  # the example id of AgentGym's README
    assert test[0] == 26 and test[-1] == 6904 and test == sorted(test)
    assert len(train) == 6710 and not set(train) & set(test) and set(train) | set(test) == set(range(n))
    with pytest.raises(ValueError, match="go up to 6904 but these files make 99 goals"):
        goals.split("test", 99)
    with pytest.raises(ValueError, match="choose 'test' or 'train'"):
        goals.split("dev", n)


def test_human_goals_from_the_optional_file(tmp_path, records, attributes):
    human = {
        "B07B6DVG41": [
            {"instruction": "i need a sulfate free shampoo.", "instruction_attributes": ["sulfate free"],
             "instruction_options": ["13.5 fl oz"]},
            {"instruction": "no attributes here", "instruction_attributes": [], "instruction_options": []},
        ]
    }  # fmt: skip
    cat = load_catalogue(write_folder(tmp_path, records, attributes, human))
    assert cat.has_human_instructions
    built = goals.human_goals(cat.products, cat.prices)
    # price 34.0: one goal per cap 40, 50, 60, 70; the instruction without attributes gives none
    assert [g["instruction_text"] for g in built] == [
        f"i need a sulfate free shampoo, and price lower than {cap}.00 dollars" for cap in (40, 50, 60, 70)
    ]
    assert [g["price_upper"] for g in built] == [40.0, 50.0, 60.0, 70.0]
    assert built[0]["goal_options"] == ["13.5 fl oz"] and built[0]["weight"] == 1
    assert sorted(g["price_upper"] for g in goals.task_goals(cat, human=True)) == [40.0, 50.0, 60.0, 70.0]
    with pytest.raises(ValueError, match="items_human_ins.json"):
        goals.task_goals(build_catalogue(records, attributes, source="fixture"), human=True)
