"""WebShop search (agentprm/envs/webshop/search.py): Lucene's analyzer and BM25 (k1 = 0.9, b = 0.4,
Lucene's idf and stored lengths) against numbers worked out from the formula, the 50-hit cap, and
queries that must never raise."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest

from agentprm.envs.webshop import search
from agentprm.envs.webshop.catalogue import embedded_attributes
from agentprm.envs.webshop.data import build_catalogue
from agentprm.envs.webshop.search import (
    _ASCII_TOKEN,
    _UNICODE_TOKEN,
    SEARCH_RETURN_N,
    STOP_WORDS,
    SearchIndex,
    _lucene_porter,
    analyze,
    document_text,
    lucene_length,
    stem,
    tokenize,
)

ATTRIBUTES = Path(search.__file__).parent / "data" / "items_ins_v2_1000.json"  # shipped package data
REAL = Path(__file__).parent / "data" / "webshop_items_real.json"  # 18 real WebShop product records


def _idf(n_docs: int, df: int) -> float:
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


def _tf_part(tf: int, dl: int, avgdl: float, k1: float = 0.9, b: float = 0.4) -> float:
    return tf / (tf + k1 * (1 - b + b * dl / avgdl))


# -- BM25 against hand-computed numbers --------------------------------------------------------------
# Four documents whose analysis is plain (no stemming changes, no stop words):
#   d0 "red shoe"       -> red, shoe          dl 2
#   d1 "red red dress"  -> red, red, dress    dl 3
#   d2 "blue shoe lace" -> blue, shoe, lace   dl 3
#   d3 "green hat"      -> green, hat         dl 2
# N = 4, avgdl = 10 / 4 = 2.5; df(red) = df(shoe) = 2 -> idf = log(1 + 2.5 / 2.5) = log 2.
CORPUS = ["red shoe", "red red dress", "blue shoe lace", "green hat"]


@pytest.fixture(scope="module")
def tiny():
    return SearchIndex(["d0", "d1", "d2", "d3"], CORPUS)


def test_bm25_scores_match_the_formula(tiny):
    ln2 = math.log(2)
    assert _idf(4, 2) == pytest.approx(ln2)
    # d0: red tf 1, shoe tf 1, dl 2: each 1 / (1 + 0.9 * (0.6 + 0.4 * 2 / 2.5)) = 1 / 1.828
    d0 = ln2 * (1 / 1.828) * 2
    # d1: red tf 2, dl 3: 2 / (2 + 0.9 * (0.6 + 0.4 * 3 / 2.5)) = 2 / 2.972
    d1 = ln2 * (2 / 2.972)
    # d2: shoe tf 1, dl 3: 1 / 1.972
    d2 = ln2 * (1 / 1.972)
    assert (d0, d1, d2) == pytest.approx((0.758367, 0.466452, 0.351495), abs=1e-6)
    assert d0 == pytest.approx(2 * _idf(4, 2) * _tf_part(1, 2, 2.5))
    ranked = tiny.ranked("red shoe")
    assert [i for i, _ in ranked] == ["d0", "d1", "d2"]  # d3 holds no query term: no hit
    assert [s for _, s in ranked] == pytest.approx([d0, d1, d2], rel=1e-6)


def test_repeated_query_terms_count_once_per_occurrence(tiny):
    # Anserini boosts a term by its count in the query: "red red shoe" weighs red twice
    # (d0: 3 ln2 / 1.828 = 1.1375 still beats d1: 4 ln2 / 2.972 = 0.9329).
    ln2 = math.log(2)
    expected = {"d0": ln2 * 2 / 1.828 + ln2 / 1.828, "d1": 2 * ln2 * 2 / 2.972, "d2": ln2 / 1.972}
    got = dict(tiny.ranked("red red shoe"))
    assert got == pytest.approx(expected, rel=1e-6)
    assert [i for i, _ in tiny.ranked("red red shoe")] == ["d0", "d1", "d2"]
    # five reds: d1 = 10 ln2 / 2.972 = 2.332 > d0 = 6 ln2 / 1.828 = 2.275
    assert [i for i, _ in tiny.ranked("red red red red red shoe")] == ["d1", "d0", "d2"]


def test_scores_do_not_depend_on_query_word_order(tiny):
    assert tiny.ranked("red shoe lace") == tiny.ranked("lace shoe red") == tiny.ranked("SHOE, red; lace!")


def test_idf_of_a_rare_term_and_stemmed_matching(tiny):
    # "laces" stems to "lace" (df 1): idf = log(1 + 3.5 / 1.5)
    [(doc, score)] = tiny.ranked("Laces")
    assert doc == "d2"
    assert score == pytest.approx(_idf(4, 1) * _tf_part(1, 3, 2.5), rel=1e-6)
    assert _idf(4, 1) == pytest.approx(math.log(1 + 3.5 / 1.5))


def test_empty_documents_are_not_counted_in_n_or_avgdl():
    # Lucene's docCount counts documents holding a term: the all-stop-word document is left out,
    # so N = 2 and avgdl = 2 as if it were not there.
    index = SearchIndex(["a", "empty", "b"], ["navy tee", "the and of", "red tee"])
    [(doc, score)] = index.ranked("navy")
    assert doc == "a"
    assert score == pytest.approx(_idf(2, 1) * _tf_part(1, 2, 2.0), rel=1e-6)


def test_ties_rank_by_document_order():
    texts = ["green hat", "red cap", "green hat", "green hat"]
    index = SearchIndex(["x0", "x1", "x2", "x3"], texts)
    ranked = index.ranked("hat")
    assert [i for i, _ in ranked] == ["x0", "x2", "x3"]
    assert ranked[0][1] == ranked[1][1] == ranked[2][1]


def test_top_50_cap_keeps_the_best_then_the_earliest():
    # 120 documents hold "shoe"; shorter ones score higher. Docs 0..9 are short, the rest long and
    # all equal: the cut must keep the 10 short ones, then the 40 earliest of the tied long ones.
    texts = ["shoe"] * 10 + ["shoe with many other words here"] * 110
    ids = [f"p{i}" for i in range(120)]
    index = SearchIndex(ids, texts)
    hits = index.search("shoe")
    assert len(hits) == SEARCH_RETURN_N == 50
    assert hits == ids[:50]
    assert len(index.search("shoe", k=7)) == 7 and index.search("shoe", k=0) == []
    scores = [s for _, s in index.ranked("shoe")]
    assert scores == sorted(scores, reverse=True)


def test_lucene_length_is_smallfloats_byte4_round_trip():
    # intToByte4 keeps lengths below 24; above, 24 + (n - 24) truncated to 4 significant bits
    assert [lucene_length(n) for n in range(24)] == list(range(24))
    got = [lucene_length(n) for n in (24, 39, 40, 41, 42, 55, 56, 300, 1000)]
    assert got == [24, 39, 40, 40, 42, 54, 56, 280, 984]
    lengths = [lucene_length(n) for n in range(24, 5000)]
    assert lengths == sorted(lengths)
    assert all(m <= n < m + (m - 24) / 8 + 1 for n, m in zip(range(24, 5000), lengths, strict=True))


def test_long_documents_use_lucenes_stored_length():
    # 300 tokens are read back as 280: score = idf * 1 / (1 + 0.9 * (0.6 + 0.4 * 280 / avgdl))
    texts = ["navy " + "word " * 299, "red hat"]  # lengths 300 and 2, avgdl 151
    [(doc, score)] = SearchIndex(["long", "short"], texts).ranked("navy")
    assert doc == "long"
    assert score == pytest.approx(_idf(2, 1) * _tf_part(1, 280, 151.0), rel=1e-6)
    assert score != pytest.approx(_idf(2, 1) * _tf_part(1, 300, 151.0), rel=1e-4)


def test_bigger_random_corpus_agrees_with_a_direct_computation():
    # A plain double-precision BM25 over the analysed tokens, with Lucene's stored lengths, must
    # give the same scores and the same ranking.
    rng = random.Random(0)
    vocab = ["navy", "shirt", "cotton", "blue", "dress", "shoe", "lace", "soft", "women", "men", "kid", "hat"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 150))) for _ in range(200)]
    index = SearchIndex([str(i) for i in range(200)], texts)
    docs = [analyze(t) for t in texts]
    avgdl = sum(map(len, docs)) / len(docs)
    for query in ["navy shirt", "soft cotton women", "hat hat kid", "lace"]:
        terms = analyze(query)
        expected = {}
        for i, doc in enumerate(docs):
            dl = lucene_length(len(doc))
            score = sum(
                _idf(len(docs), sum(t in d for d in docs)) * _tf_part(doc.count(t), dl, avgdl)
                for t in terms
                if t in doc
            )
            if score > 0:
                expected[str(i)] = score
        got = index.ranked(query, k=1000)
        assert dict(got) == pytest.approx(expected, rel=1e-5)
        assert [i for i, _ in got] == sorted(expected, key=lambda i: (-expected[i], int(i)))


# -- analyzer ----------------------------------------------------------------------------------------
def test_stop_words_are_lucenes_33():
    assert len(STOP_WORDS) == 33
    assert analyze(" ".join(sorted(STOP_WORDS))) == []
    assert analyze("the shoes and the socks for a kid") == ["shoe", "sock", "kid"]


def test_possessive_then_stop_words():
    # EnglishPossessiveFilter runs before the stop filter: "it's" -> "it" -> dropped.
    assert analyze("Women's it's KIDS' men\u2019s") == ["women", "kid", "men"]


@pytest.mark.parametrize(
    "word,expected",
    [
        # Porter's published examples (Lucene's PorterStemmer agrees)
        ("caresses", "caress"), ("ponies", "poni"), ("agreed", "agre"), ("hopping", "hop"),
        ("filing", "file"), ("failing", "fail"), ("tanned", "tan"), ("falling", "fall"),
        ("hissing", "hiss"), ("fizzed", "fizz"), ("sized", "size"), ("relational", "relat"),
        ("conditional", "condit"), ("valency", "valenc"), ("digitizer", "digit"),
        ("vietnamization", "vietnam"), ("operator", "oper"), ("feudalism", "feudal"),
        ("decisiveness", "decis"), ("hopefulness", "hope"), ("callousness", "callous"),
        ("formality", "formal"), ("sensitivity", "sensit"), ("triplicate", "triplic"),
        ("formative", "form"), ("electrical", "electr"), ("goodness", "good"), ("revival", "reviv"),
        ("allowance", "allow"), ("airliner", "airlin"), ("adjustable", "adjust"),
        ("replacement", "replac"), ("adoption", "adopt"), ("effective", "effect"), ("probate", "probat"),
        ("controll", "control"), ("roll", "roll"), ("running", "run"), ("shoes", "shoe"),
        # where Lucene's (Porter's reference code) departs from Snowball's "porter"
        ("possibly", "possibl"), ("comfortably", "comfort"), ("assembly", "assembl"),
        ("sensibility", "sensibl"), ("technology", "technolog"), ("apology", "apolog"),
        ("biology", "biologi"), ("trekking", "trek"), ("us", "us"), ("xs", "xs"), ("s", "s"),
    ],
)  # fmt: skip
def test_porter_as_lucene(word, expected):
    assert stem(word) == expected
    assert _lucene_porter(word) == expected


def test_snowball_fast_path_equals_lucenes_porter_on_webshop_words():
    # stem() sends most words to PyStemmer; on every word of the attribute file, with common
    # suffixes added, it must equal the pure-Python Lucene Porter.
    ins = json.loads(ATTRIBUTES.read_text())
    words = set()
    for v in ins.values():
        for text in [v.get("instruction") or "", *v.get("attributes", [])]:
            words.update(re.findall(r"[a-z]+", text.lower()))
    suffixes = [
        "",
        "s",
        "es",
        "ed",
        "ing",
        "ly",
        "y",
        "ies",
        "ness",
        "ation",
        "ful",
        "ble",
        "bly",
        "logy",
        "ment",
    ]
    forms = sorted({w + s for w in words for s in suffixes})
    assert len(forms) > 10_000
    bad = [(w, stem(w), _lucene_porter(w)) for w in forms if stem(w) != _lucene_porter(w)]
    assert not bad, bad[:10]


def test_tokenizer_follows_uax29_words():
    assert tokenize("x-large 3.5mm 1,000.50 don't u.s.a. a_b __ 3d:4 color:red 90's") == [
        "x", "large", "3.5mm", "1,000.50", "don't", "u.s.a", "a_b", "3d", "4", "color:red", "90", "s"
    ]  # fmt: skip
    assert tokenize("caf\u00e9 na\u0131ve \u65e5\u672c\u8a9e \u3072\u3089 \u30ab\u30bf\u30ab\u30ca \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 ok\U0001f600 \u00ae") == [
        "caf\u00e9", "na\u0131ve", "\u65e5", "\u672c", "\u8a9e", "\u3072", "\u3089", "\u30ab\u30bf\u30ab\u30ca",
        "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35", "ok", "\U0001f600", "\u00ae",
    ]  # fmt: skip
    assert tokenize("it\u2019s") == ["it\u2019s"]  # U+2019 joins letters like "'"
    assert [len(t) for t in tokenize("a" * 600)] == [255, 255, 90]  # Lucene splits long tokens


def test_ascii_fast_path_equals_the_unicode_rules():
    rng = random.Random(1)
    alphabet = "ab z09_.,;:'\"-/()[]&$%!? \t\n"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        fast = [t for t in _ASCII_TOKEN.findall(text) if t.strip("_")]
        full = [t for t in _UNICODE_TOKEN.findall(text) if t.strip("_")]
        assert fast == full, text


def test_document_text_is_webshops():
    product = {
        "asin": "B0TEST0001",
        "Title": "Soft TEE",
        "Description": "100% Cotton.",
        "BulletPoints": ["Machine Wash", "second bullet is not indexed"],
        "options": {"color": ["navy", "heather | grey"], "size": ["x-large"]},
    }
    assert document_text(product) == (
        "soft tee 100% cotton. machine wash color: navy, heather | grey, and size: x-large"
    )
    assert document_text({**product, "options": {}, "BulletPoints": []}) == "soft tee 100% cotton.  "
    index = SearchIndex.from_products([product, {**product, "asin": "B0TEST0002", "Title": "Soft Hat"}])
    assert index.search("second bullet") == []
    assert index.search("heather") == ["B0TEST0001", "B0TEST0002"]
    assert index.search("b0test0001") == []  # the asin is not part of the indexed text


def test_real_webshop_records():
    # The 18 real product records of tests/data (WebShop's items_shuffle_1000.json), loaded with
    # WebShop's rules: unicode, long descriptions, empty categories all index and rank sensibly.
    records = json.loads(REAL.read_text())
    products = build_catalogue(records, embedded_attributes(), source="fixture").products
    index = SearchIndex.from_products(products)
    assert [a for a, _ in index.ranked("console table")[:2]] == ["B09DG92LJL", "B06Y3VLDFB"]
    assert index.search("sulfate free shampoo")[0] == "B07B6DVG41"
    assert index.search("high heels pumps")[0] == "B08R3XSC65"
    assert index.search("men's sandal")[0] == "B008QYOGZ2"


# -- queries that must never raise -------------------------------------------------------------------
def _adversarial_queries() -> list[str]:
    rng = random.Random(7)
    queries = [
        "", " ", "\n\t", "the and of a an", "[", "]", "[]", "search[red shoe]", "click[buy now]",
        "((((", "\"unclosed", "AND OR NOT", "red AND (shoe OR", "*:*", "title:shoe^10", "~2",
        "\\", "\x00\x01\x7f", "\ud800", "\U0001f600" * 50, "\u202eevil\u202c", "a\u0301\u0302",
        "1e309", "9" * 5000, "shoe " * 2000, "\u65e5\u672c " * 300,
    ]  # fmt: skip
    chars = [chr(c) for c in range(1, 0x3000)] + ["\U0001f44d\U0001f3fd", "\u200d", "\ufe0f"]
    queries += ["".join(rng.choice(chars) for _ in range(rng.randint(1, 200))) for _ in range(200)]
    queries.append("".join(rng.choice(chars) for _ in range(10_240)))
    return queries


def test_adversarial_queries_never_raise(tiny):
    for query in _adversarial_queries():
        hits = tiny.ranked(query)
        assert len(hits) <= SEARCH_RETURN_N
        assert all(doc in {"d0", "d1", "d2", "d3"} and score > 0 for doc, score in hits)
    assert tiny.search("the and of") == [] and tiny.search("") == []


def test_degenerate_indexes():
    assert SearchIndex([], []).search("shoe") == []
    assert SearchIndex(["a"], ["the of and"]).search("the shoe") == []
    with pytest.raises(ValueError):
        SearchIndex(["a"], [])
