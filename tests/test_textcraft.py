"""TextCraft env and planner expert: tree, golden observations, determinism, expert, cross-check, fuzz."""

from __future__ import annotations

import collections
import itertools
import json
import random
import re
import string
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import agentprm.envs  # noqa: F401  (registers the ids)
from agentprm.envs.react import ONLY_ONE_ACTION, format_react, parse_react
from agentprm.envs.splits import TEXTCRAFT_NUM_GOALS
from agentprm.envs.textcraft import (
    NS,
    SYSTEM_PROMPT,
    TextCraftEnv,
    goal_name,
    goals,
    load_tree,
    recipe_folder,
)
from agentprm.experts.textcraft import TextCraftExpert, _expand, plan, plan_lengths

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "agentgym" / "transcripts.jsonl"

# The goals no command sequence crafts within the 20-round cap. Banners: 6 dyed wools, each one craft
# from 1 dye + 1 white wool, each white wool one craft from 4 string, plus dyes that come 1 or 2 a
# craft. Anvil, lodestone, netherite block: ingots are crafted 9 nuggets at a time (AgentGym's cycle
# side), one ingot per round.
OVER_CAP = {
    "minecraft:anvil": 36,
    "minecraft:lodestone": 23,
    "minecraft:netherite_block": 48,
    "minecraft:black_banner": 23,
    "minecraft:blue_banner": 23,
    "minecraft:brown_banner": 23,
    "minecraft:cyan_banner": 24,
    "minecraft:gray_banner": 27,
    "minecraft:light_blue_banner": 23,
    "minecraft:light_gray_banner": 23,
    "minecraft:lime_banner": 24,
    "minecraft:orange_banner": 23,
    "minecraft:purple_banner": 26,
}


@pytest.fixture(scope="module")
def env() -> TextCraftEnv:
    return TextCraftEnv()


def task_of(item: str) -> int:
    return [g for g, _ in goals()].index(item)


def play(env: TextCraftEnv, task: int, seed: int | None = None, rounds: int = 20):
    """Run the expert; return (reset obs, [(response, obs, reward, terminated)], success)."""
    expert = TextCraftExpert()
    obs, info = env.reset(seed=seed, options={"task": task})
    expert.reset(env)
    steps = []
    for _ in range(rounds):
        response = expert.act(env)
        out, reward, terminated, _, info = env.step(response)
        steps.append((response, out, reward, terminated))
        if terminated:
            break
    return obs, steps, info["success"]


# -- the tree ------------------------------------------------------------------------------------
def test_goal_list_size_order_and_determinism():
    tree = load_tree()
    assert len(tree.goals) == TEXTCRAFT_NUM_GOALS == TextCraftEnv.num_tasks == 544
    listed = goals()
    # AgentGym's order: by depth, ties by the first recipe file (sorted names) that makes the item
    first_file = {g: min(r.source for r in tree.recipes[g]) for g in tree.goals}
    assert listed == sorted(listed, key=lambda g: (g[1], first_file[g[0]]))
    assert all(d >= 1 for _, d in listed)
    # the depth counts behind AgentEval's published test ids (issue 14)
    assert collections.Counter(d for _, d in listed) == {1: 125, 2: 291, 3: 117, 4: 11}
    assert goal_name(142) == "birch door"  # issue 14: sorted order names this id birch door
    assert listed[0] == ("minecraft:acacia_planks", 1) and goal_name(0) == "acacia planks"
    assert listed[-1] == ("minecraft:purple_banner", 4)
    fresh = load_tree.__wrapped__()  # rebuilt from the files, not the cache
    assert fresh.goals == tree.goals and fresh.recipes == tree.recipes and fresh.depth == tree.depth


