"""`agentprm <command>`: each command is a recipe's Args dataclass, parsed by tyro."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    import warnings

    import tyro

    # transformers 5.24+ warns at every forward pass that `past_key_values=` (which the KV-cache
    # code passes) is deprecated in favour of `cache=`; pyproject pins < 5.40, where it is removed.
    warnings.filterwarnings("ignore", message=r".*past_key_values.*deprecated", category=FutureWarning)

    from agentprm.recipes import (
        collect,
        demo,
        envs_info,
        evaluate,
        expert,
        mc_label,
        play,
        report,
        sft,
        train_prm,
    )

    commands = {
        "demo": (demo.Args, demo.main, "the main job, end to end on the embedded default (see README)"),
        "envs": (envs_info.Args, envs_info.main, "list environments, round caps and pinned splits"),
        "play": (play.Args, play.main, "play an episode by typing commands"),
        "expert": (expert.Args, expert.main, "write expert trajectories and print the success rate"),
        "sft": (sft.Args, sft.main, "fine-tune the policy (SFT on expert data, RFT on own successes)"),
        "collect": (collect.Args, collect.main, "sample n trajectories per task (batched, resumable)"),
        "mc-label": (mc_label.Args, mc_label.main, "Math-Shepherd MC labels from policy rollouts"),
        "train-prm": (
            train_prm.Args,
            train_prm.main,
            "train the PRM: L_Q + beta L_A on td/mc/pvm/orm labels",
        ),
        "evaluate": (
            evaluate.Args,
            evaluate.main,
            "greedy, Best-of-N, beam search and oracle on a test split",
        ),
        "report": (report.Args, report.main, "report.md and figures from run folders"),
    }
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: agentprm <command> [--help]\n\ncommands:")
        for name, (_, _, doc) in commands.items():
            print(f"  {name:10s} {doc}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}")
            raise SystemExit(2)
        return
    args_cls, run, doc = commands[argv[0]]
    args = tyro.cli(args_cls, args=argv[1:], prog=f"agentprm {argv[0]}", description=doc)
    run(args)


if __name__ == "__main__":
    main()
