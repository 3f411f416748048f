"""TextCraft expert: a planner over the crafting tree that writes the shortest command list it finds.

A plan fixes one recipe per item and one concrete member per tag input ("oak planks" for
"planks"), then works out counts top-down over the chosen graph in topological order, so every
item's total demand (minus what the inventory already holds) is known before it is made:
  - a base item is fetched once, with one "get" of the exact total;
  - a crafted item is crafted ceil(demand / output count) times (the env crafts one recipe
    application per command, so batches cannot be merged), leftovers feed the later consumers;
  - the goal is crafted once even if the inventory holds one (only crafting it scores).
Commands run bottom-up; each base item is fetched right before the first craft that uses it.
The choices are improved by coordinate descent on the plan's length (every alternative recipe of
every item and every member of every tag in the current plan, until nothing shortens it).

531 of the 544 goals have a plan within the 20-round cap. The other 13 are 10 dyed banners (23-27
commands: 6 dyed wools at one craft each, 6 white wools at one craft each (4 string -> 1), and dyes
at 1 or 2 a craft) and the anvil, lodestone and netherite block (23-48 commands: ingots are crafted
from 9 nuggets, one per command, on AgentGym's cycle side). Their plans are the shortest over every
recipe and tag-member choice (checked by exhaustive search in tests/test_textcraft.py).

    >>> [s.command for s in plan("minecraft:acacia_button")]
    ['get 1 acacia logs', 'craft 4 acacia planks using 1 acacia logs', 'craft 1 acacia button using 1 acacia planks']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agentprm.envs.react import format_react
from agentprm.envs.textcraft import CraftingTree, Recipe, display, load_tree


@dataclass(frozen=True)
class Step:
    """One command of a plan and the short reason the expert gives for it."""

    command: str
    thought: str


@dataclass
class _Expansion:
    """A plan under fixed choices: what to get, what to craft (bottom-up), and who consumes what."""

    gets: dict[str, int]
    # (item, recipe, its inputs with tags made concrete, batches), producers first
    crafts: list[tuple[str, Recipe, tuple[tuple[str, int], ...], int]]
    need: dict[str, int]  # net demand still to be made or fetched, per item
    users: dict[str, list[str]]  # item -> the crafted items that consume it
    choices: set[str]  # decision points met (items with >1 recipe, tags)

    @property
    def length(self) -> int:
        return len(self.gets) + sum(batches for *_, batches in self.crafts)


def _expand(
    tree: CraftingTree,
    goal: str,
    stock: Mapping[str, int],
    recipe_choice: Mapping[str, int],
    member_choice: Mapping[str, str],
) -> _Expansion:
    def recipe_of(item: str) -> Recipe:
        return tree.recipes[item][recipe_choice.get(item, 0)]

    def concrete(name: str) -> str:
        return member_choice.get(name, tree.members[name][0]) if name in tree.tags else name

    # Depth-first postorder over the chosen graph: producers before consumers.
    order: list[str] = []
    seen: set[str] = set()
    choices: set[str] = set()

    def visit(item: str) -> None:
        seen.add(item)
        if item in tree.recipes:
            if len(tree.recipes[item]) > 1:
                choices.add(item)
            for name, _ in recipe_of(item).inputs:
                if name in tree.tags:
                    choices.add(name)
                if concrete(name) not in seen:
                    visit(concrete(name))
        order.append(item)

    visit(goal)
    demand = {goal: 1}
    need: dict[str, int] = {}
    batches: dict[str, int] = {}
    gets: dict[str, int] = {}
    for item in reversed(order):  # consumers first, so each item's demand is complete
        net = demand.get(item, 0) if item == goal else max(0, demand.get(item, 0) - stock.get(item, 0))
        need[item] = net
        if net == 0:
            continue
        if item not in tree.recipes:
            gets[item] = net
            continue
        recipe = recipe_of(item)
        batches[item] = -(-net // recipe.count)
        for name, k in recipe.inputs:
            demand[concrete(name)] = demand.get(concrete(name), 0) + batches[item] * k
    crafts, users = [], {}
    for item in order:
        if item in batches:
            uses = tuple((concrete(name), k) for name, k in recipe_of(item).inputs)
            crafts.append((item, recipe_of(item), uses, batches[item]))
            for name, _ in uses:
                users.setdefault(name, []).append(item)
    return _Expansion(gets, crafts, need, users, choices)


def _best_expansion(tree: CraftingTree, goal: str, stock: Mapping[str, int]) -> _Expansion:
    """Coordinate descent over recipe and member choices; ties keep the earlier alternative."""
    recipe_choice: dict[str, int] = {}
    member_choice: dict[str, str] = {}
    best = _expand(tree, goal, stock, recipe_choice, member_choice)
    improved = True
    while improved:
        improved = False
        for point in sorted(best.choices):
            if point in tree.tags:
                table, options = member_choice, list(tree.members[point])
            else:
                table, options = recipe_choice, list(range(len(tree.recipes[point])))
            for option in options:
                trial = dict(table)
                trial[point] = option
                args = (trial, member_choice) if table is recipe_choice else (recipe_choice, trial)
                candidate = _expand(tree, goal, stock, *args)
                if candidate.length < best.length:
                    best, improved = candidate, True
                    table[point] = option
    return best


def _names(items: list[str]) -> str:
    names = [display(i) for i in dict.fromkeys(items)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def plan(
    goal: str, inventory: Mapping[str, int] | None = None, tree: CraftingTree | None = None
) -> list[Step]:
    """The commands that craft `goal` (an item id) from `inventory` (item id -> count), with thoughts.

    >>> [s.command for s in plan("minecraft:stick", {"minecraft:oak_planks": 2})]
    ['craft 4 stick using 2 oak planks']
    """
    tree = tree or load_tree()
    if goal not in tree.recipes:
        raise ValueError(
            f"{goal!r} is not a craftable item: pick a goal from agentprm.envs.textcraft.goals()"
        )
    x = _best_expansion(tree, goal, inventory or {})
    steps: list[Step] = []
    fetched: set[str] = set()
    for item, recipe, uses, batches in x.crafts:
        for name, _ in uses:
            if name in x.gets and name not in fetched:
                fetched.add(name)
                n = x.gets[name]
                thought = (
                    f"I need {n} {display(name)} to craft {_names(x.users[name])}, "
                    f"so I will get {n} {display(name)}."
                )
                steps.append(Step(f"get {n} {display(name)}", thought))
        command = f"craft {recipe.count} {display(item)} using " + ", ".join(
            f"{k} {display(n)}" for n, k in uses
        )
        for b in range(batches):
            if item == goal:
                thought = f"I have the ingredients for {display(goal)}, so I will craft it now."
            else:
                left = x.need[item] - b * recipe.count
                thought = (
                    f"I still need {left} {display(item)} to craft {_names(x.users[item])}, "
                    f"so I will craft {recipe.count} from {_names([n for n, _ in uses])}."
                )
            steps.append(Step(command, thought))
    return steps


def plan_lengths(tree: CraftingTree | None = None) -> dict[str, int]:
    """Goal item id -> number of commands of its plan from an empty inventory, for every goal."""
    tree = tree or load_tree()
    return {g: len(plan(g, tree=tree)) for g in tree.goals}


class TextCraftExpert:
    """Scripted expert for agentprm/TextCraft-v0: replans from the env's real inventory every turn.

    Usage:
        expert = TextCraftExpert()
        obs, info = env.reset(options={"task": 7})
        expert.reset(env)
        while not done:
            response = expert.act(env)       # "Thought:\\n...\\n\\nAction:\\nget 1 oak logs"
            obs, r, terminated, truncated, info = env.step(response)
    """

    name = "expert:textcraft-planner"

    def reset(self, env) -> None:
        """Nothing to keep between turns: the plan is recomputed from the env's state."""

    def act(self, env) -> str:
        return textcraft_expert_step(env)


def textcraft_expert_step(env) -> str:
    """The expert's ReAct response for the env's current state (goal and inventory)."""
    base = env.unwrapped
    step = plan(base.goal, base.inventory, base.tree)[0]
    return format_react(step.thought, step.command)
