"""WebShop goals as AgentGym's server builds them: task index i -> goals[i].

Synthetic goals (AgentGym's setting; its server makes WebAgentTextEnv(observation_mode="text",
num_products=1000) with human_goals unset, so goal.get_synthetic_goals): for each product with an
instruction, in product order, with one random.Random(233) for all products (upstream calls
random.seed(233) at the top of get_synthetic_goals):
  - caps = the first 4 of 10, 20, ..., 990 above the product's price; with 2 or more, the upper of
    sorted(rng.sample(caps, 2)) is price_upper and ", and price lower than {price_upper:.2f}
    dollars" ends the text; otherwise price_upper = 1000000, no price text and no draw;
  - one goal per combination of option values (names sorted, values in page order):
    "<instruction> with color: navy, and size: x-large, and price lower than 50.00 dollars";
    a product without options gives one goal without " with ...";
  - fields asin, category, query, name (the product's Title), product_category, instruction_text,
    attributes (the instruction attributes), price_upper, goal_options {name: value}, weight =
    mean over the goal's attributes of 1 / (number of goals with that attribute).
Then the whole list is shuffled with random.Random(233) (web_agent_text_env.SimServer: "HBY: Fix
outcome for random shuffling of goals"), and AgentGym's reset(session_id=i) plays goals[i]
(SimServer.receive: self.goals[session_int]). The price draw behind ranged products is seeded here
and unseeded upstream (data.py), so upstream's caps, and nothing else, can differ from these.
On the embedded catalogue the list has 6910 goals; its goals are not upstream's (catalogue.py).

Human goals (optional, items_human_ins.json; AgentGym's goal.get_human_goals, not WebShop's): for
each instruction with attributes, one goal per price cap among the first 4 above the price (4
identical goals without price text when fewer than 2 caps exist); goal_options is the instruction's
option list, weight 1; shuffled the same way.

Splits (`split`), pinned:
  test = AgentGym's AgentEval WebShop test ids: 200 indices (AGENTEVAL_TEST_IDS, AgentEval's file
         order; `split` returns them sorted). Source: AgentGym-RL's AgentItemId/eval/webshop_test.json
         (github.com/WooooDyy/AgentGym-RL, commit e182a6b1, the AgentEval release; its TextCraft
         file there holds exactly the AgentEval TextCraft ids envs/splits.py pins, and AgentGym's
         README shows the first entry, "webshop_5238"). Its ids run from 26 to 6904.
  train = every other index below the number of goals (6710 on 6910 goals). AgentGym's own
         training ids (AgentTraj-L, 3930 ids up to 6909) are a subset of this and disjoint from test.
AgentGym's evaluation tutorial evaluates idxs=range(200) instead; that is not AgentEval's test set.

    >>> from agentprm.envs.webshop import catalogue, data
    >>> goals = task_goals(data.build_catalogue(catalogue.embedded_records(), catalogue.embedded_attributes()))
    >>> len(goals), len(split("test", len(goals))), len(split("train", len(goals)))
    (6910, 200, 6710)
"""

from __future__ import annotations

import itertools
import random
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

GOAL_SEED = 233  # AgentGym's seed, for the price-cap draw and for the shuffle
PRICE_CAPS = tuple(10.0 * i for i in range(1, 100))  # goal.PRICE_RANGE: 10, 20, ..., 990
NO_PRICE_CAP = 1000000  # price_upper of a goal without a price condition

# AgentEval's WebShop test ids, in its file's order (see the module docstring for the source).
AGENTEVAL_TEST_IDS = (
    5238, 912, 204, 6074, 2253, 2006, 1828, 1143, 6033, 839, 5543, 6067, 4467, 712, 4837, 3456,
    260, 244, 767, 1791, 1905, 4139, 4931, 217, 4597, 1628, 5865, 5323, 5745, 4464, 3436, 1805,
    3679, 4827, 2278, 6630, 53, 6216, 6601, 1307, 5719, 3462, 2787, 2276, 1273, 1763, 6254, 2757,
    837, 759, 3112, 792, 2940, 2817, 4945, 2166, 6611, 355, 5977, 3763, 4392, 1022, 3100, 645,
    4522, 2401, 6794, 5149, 5066, 2962, 4729, 1575, 5771, 569, 375, 5417, 1866, 6332, 2370, 653,
    1907, 827, 3113, 2277, 3714, 5207, 6833, 2988, 1332, 3032, 2910, 1716, 5490, 2187, 5749, 5599,
    5308, 584, 4990, 5201, 1401, 4375, 5973, 2005, 1338, 3786, 3108, 2211, 5242, 5637, 4562, 1799,
    5608, 2656, 6904, 6294, 6356, 458, 1876, 6732, 262, 6594, 2584, 3286, 2193, 542, 1728, 4646,
    5881, 2577, 1741, 5369, 4089, 3241, 5266, 3758, 1170, 2169, 2020, 6102, 4598, 4415, 2152, 6119,
    4788, 3509, 4780, 3271, 2965, 1796, 1133, 4174, 4042, 744, 6191, 385, 898, 1252, 5140, 1310,
    6488, 5574, 3458, 4885, 520, 3152, 3126, 4881, 3834, 4334, 2059, 4532, 94, 5572, 5904, 938,
    5584, 4398, 6151, 2185, 6296, 5250, 2786, 913, 2404, 3561, 1295, 3716, 26, 5915, 5895, 2157,
    4100, 6241, 1463, 4158, 871, 5122, 2444, 6894,
)  # fmt: skip


def price_caps(price: float) -> list[float]:
    """The caps a goal may get: the first 4 of 10, 20, ..., 990 strictly above the price.

    >>> price_caps(19.99), price_caps(985.0), price_caps(1200.0)
    ([20.0, 30.0, 40.0, 50.0], [990.0], [])
    """
    return [cap for cap in PRICE_CAPS if cap > price][:4]


