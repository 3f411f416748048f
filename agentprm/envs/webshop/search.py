"""WebShop's product search: BM25 at Lucene's settings over the text WebShop indexes, top 50 hits.

What upstream does (AgentGym's agentenv-webshop/webshop, pyserini 0.17 = Anserini on Lucene 8):
- Document text (search_engine/convert_product_file_format.py): for each product of load_products,
  lower(" ".join([Title, Description, BulletPoints[0], option_text])) where option_text is
  ", and ".join(f"{name}: {', '.join(values)}") over the options (`document_text`). The asin is the
  document id, not part of the text: a search for an asin finds nothing unless the asin is written
  in the page's text. Reviews, other bullet points, attributes, category and price are not indexed.
- Index (search_engine/run_indexing.sh): `python -m pyserini.index.lucene --collection
  JsonCollection --generator DefaultLuceneDocumentGenerator --threads 1 --storePositions
  --storeDocvectors --storeRaw`, no --stemmer / --language / --keepStopwords, so Anserini's
  DefaultEnglishAnalyzer: StandardTokenizer (UAX#29 words) -> EnglishPossessiveFilter (drops a
  trailing 's) -> LowerCaseFilter -> StopFilter(EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, 33 words)
  -> PorterStemFilter (`analyze`). One thread: document ids follow the product order.
- Search (engine.get_top_n_product_from_keywords): LuceneSearcher(index).search(keywords, k=50) with
  Anserini's defaults, BM25 k1 = 0.9, b = 0.4, and its BagOfWordsQueryGenerator: the query goes
  through the same analyzer (no query syntax: brackets, quotes, "AND" are plain text) and each
  distinct term is a SHOULD clause boosted by how often it occurs in the query. Only documents that
  contain a query term are hits; equal scores are ordered by document id (the product order).
  Hits whose asin is not among the loaded products are dropped.
- Special searches, handled before the search engine (session.py keeps them): a first keyword
  "<r>" gives 50 random products (upstream unseeded), "<a> attr" / "<c> category" / "<q> query"
  every product with that attribute / category / query in catalogue order ("<a>" crashes
  upstream's text env, which passes no attribute map). Nothing treats an asin specially.

Score (Lucene 8 BM25Similarity, no (k1 + 1) factor), computed here with Lucene's own arithmetic:
    score(q, d) = sum over distinct terms t of q:  w_t - w_t / (1 + tf * normInverse(d))
    w_t = count(t, q) * idf(t),  idf(t) = log(1 + (N - df + 0.5) / (df + 0.5))
    normInverse(d) = 1 / (k1 * (1 - b + b * L(d) / avgdl))
which is count * idf * tf / (tf + k1 * (1 - b + b * L / avgdl)); N is the number of documents
holding a term, avgdl their mean analysed length, and L(d) the length as Lucene stores it, in one
byte (`lucene_length`: exact below 24 tokens, then 4 significant bits, so 300 reads as 280). Per
term scores are float32 (Java float), their sum is taken in double and rounded to float, as
Lucene's disjunction scorers do, so equal scores come out equal and ties order as Lucene orders
them. (bm25s computes the same formula but with exact lengths; on the embedded catalogue that
reorders the top 10 of one query in three, near-duplicate pages being common.)

The analyser reproduces Lucene's without Java: the tokenizer follows UAX#29's word rules (letters
and digits joined by "_", letters joined by ' . : (as "don't", "u.s.a"), digits joined by , . ; '
(as "1,000.5"), ideographs and hiragana one character each, runs of Thai/Lao/Khmer/Myanmar, emoji)
with tokens longer than 255 characters split, as Lucene does. Not reproduced: the Hebrew quote rules
(WB7a-c), keycap and tag emoji sequences, and Unicode-version drift (the `regex` module's tables,
where Lucene 8 has Unicode 9). Stemming is Porter's algorithm as
Lucene's PorterStemmer implements it (Porter's reference code: words of 1-2 letters unchanged,
"bli" -> "ble", "logi" -> "log", any double consonant but l/s/z undoubled before -ed/-ing).
PyStemmer's "porter" (Snowball) stems every other word the same way and does the bulk of the work;
the few words where Snowball's published-algorithm version can differ go through `_lucene_porter`.

    >>> analyze("The Women's running-shoes, size 7.5 (x-large)")
    ['women', 'run', 'shoe', 'size', '7.5', 'x', 'larg']
    >>> index = SearchIndex(["a1", "a2"], ["red running shoes", "blue shirt for running"])
    >>> index.search("running shoes")
    ['a1', 'a2']
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import regex
import Stemmer

K1, B = 0.9, 0.4  # Anserini's BM25 defaults, which pyserini's LuceneSearcher uses
SEARCH_RETURN_N = 50  # WebShop's engine.SEARCH_RETURN_N
MAX_TOKEN_LENGTH = 255  # Lucene's StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (the classic 33 words).
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)

# -- tokenizer (Lucene's StandardTokenizer) ----------------------------------------------------------
# ASCII text (most product text) takes a plain `re` pattern; anything else takes the UAX#29 classes.
_ASCII_TOKEN = re.compile(
    r"[A-Za-z0-9_]+(?:(?:(?<=[A-Za-z])[:.'](?=[A-Za-z])|(?<=[0-9])[,;.'](?=[0-9]))[A-Za-z0-9_]+)*"
)
_AL = r"\p{WB=ALetter}\p{WB=Hebrew_Letter}"
_NU = r"\p{WB=Numeric}"
_EXT = r"[\p{WB=Extend}\p{WB=Format}\p{WB=ZWJ}]*"  # combining marks ride on the character before
_UNIT = rf"[{_AL}{_NU}\p{{WB=ExtendNumLet}}]{_EXT}"
_JOIN = (
    rf"(?:(?<=[{_AL}]{_EXT})[\p{{WB=MidLetter}}\p{{WB=MidNumLet}}\p{{WB=Single_Quote}}]{_EXT}(?=[{_AL}])"
    rf"|(?<=[{_NU}]{_EXT})[\p{{WB=MidNum}}\p{{WB=MidNumLet}}\p{{WB=Single_Quote}}]{_EXT}(?=[{_NU}]))"
)
_EMOJI = r"\p{Extended_Pictographic}[\p{EMod}\uFE0F]*(?:\u200D\p{Extended_Pictographic}[\p{EMod}\uFE0F]*)*"
_UNICODE_TOKEN = regex.compile(
    rf"{_EMOJI}|\p{{RI}}{{2}}"  # emoji and flags: one token each
    rf"|[\p{{Script=Han}}\p{{Script=Hiragana}}]{_EXT}"  # one character per token
    rf"|(?:\p{{lb=SA}}{_EXT})+"  # Thai, Lao, Khmer, Myanmar: a run is one token
    rf"|(?:\p{{WB=Katakana}}{_EXT})+"
    rf"|(?:{_UNIT})+(?:{_JOIN}(?:{_UNIT})+)*"
)
_HAS_WORD = regex.compile(r"[^\p{WB=ExtendNumLet}]")  # a run of "_" alone is no token


def tokenize(text: str) -> list[str]:
    """Lucene's StandardTokenizer on `text` (case kept): the UAX#29 words, longer ones cut in 255s.

    >>> tokenize("Don't 1,000.50 x-large u.s.a. a_b __ 3d:4 日本 ok😀™")
    ["Don't", '1,000.50', 'x', 'large', 'u.s.a', 'a_b', '3d', '4', '日', '本', 'ok', '😀', '™']
    """
    if text.isascii():
        tokens = [t for t in _ASCII_TOKEN.findall(text) if t.strip("_")]
    else:
        tokens = [t for t in _UNICODE_TOKEN.findall(text) if _HAS_WORD.search(t)]
    if max(map(len, tokens), default=0) > MAX_TOKEN_LENGTH:
        tokens = [t[i : i + MAX_TOKEN_LENGTH] for t in tokens for i in range(0, len(t), MAX_TOKEN_LENGTH)]
    return tokens


# -- stemmer (Lucene's PorterStemmer) --------------------------------------------------------------
_snowball = Stemmer.Stemmer("porter")
# Words where Snowball's Porter can differ from Lucene's: a stem ending in bli/logi after step 1, or
# a doubled c h j k q v w x y before -ed/-ing (Snowball undoubles only bb dd ff gg mm nn pp rr tt).
# Checked: stem() == _lucene_porter() == NLTK's PorterStemmer(MARTIN_EXTENSIONS) on 405,439 forms
# (WebShop's instruction words with 57 suffixes).
_RISKY = re.compile(r"(?:bl|log)[iy][a-z]{0,4}$|([chjkqvwxy])\1(?:ed|ing)s?$")


def stem(word: str) -> str:
    """Lucene's PorterStemFilter on one lower-case token.

    >>> [stem(w) for w in ["running", "shoes", "possibly", "technology", "trekking", "us", "xs"]]
    ['run', 'shoe', 'possibl', 'technolog', 'trek', 'us', 'xs']
    """
    if len(word) <= 2:
        return word
    if _RISKY.search(word):
        return _lucene_porter(word)
    return _snowball.stemWord(word)


def _cons(w: str, i: int) -> bool:
    c = w[i]
    if c in "aeiou":
        return False
    if c == "y":
        return i == 0 or not _cons(w, i - 1)
    return True


def _measure(w: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in w."""
    n, i, size = 0, 0, len(w)
    while i < size and _cons(w, i):
        i += 1
    while i < size:
        while i < size and not _cons(w, i):
            i += 1
        if i >= size:
            break
        n += 1
        while i < size and _cons(w, i):
            i += 1
    return n