def test_tree_rules():
    tree = load_tree()
    # cycles: sorted file order cuts the nugget/bottle side (AgentGym's), so nuggets and honey
    # bottles are base items and ingots and honey blocks are crafted from them
    assert sorted(r.source for r in tree.cut) == ["gold_nugget.json", "honey_bottle.json", "iron_nugget.json"]
    for base in ("minecraft:gold_nugget", "minecraft:iron_nugget", "minecraft:honey_bottle"):
        assert tree.is_base(base)
    assert tree.recipes[NS + "gold_ingot"][0].line == "craft 1 gold ingot using 9 gold nugget"
    # single-ingredient *_block recipes are dropped
    assert all(
        not (len(r.inputs) == 1 and r.inputs[0][0].endswith("_block"))
        for rs in tree.recipes.values()
        for r in rs
    )
    assert tree.is_base("minecraft:diamond") and tree.is_base("minecraft:quartz")
    # groups make tags: planks has the 8 planks; white wool is not in "wool" (its recipe has no group)
    assert len(tree.members[NS + "planks"]) == 8 and NS + "planks" in tree.tags
    assert NS + "white_wool" not in tree.members[NS + "wool"] and len(tree.members[NS + "wool"]) == 15
    # an ingredient tag with no craftable member is a plain base item
    for name in ("oak_logs", "stone_tool_materials", "wooden_slabs", "logs"):
        assert tree.is_base(NS + name) and NS + name not in tree.tags
    # shaped counts key occurrences; a list ingredient takes its first alternative
    (torch,) = tree.recipes[NS + "torch"]
    assert (torch.count, torch.inputs) == (4, ((NS + "stick", 1), (NS + "coal", 1)))
    assert tree.recipes[NS + "crafting_table"][0].line == "craft 1 crafting table using 4 planks"
    # depth = min over recipes of max over inputs (+1)
    assert tree.depth[NS + "oak_planks"] == 1 and tree.depth[NS + "planks"] == 1
    assert tree.depth[NS + "stick"] == 1  # 2 bamboo -> 1 stick beats planks -> sticks
    assert tree.depth[NS + "crafting_table"] == 2


# -- golden observations -------------------------------------------------------------------------
def test_golden_reset_observations(env):
    obs, info = env.reset(options={"task": 0})
    assert (
        obs == "Crafting commands:\ncraft 4 acacia planks using 1 acacia logs\n\nGoal: craft acacia planks."
    )
    assert info == {"task": 0, "goal": "minecraft:acacia_planks", "success": False, "score": 0.0}
    obs, _ = env.reset(seed=0, options={"task": task_of("minecraft:blue_dye")})
    assert obs == (
        "Crafting commands:\ncraft 1 lapis block using 9 lapis lazuli\ncraft 1 blue dye using 1 lapis lazuli\n"
        "craft 1 blue dye using 1 cornflower\n\nGoal: craft blue dye."
    )


def test_golden_steps(env):
    env.reset(options={"task": task_of("minecraft:dark_oak_sign")})
    golden = [
        ("inventory", "Inventory: You are not carrying anything.", 0.0),
        ("get 2 quartz", "Got 2 quartz", 0.0),
        ("get 1 dark oak planks", "Could not find dark oak planks", 0.0),  # craftable
        ("get 2 planks", "Could not find planks", 0.0),  # a tag
        ("get 1 unobtainium", "Could not find unobtainium", 0.0),
        ("get 1 dark oak log", "Got 1 dark oak log", 0.0),
        ("get 1 dark oak logs", "Got 1 dark oak logs", 0.0),
        ("inventory", "Inventory: [quartz] (2) [dark oak log] (1) [dark oak logs] (1) ", 0.0),
        ("craft 4 dark oak planks using 1 dark oak logs", "Crafted 4 minecraft:dark_oak_planks", 0.0),
        (
            "craft 1 crafting table using 4 oak planks",
            "Could not find enough items to craft minecraft:crafting_table",
            0.0,
        ),
        ("craft 4 stick using 2 planks", "Could not find enough items to craft minecraft:stick", 0.0),
        ("craft 4 stick using 3 dark oak planks", "Could not find a valid recipe for stick", 0.0),
        ("craft 4 stick using dark oak planks", "Wrong item format: dark oak planks", 0.0),
        ("craft 4 stick using 2 dark oak planks", "Crafted 4 minecraft:stick", 0.0),
        (
            "craft 3 dark oak sign using 6 dark oak planks, 1 stick",
            "Could not find enough items to craft minecraft:dark_oak_sign",
            0.0,
        ),
        ("jump around", "Could not execute jump around", 0.0),
        ("Get 1 stick", "Could not execute Get 1 stick", 0.0),
        ("get 1 dark oak logs", "Got 1 dark oak logs", 0.0),
        ("craft 4 dark oak planks using 1 dark oak logs", "Crafted 4 minecraft:dark_oak_planks", 0.0),
        ("craft 1 dark oak sign using 6 dark oak planks, 1 stick", "Crafted 3 minecraft:dark_oak_sign", 1.0),
    ]
    for command, want, reward in golden:
        obs, r, terminated, truncated, info = env.step(format_react("", command))
        assert (obs, r, terminated, truncated) == (want, reward, reward > 0, False), command
    assert info["success"] and info["score"] == 1.0 and info["goal"] == "minecraft:dark_oak_sign"
    assert env.inventory == {
        "minecraft:quartz": 2,
        "minecraft:dark_oak_log": 1,
        "minecraft:stick": 3,
        "minecraft:dark_oak_sign": 3,
    }


