"""`agentprm <command>`: each command is a recipe's Args dataclass, parsed by tyro.

Errors: an expected error (bad input, a missing or corrupt file, a run dir in use or made with other
arguments, no permission, a full disk, a server that cannot be reached) prints ONE line saying what
to change and exits with status 2; anything else prints the traceback and asks for a bug report
(status 1). `--debug` (anywhere on the command line) or AGENTPRM_DEBUG=1 always shows tracebacks.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback

# OSErrors that are the machine's state, not a bug: say which path and why.
_EXPECTED_ERRNO = {
    errno.ENOSPC,
    errno.EROFS,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.ENOENT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.ECONNREFUSED,
}


def expected_error(exc: BaseException) -> str | None:
    """The one-line message for an error a user can fix, or None for a bug.

    >>> expected_error(ValueError("--n must be >= 1, got 0"))
    'error: --n must be >= 1, got 0'
    >>> expected_error(OSError(28, "No space left on device", "runs/x/checkpoint.pt"))
    'error: runs/x/checkpoint.pt: No space left on device (free some space or choose another --run-dir)'
    >>> expected_error(KeyError("oracle")) is None
    True
    """
    from agentprm.envs.agentgym_remote import AgentGymServerError
    from agentprm.policies.openai_server import OpenAIServerError
    from agentprm.prm.remote import RemotePRMError
    from agentprm.rundir import RunDirError, TimeGuardError

    if isinstance(exc, OSError) and exc.errno in _EXPECTED_ERRNO:
        where = exc.filename or ""
        hint = {
            errno.ENOSPC: " (free some space or choose another --run-dir)",
            errno.EDQUOT: " (over quota: free some space or choose another --run-dir)",
            errno.EROFS: " (a read-only file system: choose another --run-dir)",
            errno.EACCES: " (no permission: choose another path or fix its permissions)",
            errno.EPERM: " (no permission: choose another path or fix its permissions)",
        }.get(exc.errno, "")
        return f"error: {where + ': ' if where else ''}{exc.strerror or exc}{hint}"
    expected = (
        ValueError,
        RunDirError,
        TimeGuardError,
        OpenAIServerError,
        RemotePRMError,
        AgentGymServerError,
    )
    if isinstance(exc, expected):
        return f"error: {exc}"
    return None


def main(argv: list[str] | None = None) -> None:
    import warnings

    import tyro

    # transformers 5.24+ warns at every forward pass that `past_key_values=` (which the KV-cache
    # code passes) is deprecated in favour of `cache=`; pyproject pins < 5.40, where it is removed.
    warnings.filterwarnings("ignore", message=r".*past_key_values.*deprecated", category=FutureWarning)

    # Only the chosen command's recipe is imported: most import torch and transformers (~5 s of
    # CPU for all of them), which `agentprm envs` or `--help` should not pay.
    commands = {  # name -> (module of agentprm.recipes, one line for the command list)
        "demo": ("demo", "the main job, end to end on the embedded default (see README)"),
        "reproduce": ("reproduce", "the paper's comparison with statistical power (resumable study, hours on CPU)"),
        "envs": ("envs_info", "list environments, round caps and pinned splits"),
        "play": ("play", "play an episode by typing commands"),
        "expert": ("expert", "write expert trajectories and print the success rate"),
        "sft": ("sft", "fine-tune the policy (SFT on expert data, RFT on own successes)"),
        "collect": ("collect", "sample n trajectories per task (batched, resumable)"),
        "mc-label": ("mc_label", "Math-Shepherd MC labels from policy rollouts"),
        "mc-agreement": ("mc_agreement", "reward models' promise and progress against MC estimates, step by step"),
        "train-prm": ("train_prm", "train the PRM: L_Q + beta L_A on td/mc/pvm/orm labels"),
        "evaluate": ("evaluate", "greedy, Best-of-N, beam search and oracle on a test split"),
        "ppo": ("ppo", "improve a policy by multi-turn PPO with the outcome or a reward model"),
        "ppo-compare": ("ppo_compare", "Figure 5: PPO with each reward source from a reproduce study, equal budgets"),
        "report": ("report", "report.md and figures from run folders"),
        "serve": ("serve", "serve a trained PRM over HTTP (vLLM's /pooling and /score_steps) for remote scoring"),
        "serve-env": (
            "serve_env",
            "serve an env over AgentGym's env-server HTTP protocol (AgentGym's clients, AgentGymEnv)",
        ),
        "export-labels": ("export_labels", "PRM labels (td/mc/pvm/orm) as a TRL stepwise-supervision dataset"),
    }  # fmt: skip
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("AGENTPRM_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: agentprm <command> [--help]\n\ncommands:")
        for name, (_, doc) in commands.items():
            print(f"  {name:10s} {doc}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}")
            raise SystemExit(2)
        return
    module, doc = commands[argv[0]]
    recipe = importlib.import_module(f"agentprm.recipes.{module}")
    try:
        args = tyro.cli(recipe.Args, args=argv[1:], prog=f"agentprm {argv[0]}", description=doc)
        recipe.main(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\nagentprm {argv[0]}: interrupted; re-run the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:  # the one top-level handler
        message = expected_error(exc)
        if debug:
            raise
        if message is None:
            traceback.print_exc()
            print(
                f"agentprm {argv[0]}: unexpected error (a bug): please report it with the traceback above "
                "and the command line",
                file=sys.stderr,
            )
            raise SystemExit(1) from None
        print(f"agentprm {argv[0]}: {message}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