def _vowel_in(w: str) -> bool:
    return any(not _cons(w, i) for i in range(len(w)))


def _double_cons(w: str) -> bool:
    return len(w) >= 2 and w[-1] == w[-2] and _cons(w, len(w) - 1)


def _cvc(w: str) -> bool:
    i = len(w) - 1
    return i >= 2 and _cons(w, i) and not _cons(w, i - 1) and _cons(w, i - 2) and w[i] not in "wxy"


# Lucene's step3/4/5 tables: the first suffix that matches decides, applied or not.
_STEP3 = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
    "g": (("logi", "log"),),
}
_STEP4 = {
    "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
    "i": (("iciti", "ic"),),
    "l": (("ical", "ic"), ("ful", "")),
    "s": (("ness", ""),),
}
_STEP5 = {
    "a": ("al",),
    "c": ("ance", "ence"),
    "e": ("er",),
    "i": ("ic",),
    "l": ("able", "ible"),
    "n": ("ant", "ement", "ment", "ent"),
    "o": ("ion", "ou"),
    "s": ("ism",),
    "t": ("ate", "iti"),
    "u": ("ous",),
    "v": ("ive",),
    "z": ("ize",),
}


def _replace(w: str, rules: tuple) -> str:
    for suffix, repl in rules:
        if w.endswith(suffix):
            s = w[: -len(suffix)]
            return s + repl if _measure(s) > 0 else w
    return w