def test_react_errors_cost_a_round_without_raising(env):
    env.reset(options={"task": 0})
    obs, r, terminated, _, info = env.step("Action: get 1 acacia logs\nAction: inventory")
    assert obs == ONLY_ONE_ACTION and r == 0.0 and not terminated and info["parse_error"]
    obs, *_ = env.step("Thought: I am thinking.")
    assert obs.startswith("Error: No 'Action'")
    obs, *_ = env.step("Thought: go.\nAction: get 1 acacia-logs!")  # strict charset drops '-' and '!'
    assert obs == "Could not find acacialogs"


# -- determinism ----------------------------------------------------------------------------------
def test_same_task_and_seed_same_observation():
    a, b = TextCraftEnv(), TextCraftEnv()
    task = task_of("minecraft:dark_oak_sign")
    for seed in (None, 0, 7):
        assert a.reset(seed=seed, options={"task": task})[0] == b.reset(seed=seed, options={"task": task})[0]
    assert a.reset(seed=0, options={"task": task})[0] != a.reset(seed=1, options={"task": task})[0]
    made = gym.make("agentprm/TextCraft-v0")
    assert made.reset(seed=3, options={"task": task})[0] == a.reset(seed=3, options={"task": task})[0]


def test_expert_replay_reproduces_observations(env):
    rng = random.Random(0)
    for task in rng.sample(range(TEXTCRAFT_NUM_GOALS), 20):
        seed = rng.randrange(1000)
        obs, steps, _ = play(env, task, seed)
        replay = TextCraftEnv()
        assert replay.reset(seed=seed, options={"task": task})[0] == obs
        for response, want, reward, terminated in steps:
            assert replay.step(response)[:3] == (want, reward, terminated)


# -- the expert -----------------------------------------------------------------------------------
def test_expert_solves_every_goal_that_fits_the_round_cap(env):
    lengths = plan_lengths()
    assert {g: n for g, n in lengths.items() if n > 20} == OVER_CAP
    failed = []
    for task in range(TEXTCRAFT_NUM_GOALS):
        _, steps, success = play(env, task)
        assert all(out.startswith(("Got ", "Crafted ")) for _, out, _, _ in steps), task
        if not success:
            failed.append(env.goal)
        else:
            assert len(steps) == lengths[env.goal]
    assert sorted(failed) == sorted(OVER_CAP)
    assert TEXTCRAFT_NUM_GOALS - len(failed) == 531  # 97.6%: every goal the cap allows


