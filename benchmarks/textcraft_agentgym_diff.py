"""Differential check of TextCraft against AgentGym's own crafting tree and environment code: the goal
list (which item each task index names, its depth), every goal's recipe lines, and the expert's
commands replayed in AgentGym's env.

AgentGym's code is NOT part of this project: point --agentgym at a checkout of WooooDyy/AgentGym
(agentenv-textcraft/agentenv_textcraft/{utils,crafting_tree,environment}.py are imported from there
and run in this process; its server module is not). Its tree is built over its own recipe folder
with os.listdir answering in sorted order, which fixes what upstream leaves to the filesystem.

    python benchmarks/textcraft_agentgym_diff.py --agentgym /path/to/AgentGym

Checks, each counted over the 544 goals:
- goal i is the item AgentGym's reset(data_idx=i) picks (its depth-sorted goal list);
- the depth of every goal agrees;
- the set of recipe lines of the goal's tree agrees (upstream's traverse_recipe_tree vs ours);
- the expert's command sequence, replayed in AgentGym's env on the same recipe text, earns the
  same rewards step for step (upstream prints a dataclass repr in one error message, so
  observations are compared after the known deliberate deviations are normalised).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import sys
import types
from pathlib import Path

import gymnasium

from agentprm.envs.textcraft import TextCraftEnv, display, load_tree, recipe_lines
from agentprm.experts.textcraft import TextCraftExpert


def load_agentgym(root: Path):
    """(crafting_tree module, environment module) from a checkout, without its server."""
    folder = root / "agentenv-textcraft" / "agentenv_textcraft"
    package = types.ModuleType("agentgym_textcraft")
    package.__path__ = [str(folder)]
    sys.modules["agentgym_textcraft"] = package
    if "gym" not in sys.modules:
        try:
            import gym  # noqa: F401
        except ImportError:  # it only subclasses gym.Env
            sys.modules["gym"] = types.SimpleNamespace(Env=gymnasium.Env)
    loaded = {}
    for name in ("utils", "crafting_tree", "environment"):
        spec = importlib.util.spec_from_file_location(f"agentgym_textcraft.{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded[name] = module
    return loaded["crafting_tree"], loaded["environment"], folder


def sorted_listdir_tree(crafting_tree, folder: Path):
    listdir = os.listdir
    os.listdir = lambda path: sorted(listdir(path))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return crafting_tree.CraftingTree(minecraft_dir=str(folder))
    finally:
        os.listdir = listdir


def normalise(obs: str) -> str:
    """Undo the known, documented deviations of our error messages (module docstring of textcraft)."""
    obs = re.sub(r"Could not find a valid recipe for .*", "Could not find a valid recipe", obs)
    return obs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agentgym", type=Path, required=True, help="a checkout of WooooDyy/AgentGym")
    args = parser.parse_args()
    crafting_tree, environment, folder = load_agentgym(args.agentgym)
    theirs_tree = sorted_listdir_tree(crafting_tree, folder)
    ours = load_tree()

    upstream_goals = sorted(theirs_tree.item_recipes_min_depth(1), key=lambda x: x[1])
    same_goal = sum(a == (g, ours.depth[g]) for a, g in zip(upstream_goals, ours.goals, strict=False))
    same_depth = sum(theirs_tree.get_min_depth(g) == ours.depth[g] for g in ours.goals)
    same_lines = 0
    line_diffs = []
    for g in ours.goals:
        with contextlib.redirect_stdout(io.StringIO()):
            upstream_lines = {r.recipe_str for r in theirs_tree.traverse_recipe_tree(g, set())}
        if upstream_lines == set(recipe_lines(g)[0]):
            same_lines += 1
        else:
            line_diffs.append(display(g))

    env = TextCraftEnv()
    expert = TextCraftExpert()
    same_replay, solved_ours, solved_theirs, replay_diffs = 0, 0, 0, []
    for task, goal in enumerate(ours.goals):
        obs, info = env.reset(options={"task": task})
        commands_text = obs.split("Crafting commands:\n", 1)[1].split("\n\nGoal:", 1)[0]
        upstream = environment.TextCraftEnv(crafting_tree=theirs_tree, commands=None, goal=None)
        with contextlib.redirect_stdout(io.StringIO()):
            upstream.reset(commands=commands_text, goal=goal)
        agree, done = True, False
        for _ in range(20):
            response = expert.act(env)
            command = response.rsplit("Action:", 1)[1].strip()
            obs, reward, done, _, info = env.step(response)
            with contextlib.redirect_stdout(io.StringIO()):
                up_obs, up_reward, up_done, _, _ = upstream.step(command)
            if (normalise(obs), reward, done) != (normalise(up_obs), float(up_reward), up_done):
                agree = False
                replay_diffs.append((task, command, obs, up_obs))
                break
            if done:
                break
        solved_ours += bool(info["success"])
        solved_theirs += bool(agree and done)
        same_replay += agree
    n = len(ours.goals)
    print(f"goal list (item and depth by index): {same_goal}/{n} (upstream lists {len(upstream_goals)})")
    print(f"depth: {same_depth}/{n}")
    print(
        f"recipe lines of the goal's tree: {same_lines}/{n}"
        + (f"; differ: {line_diffs[:10]}" if line_diffs else "")
    )
    print(
        f"expert replay, every step agreeing: {same_replay}/{n}; solved here {solved_ours}, there {solved_theirs}"
    )
    for diff in replay_diffs[:5]:
        print("  first disagreement:", diff)


if __name__ == "__main__":
    main()
