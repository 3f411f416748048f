"""`agentprm envs`: the registered environments, their round caps and pinned splits."""

from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.markup import escape
from rich.table import Table

import agentprm.envs as E
from agentprm.envs import babyai, splits


@dataclasses.dataclass
class Args:
    show_tasks: bool = False
    """also print every task index of every split"""


def _ranges(xs: list[int]) -> str:
    """[0,1,2,5] -> '0-2, 5'."""
    out, start = [], None
    for i, x in enumerate(xs):
        if start is None:
            start = x
        if i + 1 == len(xs) or xs[i + 1] != x + 1:
            out.append(str(start) if start == x else f"{start}-{x}")
            start = None
    return ", ".join(out)


def main(args: Args) -> None:
    console = Console()
    table = Table(title="agentprm environments")
    for col in ("name", "gymnasium id", "round cap", "train", "test", "tasks"):
        table.add_column(col)
    shown = []
    for name, env_id in E.ENV_IDS.items():
        try:
            sp, num_tasks = splits.splits_of(E.family(name))  # babyai-agentgym shares BabyAI's splits
        except (ValueError, OSError) as e:  # the user's GSM8K data: none given, or unreadable
            table.add_row(name, env_id, str(E.MAX_ROUNDS[name]), "-", "-", escape(f"no data: {e}"))
            continue
        shown.append(E.family(name))
        what = {
            "babyai": "index i -> level (i % 40) + 1, seed i // 40"
            + (" (AgentGym's server, bugs included)" if name == "babyai-agentgym" else ""),
            "textcraft": f"{num_tasks} goals of depth >= 1 in AgentGym's order (depth, then recipe file)",
            "webshop": f"{num_tasks} synthetic goals in AgentGym's order; {E.mode_note(name)}",
            "math": f"{num_tasks} word problems of the built-in generator (9 templates)",
            "gsm-symbolic": f"{num_tasks} problems of reasoning-gym's gsm_symbolic (pip install 'agentprm[math]')",
            "gsm8k": f"{num_tasks} problems; {E.mode_note(name)}",
        }[E.family(name)]
        if name in E.REMOTE:
            what = f"{E.family(name)}'s tasks on an AgentGym env server (${E.URL_ENV} or url=)"
        table.add_row(
            name,
            env_id,
            str(E.MAX_ROUNDS[name]),
            str(len(sp.get("train", []))),
            str(len(sp.get("test", []))),
            escape(what),  # "agentprm[math]" is not rich markup
        )
    console.print(table)
    console.print("BabyAI levels: " + ", ".join(f"{i + 1} {n}" for i, n in enumerate(babyai.LEVELS)))
    for name in dict.fromkeys(shown):
        for split_name, tasks in splits.splits_of(name)[0].items():
            shown = (
                _ranges(tasks)
                if args.show_tasks or len(_ranges(tasks)) < 200
                else _ranges(tasks)[:200] + " ..."
            )
            console.print(f"{name} {split_name} ({len(tasks)}): {shown}")