@pytest.mark.parametrize("goal", [*sorted(OVER_CAP), "minecraft:lodestone", "minecraft:anvil"])
def test_plan_is_shortest_over_all_choices(goal):
    """Exhaustive search over every recipe/member choice agrees with the coordinate descent."""
    tree = load_tree()
    points, stack, seen = set(), [goal], set()
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            if name in tree.tags:
                points.add(name)
            elif len(tree.recipes.get(name, ())) > 1:
                points.add(name)
            stack.extend(n for r in tree.recipes_for(name) for n, _ in r.inputs)
    points = sorted(points)
    options = [tree.members[p] if p in tree.tags else range(len(tree.recipes[p])) for p in points]
    best = min(
        _expand(
            tree,
            goal,
            {},
            {p: c for p, c in zip(points, combo, strict=True) if p not in tree.tags},
            {p: c for p, c in zip(points, combo, strict=True) if p in tree.tags},
        ).length
        for combo in itertools.product(*options)
    )
    assert len(plan(goal)) == best


def test_plan_uses_the_inventory_and_writes_react():
    assert [s.command for s in plan("minecraft:stick", {"minecraft:oak_planks": 2})] == [
        "craft 4 stick using 2 oak planks"
    ]
    steps = plan("minecraft:crafting_table")
    assert [s.command for s in steps] == [
        "get 1 acacia logs",
        "craft 4 acacia planks using 1 acacia logs",
        "craft 1 crafting table using 4 acacia planks",
    ]
    assert steps[0].thought == "I need 1 acacia logs to craft acacia planks, so I will get 1 acacia logs."
    env = TextCraftEnv()
    env.reset(options={"task": task_of("minecraft:crafting_table")})
    response = TextCraftExpert().act(env)
    assert response == format_react(steps[0].thought, steps[0].command)
    assert parse_react(response).action == "get 1 acacia logs"
    with pytest.raises(ValueError, match="not a craftable item"):
        plan("minecraft:diamond")


# -- cross-check against minecraft-data 1.16.5 ----------------------------------------------------
def test_recipes_match_minecraft_data():
    minecraft_data = pytest.importorskip("minecraft_data")
    mc = minecraft_data("1.16.5")
    folder = recipe_folder()
    checked = 0
    for rs in load_tree().recipes.values():
        for recipe in rs:
            raw = json.loads((folder / recipe.source).read_text())
            ingredients = list(raw.get("key", {}).values()) + raw.get("ingredients", [])
            if not all(isinstance(i, dict) and "item" in i for i in ingredients):
                continue  # tags and alternatives are expanded differently there
            variants = []
            for v in mc.recipes.get(str(mc.items_name[recipe.output.removeprefix(NS)]["id"]), []):
                ids = (
                    [i for row in v["inShape"] for i in row if i is not None]
                    if "inShape" in v
                    else v["ingredients"]
                )
                counts = collections.Counter(NS + mc.items[i]["name"] for i in ids)
                variants.append((v["result"]["count"], dict(counts)))
            assert (recipe.count, dict(recipe.inputs)) in variants, recipe.source
            checked += 1
    assert checked >= 500


# -- robustness -----------------------------------------------------------------------------------
def test_fuzz_2000_responses_never_raise(env):
    rng = random.Random(0)
    words = [
        "get",
        "craft",
        "using",
        "inventory",
        "1",
        "4",
        "0",
        "oak",
        "planks",
        "logs",
        "stick",
        ",",
        "Action:",
    ]
    special = [
        "",
        "Action:",
        "Thought: nothing",
        "Action: get 1 stick\nAction: inventory",
        "Action: 🪵 get 1 oak logs ✨ ünïcödé",
        "Action: " + "x" * 10_000,
        "Action: get " + "9" * 5000 + " oak logs",
        "Action: craft " + "9" * 5000 + " stick using 2 oak planks",
        "Action: craft 1 stick using " + "9" * 5000 + " oak planks",
        "Action: craft 1 stick using 2 oak planks,, 1",
        "Action: get 0 oak logs",
        "Action: craft using",
        "Action: inventoryinventory",
    ]
    env.reset(seed=0, options={"task": 100})
    for i in range(2000):
        if i < len(special):
            response = special[i]
        elif i % 3 == 0:
            response = "".join(rng.choice(string.printable) for _ in range(rng.randrange(200)))
        elif i % 3 == 1:
            response = "Thought: x\nAction: " + " ".join(rng.choice(words) for _ in range(rng.randrange(12)))
        else:
            response = "".join(chr(rng.randrange(1, 0x2FFFF)) for _ in range(rng.randrange(60)))
        obs, reward, terminated, truncated, info = env.step(response)
        assert isinstance(obs, str) and reward in (0.0, 1.0) and truncated is False
        assert set(info) >= {"success", "score", "task", "goal"}
        if i % 500 == 0:
            env.reset(seed=i, options={"task": i % TEXTCRAFT_NUM_GOALS})