def _lucene_porter(w: str) -> str:
    """Porter's reference algorithm as org.apache.lucene.analysis.en.PorterStemmer runs it."""
    if len(w) <= 2:
        return w
    # step 1: plurals, -eed, -ed, -ing
    if w.endswith("s"):
        if w.endswith("sses") or w.endswith("ies"):
            w = w[:-2]
        elif w[-2] != "s":
            w = w[:-1]
    if w.endswith("eed"):
        if _measure(w[:-3]) > 0:
            w = w[:-1]
    else:
        for suffix in ("ed", "ing"):
            if w.endswith(suffix) and _vowel_in(w[: -len(suffix)]):
                w = w[: -len(suffix)]
                if w.endswith(("at", "bl", "iz")):
                    w += "e"
                elif _double_cons(w):
                    if w[-1] not in "lsz":
                        w = w[:-1]
                elif _measure(w) == 1 and _cvc(w):
                    w += "e"
                break
    # step 2: y -> i
    if w.endswith("y") and _vowel_in(w[:-1]):
        w = w[:-1] + "i"
    # steps 3 and 4: double suffixes, -ic-, -full, -ness
    if len(w) > 1:
        w = _replace(w, _STEP3.get(w[-2], ()))
    w = _replace(w, _STEP4.get(w[-1], ()))
    # step 5: -ant, -ence, ... when m > 1
    if len(w) > 1:
        for suffix in _STEP5.get(w[-2], ()):
            if w.endswith(suffix):
                s = w[: -len(suffix)]
                if suffix == "ion" and not (s and s[-1] in "st"):
                    break
                if _measure(s) > 1:
                    w = s
                break
    # step 6: final -e, -ll
    if w.endswith("e"):
        a = _measure(w)
        if a > 1 or (a == 1 and not _cvc(w[:-1])):
            w = w[:-1]
    if w.endswith("l") and _double_cons(w) and _measure(w) > 1:
        w = w[:-1]
    return w


