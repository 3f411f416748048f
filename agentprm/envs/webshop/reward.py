"""WebShop's reward for buying `product` with `options` at `price` when the goal was `goal`.

    reward = (matched attributes + matched options + price_ok) / (#attributes + #options + 1) * r_type

as upstream's engine/goal.py get_reward computes it (thefuzz token_set_ratio, its thresholds):
- attribute g matched: token_set_ratio(p, g) > 85 for some p in product["Attributes"], or g is a
  substring of the lower-cased Title, of " ".join(BulletPoints) lower-cased, or of the lower-cased
  Description (g itself is not lower-cased: goal attributes already are);
- goal option matched: some chosen option value has token_set_ratio > 85 with it, both sides first
  through `normalize_color`;
- price_ok: price <= goal["price_upper"];
- r_type (`type_reward`): title_score = |set(nouns(bought name)) & set(nouns(goal name))| /
  len(nouns(goal name)) (repeats count in the denominator; 0.2 when the goal name has no noun);
  r_type = 1, then 0.5 unless query match or category match (>= 2 shared "›" segments) or
  title_score > 0.2, then 0.1 if title_score < 0.1, then 0 if title_score == 0.

Upstream quirks kept, because they change rewards:
- A goal whose goal_options is a dict (AgentGym's synthetic goals) is scored on its (name, value)
  PAIRS (goal.py passes `.items()`): normalize_color tests whether a colour EQUALS the name or the
  value, and the fuzzy match reads the pair as the string "('color', 'navy blue')", so the option
  name's words count. Human goals give a list of values, matched as strings.
- normalize_color returns the first colour of COLOR_SET (alphabetical) contained in the value:
  "navy blue" -> "blue", "dark gray" -> "dark", "fashion" -> "ash".
- title_score divides by the goal's noun count with repeats, so the goal's own name can score
  below 1 ("Intel ... Intel" counts Intel twice).
Where upstream raises, this returns: no goal attributes gives r_att None (upstream divides by
zero); price_upper <= 0 gives r_price None, counted as not ok (upstream adds None to an int).

`get_reward` returns (reward, info) with upstream's verbose reward_info keys: r_type, r_att, w_att,
query_match, category_match, title_score, then r_option, w_option when the goal has options and
r_price, w_price when it has a price cap.

    >>> goal = {"query": "tees", "product_category": "A › B › C", "name": "Cotton Tee Shirt",
    ...         "attributes": ["cotton"], "goal_options": {"color": "navy"}, "price_upper": 20.0}
    >>> product = {"query": "tees", "product_category": "A › B › D", "name": "Navy Cotton Tee",
    ...            "Title": "Navy Cotton Tee", "Attributes": [], "BulletPoints": [], "Description": ""}
    >>> reward, info = get_reward(product, goal, price=15.0, options={"color": "navy"}, nouns=load_nouns("heuristic"))
    >>> reward, info["r_type"], info["title_score"]
    (1.0, 1.0, 0.6666666666666666)
"""

from __future__ import annotations

from collections.abc import Sequence

from thefuzz import fuzz

from agentprm.envs.webshop.nouns import NounExtractor, load_nouns

FUZZ_THRESHOLD = 85  # a match needs token_set_ratio > 85 (goal.py)

# WebShop's engine/normalize.py COLOR_SET, in its order (first contained colour wins).
COLOR_SET = (
    "alabaster apricot aqua ash asphalt azure banana beige black blue blush bordeaux bronze brown "
    "burgundy camel camo caramel champagne charcoal cheetah chestnut chocolate christmas coffee cognac "
    "copper coral cranberry cream crystal dark denim eggplant elephant espresso fuchsia gold granite "
    "grape graphite grass gray green grey heather indigo ivory ivy khaki lavender lemon leopard light "
    "lilac lime magenta maroon mauve merlot midnight mint mocha multicolor mushroom mustard natural navy "
    "nude olive orange peach pewter pink plum purple rainbow red rose royal rust sand sapphire seashell "
    "silver skull slate steel stone stonewash sunflower tan taupe teal tiger turquoise violet walnut "
    "wheat white wine yellow"
).split()

_default_nouns: NounExtractor | None = None


def normalize_color(option):
    """The first COLOR_SET colour `in` the option, else the option unchanged. For a string that is a
    substring test; for a (name, value) pair (a dict goal's option) it is element equality.

    >>> normalize_color("navy blue"), normalize_color("z2-pink"), normalize_color("8")
    ('blue', 'pink', '8')
    >>> normalize_color(("color", "navy")), normalize_color(("color", "navy blue"))
    ('navy', ('color', 'navy blue'))
    """
    for color in COLOR_SET:
        if color in option:
            return color
    return option


def _fuzzy(a, b) -> int:
    # thefuzz reads a non-string as str(x), as upstream's goal options pairs are read
    return fuzz.token_set_ratio(a if isinstance(a, str) else str(a), b if isinstance(b, str) else str(b))