@pytest.mark.parametrize(
    "prefix, suffix, start",
    [
        ("", "", "Could not execute xxx"),
        ("get 1 ", "", "Could not find xxx"),
        ("craft 1 stick using ", "", "Wrong item format: xxx"),
        ("craft 1 ", " using 1 oak logs", "Could not find enough items to craft minecraft:xxx"),
    ],
)
def test_a_response_in_the_action_space_gives_an_observation_in_the_observation_space(
    env, prefix, suffix, start
):
    # Error observations used to quote the whole command: 1,000,000 characters in, 1,000,010 out.
    env.reset(options={"task": 0})
    pad = env.action_space.max_length - len("Action: " + prefix + suffix)
    response = "Action: " + prefix + "x" * pad + suffix
    assert len(response) == env.action_space.max_length and env.action_space.contains(response)
    obs = env.step(response)[0]
    assert obs.startswith(start) and obs.endswith("x...") and len(obs) < 1100
    assert env.observation_space.contains(obs)


def test_the_goal_pays_once(env):
    env.reset(options={"task": 0})
    crafts = [
        env.step_command(c)[1:3] for c in ["get 2 acacia logs", "craft 4 acacia planks using 1 acacia logs"]
    ]
    assert crafts[-1] == (1.0, True)
    # Crafting it again used to pay 1.0 again (and terminate again) from the logs left over.
    obs, reward, terminated, truncated, info = env.step_command("craft 4 acacia planks using 1 acacia logs")
    assert (obs, reward, terminated, truncated) == (
        "The episode has ended. Please reset the environment.",
        0.0,
        False,
        False,
    )
    assert (
        info["success"]
        and info["score"] == 1.0
        and env.inventory == {"minecraft:acacia_logs": 1, "minecraft:acacia_planks": 4}
    )