# -- analyzer ----------------------------------------------------------------------------------------
_POSSESSIVE = ("'s", "\u2019s", "\uff07s")  # EnglishPossessiveFilter's apostrophes


def analyze(text: str) -> list[str]:
    """Anserini's DefaultEnglishAnalyzer: tokenize, drop a trailing 's, lower-case, drop stop words,
    Porter-stem. Text is lower-cased first with Python's str.lower, as WebShop lower-cases both the
    indexed text and the agent's search keywords.

    >>> analyze("It's the KIDS' toys: 2-pack & more")
    ['kid', 'toi', '2', 'pack', 'more']
    """
    return [t for t in map(_term, tokenize(text.lower())) if t is not None]


@functools.lru_cache(maxsize=1 << 17)  # a catalogue has a few ten thousand distinct tokens
def _term(token: str) -> str | None:
    if token.endswith(_POSSESSIVE):
        token = token[:-2]
    return stem(token) if token and token not in STOP_WORDS else None


def document_text(product: dict) -> str:
    """The text WebShop indexes for one product (convert_product_file_format.py).

    `product` is a load_products dict; it needs Title, Description, BulletPoints (list) and options
    ({name: [values]}). Upstream indexes BulletPoints[0] and fails on an empty list; here an empty
    list counts as "".

    >>> document_text({"Title": "Tee", "Description": "Soft.", "BulletPoints": ["Cotton", "x"],
    ...                "options": {"color": ["navy", "red"], "size": ["m"]}})
    'tee soft. cotton color: navy, red, and size: m'
    """
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
    bullets = product["BulletPoints"]
    return " ".join(
        [product["Title"], product["Description"], bullets[0] if bullets else "", option_text]
    ).lower()


def lucene_length(n: int) -> int:
    """The document length Lucene's BM25 reads back from its one-byte norm: SmallFloat.byte4ToInt(
    intToByte4(n)), i.e. exact below 24, then 24 + (n - 24) cut to its 4 leading bits.

    >>> [lucene_length(n) for n in (3, 23, 24, 39, 40, 41, 300)]
    [3, 23, 24, 39, 40, 40, 280]
    """
    if n < 24:
        return n
    shift = max((n - 24).bit_length() - 4, 0)
    return 24 + ((n - 24) >> shift << shift)