def synthetic_goals(
    products: Sequence[Mapping], prices: Mapping[str, float], seed: int = GOAL_SEED
) -> list[dict]:
    """AgentGym's get_synthetic_goals, in product order (not yet shuffled; see `task_goals`).

    A product with an instruction but no instruction attributes (upstream: AssertionError) is
    skipped with a warning.
    """
    rng = random.Random(seed)
    goals, skipped = [], 0
    for product in products:
        if product.get("instruction_text") is None:
            continue
        attributes = product["instruction_attributes"]
        if not attributes:
            skipped += 1
            continue
        caps = price_caps(prices[product["asin"]])
        if len(caps) >= 2:
            price_upper = sorted(rng.sample(caps, 2))[1]
            price_text = f", and price lower than {price_upper:.2f} dollars"
        else:
            price_upper, price_text = NO_PRICE_CAP, ""
        names = sorted(product["options"])
        for combination in itertools.product(*(product["options"][n] for n in names)):
            goal_options = dict(zip(names, combination, strict=True))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            option_text = f" with {option_text}" if option_text else ""
            goals.append(
                {
                    "asin": product["asin"],
                    "category": product["category"],
                    "query": product["query"],
                    "name": product["Title"],
                    "product_category": product["product_category"],
                    "instruction_text": f"{product['instruction_text']}{option_text}{price_text}",
                    "attributes": attributes,
                    "price_upper": price_upper,
                    "goal_options": goal_options,
                }
            )
    if skipped:
        warnings.warn(
            f"{skipped} products have an instruction but no instruction attributes; no goals for them",
            stacklevel=2,
        )
    _weigh(goals)
    return goals


def _weigh(goals: list[dict]) -> None:
    """weight = mean over the goal's attributes of 1 / (number of goals that have the attribute)."""
    count = Counter(a for goal in goals for a in goal["attributes"])
    for goal in goals:
        goal["weight"] = sum(1.0 / count[a] for a in goal["attributes"]) / len(goal["attributes"])


def human_goals(products: Sequence[Mapping], prices: Mapping[str, float]) -> list[dict]:
    """AgentGym's get_human_goals over products carrying `instructions` (items_human_ins.json)."""
    goals = []
    for product in products:
        for ins in product.get("instructions", ()):
            attributes = ins.get("instruction_attributes") or []
            if not attributes:
                continue  # upstream counts these as skipped
            caps = price_caps(prices[product["asin"]])
            for i in range(4):
                if len(caps) >= 2:
                    if i >= len(caps):
                        continue
                    price_upper, price_text = caps[i], f", and price lower than {caps[i]:.2f} dollars"
                else:
                    price_upper, price_text = NO_PRICE_CAP, ""
                goals.append(
                    {
                        "asin": product["asin"],
                        "category": product["category"],
                        "query": product["query"],
                        "name": product["name"],
                        "product_category": product["product_category"],
                        "instruction_text": ins["instruction"].strip(".") + price_text,
                        "attributes": attributes,
                        "price_upper": price_upper,
                        "goal_options": ins.get("instruction_options", []),
                        "weight": 1,
                    }
                )
    return goals


def shuffle_goals(goals: Sequence[dict], seed: int = GOAL_SEED) -> list[dict]:
    """A copy of the list in the order AgentGym's server uses (random.seed(233); shuffle).

    >>> shuffle_goals(list(range(5)))
    [2, 0, 3, 4, 1]
    """
    shuffled = list(goals)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def task_goals(catalogue, human: bool = False) -> list[dict]:
    """The task list: task i plays goal i (AgentGym's order). `catalogue` is a data.Catalogue;
    human=True uses its human instructions (ValueError when none were loaded)."""
    if human:
        if not catalogue.has_human_instructions:
            raise ValueError(
                f"human goals need WebShop's items_human_ins.json next to the product files; "
                f"{catalogue.source} has none. Use synthetic goals (human=False) or add the file."
            )
        return shuffle_goals(human_goals(catalogue.products, catalogue.prices))
    return shuffle_goals(synthetic_goals(catalogue.products, catalogue.prices))


def goal_for_task(goals: Sequence[dict], task: int) -> dict:
    """goals[task], with an error that says the valid range (no negative indices).

    >>> goal_for_task([{"asin": "A"}], 1)
    Traceback (most recent call last):
    ...
    IndexError: WebShop task 1 does not exist: this catalogue has 1 goals (tasks 0 to 0)
    """
    if not isinstance(task, int) or isinstance(task, bool) or not 0 <= task < len(goals):
        raise IndexError(
            f"WebShop task {task!r} does not exist: this catalogue has {len(goals)} goals "
            f"(tasks 0 to {len(goals) - 1})"
        )
    return goals[task]


def split(name: str, num_goals: int) -> list[int]:
    """Task indices of a pinned split ("test" or "train", see the module docstring), sorted.

    ValueError for another name, or when the goals are too few for AgentEval's test ids.

    >>> split("test", 6910)[:3], len(split("train", 6910))
    ([26, 53, 94], 6710)
    """
    test = sorted(AGENTEVAL_TEST_IDS)
    if test[-1] >= num_goals:
        raise ValueError(
            f"AgentEval's WebShop test ids go up to {test[-1]} but these files make {num_goals} goals; "
            "the pinned splits need WebShop's 1000-product files (or the embedded catalogue)"
        )
    if name == "test":
        return test
    if name == "train":
        held = set(test)
        return [i for i in range(num_goals) if i not in held]
    raise ValueError(f"unknown WebShop split {name!r}: choose 'test' or 'train'")