def test_env_checker_and_no_torch():
    from gymnasium.utils.env_checker import check_env

    check_env(TextCraftEnv(), skip_render_check=True)
    code = (
        "import sys, agentprm.envs.textcraft as t, agentprm.experts.textcraft; t.TextCraftEnv(); "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'textcraft' not in sys.modules, 'the textcraft package (its env code) imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Where a model in AgentGym's real TextCraft transcripts quotes the instruction it was given (AgentGym's
# prompt, sent by AgentGym's own client): (transcript's source path, step, a pattern whose groups are the
# quoted words). Found by searching every response for long runs of the prompt's words.
AGENTGYM_PROMPT_QUOTES = [
    (
        "runs/0_baselines/exp15_qwen35_4b/eval_logs/textcraft_0.json",
        0,
        r'Re-reading the prompt carefully: "(.+?)"\.\n',
    ),
    ("runs/0_baselines/exp15_qwen35_4b/eval_logs/textcraft_436.json", 3, r'the prompt says "(.+?)"\.'),
    ("runs/0_baselines/exp15_qwen35_4b/eval_logs/textcraft_142.json", 10, r'the prompt says "(.+?)"\.'),
    ("runs/0_baselines/exp15_qwen35_4b/eval_logs/textcraft_177.json", 5, r'the instructions say "(.+?)" and'),
    (
        "runs/0_baselines/exp15_qwen35_4b/eval_logs/textcraft_177.json",
        8,
        r'example commands provided:\n- "(.+?)"\n- "(.+?)"\n',
    ),  # the first two: the prompt's examples
    (
        "runs/1_api/exp_gemini_gemini_3_5_flash/eval_logs/textcraft_170.json",
        3,
        r'the prompt reminder says: "(.+?)"\.\n',
    ),
]


def _quoted_in(quote: str, prompt: str) -> bool:
    """The model's quote appears in the prompt: its pieces between "..." elisions in order, with double
    quotes ignored (a model writes 'When using get command' for 'When using "get" command')."""
    text, at = prompt.replace('"', ""), 0
    for piece in quote.replace('"', "").split("..."):
        at = text.find(piece, at)
        if at < 0:
            return False
        at += len(piece)
    return True


def test_system_prompt_is_agentgyms():
    """Every quote of the instruction by a model in AgentGym's real TextCraft transcripts is in ours."""
    from agentprm.prompts import instruction

    if not TRANSCRIPTS.exists():
        pytest.skip(f"{TRANSCRIPTS} is not in this checkout")
    lines = TRANSCRIPTS.read_text().splitlines()
    records = {r["source"].split(":", 2)[2]: r for r in map(json.loads, lines)}  # repo@commit:PATH
    quotes = []
    for source, step, pattern in AGENTGYM_PROMPT_QUOTES:
        record = records[source]
        assert record["env"] == "textcraft"
        match = re.search(pattern, record["steps"][step]["response"])
        assert match, (source, step, pattern)
        quotes += match.groups()
    assert len(quotes) == 7 and sum(len(q) for q in quotes) > 400
    for prompt in (SYSTEM_PROMPT, instruction("textcraft")):  # the constant and what the policy is shown
        missing = [q for q in quotes if not _quoted_in(q, prompt)]
        assert not missing, f"AgentGym's prompt as quoted in its transcripts, not in ours: {missing}"


# -- AgentGym's task naming (issue 14) ------------------------------------------------------------
def test_agenteval_split_has_agentgyms_depth_composition():
    from agentprm.envs.splits import split

    ids = split("textcraft", "agenteval")
    assert ids == [*range(0, 31), *range(140, 181), *range(420, 445), *range(533, 536)]
    depth = dict(goals())
    by_depth = collections.Counter(depth[load_tree().goals[i]] for i in ids)
    assert by_depth == {1: 31, 2: 41, 3: 25, 4: 3}
    # the id boundaries sit on depth boundaries only on AgentGym's cycle side
    assert [goals()[i][1] for i in (124, 125, 415, 416, 532, 533)] == [1, 2, 2, 3, 3, 4]
    unseen = split("textcraft", "agenteval_unseen")
    assert set(unseen) == set(ids) & set(split("textcraft", "test")) and len(unseen) == 20


def test_a_task_is_named_by_its_goal(env):
    from agentprm.envs.splits import parse_tasks
    from agentprm.envs.textcraft import task_of_goal

    stick = task_of("minecraft:stick")
    assert task_of_goal("stick") == task_of_goal(" Stick ") == task_of_goal("minecraft:stick") == stick
    assert parse_tasks("textcraft", "stick,gold ingot,0") == [stick, task_of("minecraft:gold_ingot"), 0]
    by_goal, _ = env.reset(seed=3, options={"goal": "stick"})
    by_task, _ = env.reset(seed=3, options={"task": stick})
    assert by_goal == by_task and env.task == stick
    with pytest.raises(ValueError, match="close: 'gold ingot'"):
        parse_tasks("textcraft", "gold ingots")
    with pytest.raises(ValueError, match="is not a task index or a TextCraft goal"):
        task_of_goal("diamond")  # a base item, never a goal
    with pytest.raises(ValueError, match="not both"):
        env.reset(options={"goal": "stick", "task": 0})
    with pytest.raises(ValueError, match="not a task index"):
        parse_tasks("babyai", "stick")  # names are TextCraft's only