def attribute_reward(product: dict, goal_attributes: Sequence[str]) -> tuple[float | None, int]:
    """(share of goal attributes matched, how many) by the rule of the module docstring.

    >>> p = {"Attributes": ["essential oil"], "Title": "Tea Tree Soap", "BulletPoints": ["vegan"], "Description": ""}
    >>> attribute_reward(p, ["essential oils", "tea tree", "vegan", "natural ingredients"])
    (0.75, 3)
    """
    if not goal_attributes:
        return None, 0
    title = product["Title"].lower()
    bullets = " ".join(product["BulletPoints"]).lower()
    description = product["Description"].lower()
    matched = 0
    for g in goal_attributes:
        if any(_fuzzy(p, g) > FUZZ_THRESHOLD for p in product["Attributes"]):
            matched += 1
        elif g in title or g in bullets or g in description:
            matched += 1
    return matched / len(goal_attributes), matched


def option_reward(chosen: Sequence[str], goal_options: Sequence) -> tuple[float | None, int]:
    """(share of goal options matched by a chosen value, how many); None when there are no goal
    options. `goal_options` holds strings, or (name, value) pairs for a dict goal.

    >>> option_reward(["8", "z2-pink"], ["pink", "8"])
    (1.0, 2)
    >>> option_reward(["xl"], [("size", "XL"), ("color", "grey")])
    (0.5, 1)
    """
    chosen = [normalize_color(o) for o in chosen]
    wanted = [normalize_color(o) for o in goal_options]
    matched = sum(any(_fuzzy(c, w) > FUZZ_THRESHOLD for c in chosen) for w in wanted)
    return (matched / len(wanted) if wanted else None), matched


def title_score(purchased_nouns: Sequence[str], desired_nouns: Sequence[str]) -> float:
    """|set(purchased) & set(desired)| / len(desired) (repeats counted), 0.2 without desired nouns.

    >>> title_score(["sofa", "couch"], ["sofa", "bed", "sofa"]), title_score(["x"], [])
    (0.3333333333333333, 0.2)
    """
    if not desired_nouns:
        return 0.2
    return len(set(purchased_nouns) & set(desired_nouns)) / len(desired_nouns)


def r_type_from(title_score: float, match: bool) -> float:
    """Upstream's thresholds: 1; 0.5 unless `match` (query or category) or title_score > 0.2; 0.1 if
    title_score < 0.1; 0 if title_score == 0.

    >>> [r_type_from(s, False) for s in (0.0, 0.05, 0.1, 0.2, 0.21)], r_type_from(0.15, True)
    ([0.0, 0.1, 0.5, 0.5, 1.0], 1.0)
    """
    r_type = 1.0
    if not (match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type


def category_match(a: str, b: str) -> bool:
    """At least 2 distinct "›"-separated segments (stripped) shared, in any order.

    >>> category_match("a › b › c", "c › x › a"), category_match("a › a › d", "a › b › c")
    (True, False)
    """
    return len({x.strip() for x in a.split("›")} & {x.strip() for x in b.split("›")}) >= 2


def type_reward(product: dict, goal: dict, nouns: NounExtractor) -> dict:
    """r_type, query_match, category_match, title_score for `product` against `goal` (both need
    query, product_category and name)."""
    query_match = product["query"] == goal["query"]
    cat_match = category_match(product["product_category"], goal["product_category"])
    score = title_score(nouns(product["name"]), nouns(goal["name"]))
    return {
        "r_type": r_type_from(score, query_match or cat_match),
        "query_match": query_match,
        "category_match": cat_match,
        "title_score": score,
    }


def default_nouns() -> NounExtractor:
    """load_nouns("auto"), loaded once per process."""
    global _default_nouns
    if _default_nouns is None:
        _default_nouns = load_nouns("auto")
    return _default_nouns


def get_reward(
    product: dict, goal: dict, price: float, options: dict, nouns: NounExtractor | None = None
) -> tuple[float, dict]:
    """WebShop's reward and reward_info (module docstring) for buying `product` (a load_products
    dict) with `options` ({option name: chosen value}) at `price`, for `goal` (a goal.py dict:
    attributes, goal_options (dict or list), price_upper, query, product_category, name).
    `nouns` defaults to `default_nouns()`."""
    type_info = type_reward(product, goal, nouns if nouns is not None else default_nouns())
    r_price = (price <= goal["price_upper"]) if goal["price_upper"] > 0 else None
    r_att, n_att = attribute_reward(product, goal["attributes"])
    goal_options = goal["goal_options"]
    wanted = list(goal_options.items()) if isinstance(goal_options, dict) else list(goal_options)
    r_option, n_option = option_reward(list(options.values()), wanted)
    denominator = len(goal["attributes"]) + len(goal_options) + 1
    reward = (n_att + n_option + bool(r_price)) / denominator * type_info["r_type"]
    info = {
        "r_type": type_info["r_type"],
        "r_att": r_att,
        "w_att": len(goal["attributes"]) / denominator,
        "query_match": type_info["query_match"],
        "category_match": type_info["category_match"],
        "title_score": type_info["title_score"],
    }
    if r_option is not None:
        info["r_option"] = r_option
        info["w_option"] = len(goal_options) / denominator
    if r_price is not None:
        info["r_price"] = r_price
        info["w_price"] = 1 / denominator
    return reward, info
