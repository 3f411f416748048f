"""`agentprm ppo-compare`: the paper's Figure 5 — PPO from the same SFT policy with each reward source
(the outcome, ORM, PVM, AgentPRM) under the SAME budget, the greedy test score against iterations.

It reads a finished `agentprm reproduce` run (`--study`): its SFT policy, its reward models
(prm-orm, prm-pvm, prm-agentprm) and its scale (environment, round cap, renderer budget). Each
source is one `agentprm ppo` run under <run-dir>/<source> (resumable, a finished one is skipped);
then figure5_<env>.png (greedy success and mean reward per evaluation) and report.md (the table,
the budget, and each source's last evaluation against the outcome-only source's on the same test
tasks: paired difference with a bootstrap interval) are written.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import agentprm.envs as E
from agentprm import jsonl, rundir
from agentprm import validate as V
from agentprm.envs.splits import parse_tasks
from agentprm.evaluation import paired_difference
from agentprm.models.loading import load_policy_model
from agentprm.models.presets import PRESETS
from agentprm.recipes import ppo, reproduce
from agentprm.types import read_trajectories

# source -> (ppo's reward kind, the study's reward model). Figure 5's four, then two ablations:
# mc (the MC-labelled PRM's progress) and agentprm-final (AgentPRM's score of the final step alone,
# ORM-style: is it the model or the dense shaping that helps or hurts PPO?).
SOURCES = {
    "env": ("env", None),
    "orm": ("orm", "orm"),
    "pvm": ("pvm", "pvm"),
    "agentprm": ("agentprm", "agentprm"),
    "mc": ("mc", "mc"),
    "agentprm-final": ("orm", "agentprm"),
}


@dataclasses.dataclass
class Args:
    study: Path = Path("runs/reproduce-babyai")
    """a finished `agentprm reproduce` run dir (its sft/model and prm-<name>/ are used)"""
    sources: tuple[str, ...] = ("env", "orm", "pvm", "agentprm")
    """reward sources to compare (Figure 5's four by default; add mc for the MC-labelled PRM's
    progress, agentprm-final for AgentPRM's final-step score alone, rewarded like orm)"""
    iterations: int = 20
    """PPO iterations of EACH source"""
    tasks_per_iter: int = 16
    """training tasks per iteration"""
    samples: int = 4
    """episodes per task per iteration"""
    eval_every: int = 5
    """greedy evaluation every this many iterations"""
    eval_tasks: str | None = None
    """default: the study's test tasks"""
    lr: float | None = None
    """policy learning rate; default 3e-5 for a study of a preset made from scratch, else ppo's 1e-5
    (the paper's rate for pretrained models). Chosen on training rollouts only, by the mean KL to the
    SFT policy after one iteration on BabyAI: 0.005 at 1e-5 (it hardly moves), 0.78 at 1e-4 (far
    outside PPO's usual 0.01-0.1), 0.054 at 3e-5 (benchmarks/README.md, "PPO")"""
    kl_clamp: float | None = None
    """cap each token's k3 KL term in every source's loss (ppo --kl-clamp; default off, as the
    Figure 5 runs recorded so far)"""
    run_dir: Path | None = None
    """default runs/ppo-compare-<env>"""
    threads: int = 2
    """torch CPU threads"""
    seed: int = 0
    """seeds every run (the same for every source)"""

    def __post_init__(self) -> None:
        V.at_least(self, 1, "iterations", "tasks_per_iter", "samples", "eval_every", "threads")
        V.positive(self, "lr", "kl_clamp")
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown reward sources {unknown}: choose from {sorted(SOURCES)}")


def _study(path: Path) -> reproduce.Args:
    """The study's arguments (its args.json), so its scale and env are reused."""
    if not (path / "args.json").exists() or not (path / "sft" / "model" / "config.json").exists():
        raise SystemExit(
            f"--study {path}: not a finished `agentprm reproduce` run (no args.json or sft/model)"
        )
    return rundir.load_args(reproduce.Args, path / "args.json")


def figure5(curves: dict[str, list[dict]], out: Path, env: str) -> Path:
    """Greedy success and mean reward against PPO iterations, one line per reward source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in (
        (axes[0], "eval/success", "success rate"),
        (axes[1], "eval/reward", "mean reward"),
    ):
        for source, points in curves.items():
            ax.plot([p["iteration"] for p in points], [p[key] for p in points], marker="o", label=source)
        ax.set_xlabel("PPO iteration")
        ax.set_ylabel(f"greedy {label} (test)")
        ax.set_title(f"{env}: PPO with each reward")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def evaluation(stage: ppo.Args, iteration: int) -> list:
    """The greedy trajectories of a ppo run's evaluation after `iteration` iterations (0: its SFT
    start, else its last), in task order. A run made before ppo kept them is played greedily again:
    its start policy (--policy) for 0, else its final policy, which is what that evaluation played;
    they are kept where ppo would have kept them."""
    path = ppo.eval_path(stage.run_dir, iteration)
    if not path.exists():
        model, tok = load_policy_model(stage.policy if iteration == 0 else Path(stage.run_dir) / "model")
        tasks = parse_tasks(stage.env, stage.eval_tasks)
        ppo._evaluate(E.short_name(stage.env), tasks, model, tok, stage, path)
    return read_trajectories(path)  # ppo._evaluate writes them in task order


def stability(records: list[dict], spike: float = 0.5) -> dict:
    """How steadily one PPO run trained, from its metrics.jsonl records (Figure 5's claim is about
    stability, which the test curve alone shows only every --eval-every iterations):
    kl_median / kl_max: the mean per-token KL to the SFT policy over iterations (median, largest);
    spikes: iterations whose KL exceeds `spike`; k3_max: the largest single-token k3 term logged
    (train/kl_max; None for runs from before it was logged); worst_fall: the largest drop of greedy
    test success from one evaluation to the next (0 when it never fell).

    >>> recs = [{"iteration": 1, "train/kl": 0.05}, {"iteration": 2, "train/kl": 1.5, "train/kl_max": 34.0},
    ...         {"iteration": 3, "train/kl": 0.01}, {"iteration": 0, "eval/success": 0.6},
    ...         {"iteration": 5, "eval/success": 0.7}, {"iteration": 10, "eval/success": 0.55}]
    >>> stability(recs)
    {'kl_median': 0.05, 'kl_max': 1.5, 'spikes': 1, 'k3_max': 34.0, 'worst_fall': 0.15}
    """
    kl = sorted(r["train/kl"] for r in records if "train/kl" in r)
    k3 = [r["train/kl_max"] for r in records if "train/kl_max" in r]
    evals = [
        r["eval/success"]
        for r in sorted((r for r in records if "eval/success" in r), key=lambda r: r["iteration"])
    ]
    falls = [a - b for a, b in zip(evals[:-1], evals[1:], strict=True)]
    return {
        "kl_median": statistics.median(kl) if kl else None,
        "kl_max": kl[-1] if kl else None,
        "spikes": sum(x > spike for x in kl),
        "k3_max": max(k3) if k3 else None,
        "worst_fall": round(max([0.0, *falls]), 6),
    }


def _stability_lines(run: Path, sources) -> list[str]:
    def fmt(x) -> str:
        return "n/a" if x is None else f"{x:.3g}"

    lines = [
        "Stability per source (metrics.jsonl; k3 = the per-token KL term, n/a where the run predates its log):",
        "",
        "| source | KL to SFT, median over iterations | largest | iterations with KL > 0.5 | largest k3 of a token | worst fall of test success between evaluations |",
        "|---|---|---|---|---|---|",
    ]
    for source in sources:
        st = stability(list(jsonl.read(run / source / "metrics.jsonl")))
        lines.append(
            f"| {source} | {fmt(st['kl_median'])} | {fmt(st['kl_max'])} | {st['spikes']} | {fmt(st['k3_max'])} | "
            f"{st['worst_fall']:.3f} |"
        )
    return [*lines, ""]


def _paired_lines(args: Args, stages: dict) -> list[str]:
    """Each source's last evaluation against its SFT start and against the outcome alone (source
    env), task by task: paired differences with bootstrap intervals."""
    finals = {s: evaluation(stage, args.iterations) for s, stage in stages.items()}
    first = next(iter(stages))
    start = evaluation(stages[first], 0)  # every source starts from the same policy and seed
    base = finals.get("env")
    lines = [
        f"Last evaluation (iteration {args.iterations}) against the SFT start (iteration 0) and against "
        f"`env`, paired over the same {len(start)} test tasks (success; bootstrap 95% interval over "
        "tasks; 'ahead' / 'behind' when the interval excludes 0):",
        "",
        "| source | success | minus SFT start | 95% interval | verdict | minus env | 95% interval | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cells(trajs, ref) -> str:
        if ref is None or trajs is ref:
            return " | | "
        d = paired_difference([float(t.success) for t in trajs], [float(t.success) for t in ref])
        return f"{d.diff:+.3f} | [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}] | {d.verdict}"

    for source, trajs in finals.items():
        if [t.task for t in trajs] != [t.task for t in start]:
            raise SystemExit(f"{source}'s last evaluation played other tasks than its start: re-run it")
        rate = sum(t.success for t in trajs) / len(trajs)
        lines.append(f"| {source} | {rate:.3f} | {cells(trajs, start)} | {cells(trajs, base)} |")
    return [*lines, ""]


def main(args: Args) -> dict:
    study = _study(args.study)
    env = reproduce.env_name(study)
    sc = reproduce.scale(study)
    run = Path(args.run_dir or f"runs/ppo-compare-{env}")
    run.mkdir(parents=True, exist_ok=True)
    eval_tasks = args.eval_tasks or sc["test_tasks"]
    lr = args.lr or (3e-5 if study.model in PRESETS else ppo.Args.lr)
    stages = {}
    for source in args.sources:
        kind, rm = SOURCES[source]
        if rm is not None and not (args.study / f"prm-{rm}" / "model").exists():
            raise SystemExit(
                f"--study {args.study} has no prm-{rm}/model: train it (reproduce) or drop {source}"
            )
        stage = ppo.Args(
            policy=str(args.study / "sft" / "model"),
            env=env,
            reward=kind,
            prm=None if rm is None else args.study / f"prm-{rm}",
            tasks=sc["train_split"],
            eval_tasks=eval_tasks,
            iterations=args.iterations,
            tasks_per_iter=args.tasks_per_iter,
            samples=args.samples,
            eval_every=args.eval_every,
            lr=lr,
            kl_clamp=args.kl_clamp,
            max_rounds=sc["max_rounds"],
            max_prompt_tokens=sc["max_prompt_tokens"],
            run_dir=run / source,
            threads=args.threads,
            seed=args.seed,
        )
        stages[source] = stage
        rundir.run_stage(run, source, stage, ppo.main, "ppo-compare")
    curves = {
        s: [m for m in jsonl.read(run / s / "metrics.jsonl") if "eval/success" in m] for s in args.sources
    }
    fig = figure5(curves, run / f"figure5_{env}.png", env)
    lines = [
        f"# PPO with each reward source ({env})",
        "",
        f"From `{args.study}`'s SFT policy; each source {args.iterations} iterations x {args.tasks_per_iter} "
        f"tasks x {args.samples} episodes of `{sc['train_split']}`, policy lr {lr:g}, "
        + ("no KL cap" if args.kl_clamp is None else f"each token's KL term capped at {args.kl_clamp:g}")
        + f", the same seed; greedy evaluation on "
        f"`{eval_tasks}` every {args.eval_every} iterations.",
        "",
        "| source | " + " | ".join(f"it {p['iteration']}" for p in next(iter(curves.values()), [])) + " |",
        "|---|" + "---|" * len(next(iter(curves.values()), [])),
    ]
    for source, points in curves.items():
        cells = " | ".join(f"{p['eval/success']:.3f} / {p['eval/reward']:.3f}" for p in points)
        lines.append(f"| {source} | {cells} |")
    lines += ["", "Cells: greedy success rate / mean reward.", ""]
    lines += _paired_lines(args, stages)
    lines += _stability_lines(run, args.sources)
    lines += [f"![Figure 5]({fig.name})", ""]
    (run / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return curves