class SearchIndex:
    """BM25 over documents with Lucene's arithmetic (module docstring), built once, read-only.

    `ids[i]` names document `texts[i]`; ties rank by position in `ids` (Lucene's document order).
    Postings are stored per term (a CSC matrix, as bm25s stores its scores) with tf * normInverse
    precomputed in float32, so a query costs one vector operation per distinct query term.

        >>> index = SearchIndex(["p1", "p2", "p3"], ["navy tee", "navy navy dress", "red hat"])
        >>> [(i, round(s, 4)) for i, s in index.ranked("navy")]
        [('p2', 0.313), ('p1', 0.2543)]
        >>> index.ranked("the of and"), index.ranked("")
        ([], [])
    """

    def __init__(self, ids: Sequence[str], texts: Sequence[str]):
        if len(ids) != len(texts):
            raise ValueError(f"SearchIndex: {len(ids)} ids for {len(texts)} texts")
        self.ids = list(ids)
        self.vocab: dict[str, int] = {}
        corpus = [[self.vocab.setdefault(t, len(self.vocab)) for t in analyze(text)] for text in texts]
        lengths = np.array([len(doc) for doc in corpus], dtype=np.int64)
        # Lucene's collection statistics count only documents holding a term (docCount).
        n_docs, total = int(np.count_nonzero(lengths)), int(lengths.sum())
        # postings: (term, doc) pairs sorted by term then doc, with their term frequencies
        term_of = np.fromiter((t for doc in corpus for t in doc), dtype=np.int64, count=total)
        doc_of = np.repeat(np.arange(len(corpus), dtype=np.int64), lengths)
        keys, tf = np.unique(term_of * max(len(corpus), 1) + doc_of, return_counts=True)
        self._docs = keys % max(len(corpus), 1)  # doc positions, ascending within each term
        df = np.bincount(keys // max(len(corpus), 1), minlength=len(self.vocab))
        self._indptr = np.concatenate([[0], np.cumsum(df)])
        # Lucene's float arithmetic: idf in double cast to float, avgdl likewise, then
        # normInverse = 1 / (k1 * ((1 - b) + b * length / avgdl)) in float on the decoded length.
        self._idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        avgdl = np.float32(total / n_docs) if n_docs else np.float32(1)
        decoded = np.array([lucene_length(int(n)) for n in lengths], dtype=np.float32)
        k1, b, one = np.float32(K1), np.float32(B), np.float32(1)
        norm_inverse = one / (k1 * ((one - b) + b * decoded / avgdl))
        self._freq_norm = tf.astype(np.float32) * norm_inverse[self._docs]  # freq * normInverse

    @classmethod
    def from_products(cls, products: Sequence[dict]) -> SearchIndex:
        """The index WebShop builds over load_products' list: ids are asins, texts `document_text`."""
        return cls([p["asin"] for p in products], [document_text(p) for p in products])

    def ranked(self, query: str, k: int = SEARCH_RETURN_N) -> list[tuple[str, float]]:
        """The top-k (id, score), best first, ties by document order; only documents holding a
        query term. Any text is a valid query (an empty or all-stop-word one finds nothing)."""
        # A term repeated in the query is one clause boosted by its count (Anserini's bag of words).
        counts: dict[int, int] = {}
        for t in analyze(query):
            if t in self.vocab:
                counts[self.vocab[t]] = counts.get(self.vocab[t], 0) + 1
        if not counts or k <= 0:
            return []
        total = np.zeros(len(self.ids), dtype=np.float64)  # Lucene sums clause scores in double
        for term in sorted(counts):
            lo, hi = self._indptr[term], self._indptr[term + 1]
            weight = np.float32(counts[term]) * self._idf[term]  # boost * idf, in float
            total[self._docs[lo:hi]] += weight - weight / (np.float32(1) + self._freq_norm[lo:hi])
        scores = total.astype(np.float32)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:  # keep every doc tied with the k-th score, then cut by (score, doc order)
            kth = np.partition(scores[hits], len(hits) - k)[len(hits) - k]
            hits = hits[scores[hits] >= kth]
        order = hits[np.lexsort((hits, -scores[hits]))][:k]
        return [(self.ids[i], float(scores[i])) for i in order]

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        """The ids of `ranked(query, k)`: what session.Shop.search expects (query -> asins)."""
        return [i for i, _ in self.ranked(query, k)]
