"""Reports from run directories: markdown tables laid out like the paper's and PNG figures.

Reads what the recipes leave behind and never recomputes a number:
  evaluate runs  (results.json)        -> beam-search table (Table 1; math: Table 2), Best-of-N table,
                                          Figure 3 (math: Figure 6)
                                          (BoN vs N per reward model, oracle pass@N dashed),
                                          Figure 4 (the ablation without L_A), efficiency ratios
  train-prm runs (diagnostics.json)    -> held-out diagnostics per reward model
  collect / mc-label runs (metrics)    -> Table 3: labelling cost (policy tokens, env steps)
  agreement folders (mc_agreement.json) -> promise and progress of every reward model against the
                                          MC estimates, step by step, with the MC estimate's ceiling
"""

from __future__ import annotations

from pathlib import Path

import agentprm.envs as E
from agentprm import jsonl
from agentprm.evaluation import Rate, Results, efficiency_ratio


def _num(d: dict, key: str) -> float:
    """A stored metric, NaN where it is missing or was not measured (stored as null)."""
    value = d.get(key)
    return float("nan") if value is None else float(value)


def _or_na(value) -> str:
    return "n/a" if value is None else str(value)


def _metrics(path: Path) -> list[dict]:
    """Every metrics.jsonl record of a run ([] without the file; a torn last line, what a kill
    leaves, is skipped; any other bad line raises ValueError naming path:line)."""
    return jsonl.read(path / "metrics.jsonl")


def _last_metrics(path: Path) -> dict:
    """The last metrics.jsonl record with a ledger."""
    return next((x for x in reversed(_metrics(path)) if "ledger" in x), {})


def load_runs(paths) -> dict:
    """{'evaluate': [(path, results)], 'prm': [(path, args, diagnostics)], 'cost': [(path, kind, metrics)],
    'agreement': [(path, {split: agentprm.recipes.mc_agreement.agreement's result})]}."""
    out: dict = {"evaluate": [], "prm": [], "cost": [], "agreement": []}
    for p in map(Path, paths):
        args = jsonl.read_object(p / "args.json") if (p / "args.json").exists() else {}
        metrics = _last_metrics(p)
        if (p / "results.json").exists():
            out["evaluate"].append((p, Results.load(p / "results.json")))
        elif (p / "diagnostics.json").exists():
            out["prm"].append((p, args, jsonl.read_object(p / "diagnostics.json")))
        elif (p / "mc_agreement.json").exists():
            out["agreement"].append((p, jsonl.read_object(p / "mc_agreement.json")))
        elif metrics:
            kind = "mc-label" if "rollouts" in metrics else "rollouts"
            out["cost"].append((p, kind, metrics))
        else:
            raise ValueError(
                f"{p}: not a run directory agentprm report can read (no results.json, "
                "diagnostics.json, mc_agreement.json or metrics with a ledger); give evaluate, "
                "train-prm, collect or mc-label run folders"
            )
    return out


def _ci(r: Rate, key: str) -> str:
    """'0.500 [0.400, 0.600]': a rate's key ("success" or "reward") with its 95% interval."""
    lo, hi = getattr(r, f"{key}_ci")
    return f"{getattr(r, key):.3f} [{lo:.3f}, {hi:.3f}]"


def paper_layouts(env: str) -> tuple[str, str]:
    """(the paper's beam-search table, its Best-of-N figure) for an env: math has its own (Section 5.3).

    >>> paper_layouts("babyai"), paper_layouts("gsm8k")
    (('Table 1', 'Figure 3'), ('Table 2', 'Figure 6'))
    """
    return ("Table 2", "Figure 6") if E.family(env) in E.MATH_ENVS else ("Table 1", "Figure 3")


def evaluate_section(path: Path, results: Results) -> list[str]:
    ns, top = results.ns, results.top
    lines = [
        f"## {results.env}: {results.tasks} test tasks ({path})",
        "",
        f"Environment `{results.env}`: {E.mode_note(results.env)}.",
        "",
        f"Policy `{results.policy}`; Best-of-N pool of {results.pool} samples per task. "
        "Success rate and mean reward, each with a 95% confidence interval over tasks.",
        "",
        f"### Beam search and baselines (the paper's {paper_layouts(results.env)[0]} layout)",
        "",
        "| method | success rate | mean reward |",
        "|---|---|---|",
        f"| greedy (SFT) | {_ci(results.greedy, 'success')} | {_ci(results.greedy, 'reward')} |",
        f"| sampling, Best-of-1 (pool mean) | {_ci(results.sample, 'success')} | {_ci(results.sample, 'reward')} |",
    ]
    for name, beams in results.beam.items():
        for beam, r in beams.items():
            lines.append(f"| {name} beam @{beam} | {_ci(r, 'success')} | {_ci(r, 'reward')} |")
    for name in results.bon:
        r = results.bon[name]["last"][top]
        lines.append(f"| {name} Best-of-{top} | {_ci(r, 'success')} | {_ci(r, 'reward')} |")
    o = results.oracle[top]
    lines += [f"| oracle pass@{top} (ceiling) | {_ci(o, 'success')} | {_ci(o, 'reward')} |", ""]
    for key, label in (("success", "success rate"), ("reward", "mean reward")):
        lines += [
            f"### Best-of-N, {label} (final-step score; min / mean in results.json)",
            "",
            "| reward model | " + " | ".join(f"N={n}" for n in ns) + " |",
            "|---|" + "---|" * len(ns),
        ]
        for name, curves in results.bon.items():
            lines.append(
                f"| {name} | " + " | ".join(f"{getattr(curves['last'][n], key):.3f}" for n in ns) + " |"
            )
        lines.append("| oracle | " + " | ".join(f"{getattr(results.oracle[n], key):.3f}" for n in ns) + " |")
        lines.append("")
    method, baselines = results.method_and_baselines()
    if method:
        lines += [
            '### Compute efficiency of Best-of-N (the paper\'s "8x")',
            "",
            "N at which the baseline reaches its best score (N <= pool) divided by the smallest N at "
            f"which {method} reaches that score; 'never' = it does not within the pool.",
            "",
            "| baseline | success rate | mean reward |",
            "|---|---|---|",
        ]
        for b in baselines:
            cells = []
            for key in ("success", "reward"):
                curve = [getattr(results.bon[x]["last"][n], key) for x in (b, method) for n in ns]
                ratio = efficiency_ratio(ns, curve[: len(ns)], curve[len(ns) :])
                cells.append("never" if ratio is None else f"{ratio:.2f}x")
            lines.append(f"| {b} | {cells[0]} | {cells[1]} |")
        lines.append("")
    lines += training_lines(results) + comparison_lines(results)
    lines += [
        "### Compute spent (ledgers)",
        "",
        "| stage | policy tokens | env steps | PRM tokens |",
        "|---|---|---|---|",
    ]
    for stage, led in results.ledgers.items():
        lines.append(
            f"| {stage} | {led.get('policy_tokens', '')} | {led.get('env_steps', '')} | "
            f"{led.get('prm_tokens', '')} |"
        )
    for name, beams in results.beam.items():
        for beam, r in beams.items():
            led = r.ledger or {}
            lines.append(
                f"| beam {name} @{beam} | {led.get('policy_tokens')} | {led.get('env_steps')} | "
                f"{led.get('prm_tokens')} |"
            )
    return lines + [""]


def training_lines(results: Results) -> list[str]:
    """What each reward model was trained with: labels, beta, optimizer steps, training tokens."""
    rms = results.reward_models
    if not rms:
        return []
    lines = [
        "### Reward models compared",
        "",
        "| reward model | labels | beta | optimizer steps | training tokens |",
        "|---|---|---|---|---|",
    ]
    for name, i in rms.items():
        form = f" ({i.td_form})" if i.labels == "td" and i.td_form not in (None, "standard") else ""
        lines.append(
            f"| {name} | {i.labels}{form} | {i.beta} | {_or_na(i.steps)} | {_or_na(i.train_tokens)} |"
        )
    return lines + [""]


def verdicts(results: Results) -> list[str]:
    """One line per baseline: is AgentPRM ahead of it, level or behind (paired bootstrap over tasks)?"""
    comp = results.comparison
    out = []
    for baseline, settings in comp.baselines.items():
        parts = []
        for setting, keys in settings.items():
            c = keys["success"]
            parts.append(f"{setting} {c.verdict} ({c.diff:+.3f} [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}])")
        out.append(f"{comp.method} vs {baseline}: " + "; ".join(parts))
    return out


def comparison_lines(results: Results) -> list[str]:
    comp = results.comparison
    if not comp.baselines:
        return []
    return [
        f"### Is {comp.method} ahead?",
        "",
        "Success-rate difference to each baseline on the same tasks with a paired bootstrap 95% "
        "interval: 'ahead' / 'behind' when the interval excludes 0, else 'level'.",
        "",
        *[f"- {v}" for v in verdicts(results)],
        "",
    ]


def summary_table(results: Results) -> list[str]:
    """The demo's closing summary: every method with 95% intervals, then the verdicts."""
    top = results.top
    rows = [("greedy (SFT)", results.greedy), ("sampling (Best-of-1)", results.sample)]
    for name, beams in results.beam.items():
        rows += [(f"{name} beam @{b}", r) for b, r in beams.items()]
    rows += [(f"{name} Best-of-{top}", c["last"][top]) for name, c in results.bon.items()]
    rows.append((f"oracle pass@{top}", results.oracle[top]))
    width = max(len(label) for label, _ in rows)
    lines = [f"environment {results.env}: {E.mode_note(results.env)}", ""]
    lines += [f"{'method'.ljust(width)}  success rate [95% CI]   mean reward [95% CI]"]
    lines += [f"{label.ljust(width)}  {_ci(r, 'success'):<23} {_ci(r, 'reward')}" for label, r in rows]
    lines += [""] + [
        f"{n}: {i.labels} labels, beta {i.beta}, {_or_na(i.steps)} optimizer "
        f"steps, {_or_na(i.train_tokens)} training tokens"
        for n, i in results.reward_models.items()
    ]
    return lines + [""] + verdicts(results)


def figure3(results: Results, out: Path) -> Path:
    """Best-of-N score vs N per reward model (final-step score), oracle pass@N dashed, greedy dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = results.ns
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "success", "success rate"), (axes[1], "reward", "mean reward")):
        for name, curves in results.bon.items():
            ax.plot(ns, [getattr(curves["last"][n], key) for n in ns], marker="o", label=name)
        ax.plot(ns, [getattr(results.oracle[n], key) for n in ns], "k--", label="oracle pass@N")
        ax.axhline(getattr(results.greedy, key), color="grey", linestyle=":", label="greedy")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N (samples per task)")
        ax.set_ylabel(label)
        ax.set_title(f"{results.env}: Best-of-N {label}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def figure4(results: Results, out: Path) -> Path | None:
    """The ablation: AgentPRM with and without L_A (Best-of-N curves and beam-search bars)."""
    rms = results.reward_models
    td = [n for n, i in rms.items() if i.labels == "td"]
    if len(td) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = results.ns
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in td:
        beta = rms[name].beta
        axes[0].plot(
            ns,
            [results.bon[name]["last"][n].reward for n in ns],
            marker="o",
            label=f"{name} (beta={beta})",
        )
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("N")
    axes[0].set_ylabel("mean reward")
    axes[0].set_title("Best-of-N")
    axes[0].legend(fontsize=8)
    beams = sorted({b for n in td for b in results.beam.get(n, {})})
    width = 0.8 / len(td)
    for k, name in enumerate(td):
        axes[1].bar(
            [i + k * width for i in range(len(beams))],
            [results.beam[name][b].reward for b in beams],
            width,
            label=name,
        )
    axes[1].set_xticks([i + width * (len(td) - 1) / 2 for i in range(len(beams))], [f"@{b}" for b in beams])
    axes[1].set_ylabel("mean reward")
    axes[1].set_title("beam search")
    fig.suptitle(f"{results.env}: ablation without L_A")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def prm_section(prms) -> list[str]:
    lines = [
        "## Reward models: held-out diagnostics",
        "",
        "Sibling accuracy: pairs of steps with the same state and different actions whose trajectories "
        "ended differently, ranked like their outcomes (0.5 = chance).",
        "",
        "Pairs differ in reward; the 'success' columns keep success-vs-failure pairs only.",
        "",
        "| run | labels | beta | held-out trajectories | held-out L_Q | held-out L_A | sibling accuracy (pairs) | final-step accuracy | sibling accuracy, success (pairs) | final-step accuracy, success | Spearman vs MC (states) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p, args, d in prms:
        lines.append(
            f"| {p.name} | {args.get('labels')} | {args.get('beta')} | {d.get('trajectories')} | "
            f"{_num(d, 'heldout/loss_q'):.4f} | {_num(d, 'heldout/loss_a'):.4f} | "
            f"{_num(d, 'heldout/sibling_accuracy'):.3f} ({d.get('heldout/sibling_pairs')}) | "
            f"{_num(d, 'heldout/final_step_accuracy'):.3f} | "
            f"{_num(d, 'heldout/sibling_accuracy_success'):.3f} "
            f"({d.get('heldout/sibling_pairs_success', 0)}) | "
            f"{_num(d, 'heldout/final_step_accuracy_success'):.3f} | "
            f"{_num(d, 'heldout/mc_spearman'):.3f} ({d.get('heldout/mc_states', 0)}) |"
        )
    return lines + [""]


def _interval(x) -> str:
    """(point, low, high) -> '0.123 [0.010, 0.230]'; n/a where the point is nan or missing."""
    point, low, high = (float("nan") if v is None else float(v) for v in x)
    if point != point:
        return "n/a"
    return f"{point:.3f} [{low:.3f}, {high:.3f}]" if low == low else f"{point:.3f}"


def agreement_section(agreement: dict) -> list[str]:
    """Promise and progress of each reward model against MC estimates, per split of PRM tasks."""
    titles = {
        "heldout": "the held-out PRM tasks (no model trained on them)",
        "train": "the training PRM tasks (in-sample: does a model fit steps at all?)",
    }
    lines = [
        "## Reward models against Monte-Carlo estimates, step by step",
        "",
        "On the MC seed trajectories: Spearman of the promise M(s_t, a_t) with the MC estimate of Q "
        "(mean outcome of the N_mc rollouts after the step), Spearman of the progress M_t - M_{t-1} with "
        "the MC progress (t >= 1), and how often the progress has the MC progress's sign (MC progress 0 "
        "left out); 95% bootstrap intervals over trajectories. The first row is the MC estimate against "
        "itself (first half of each step's rollouts vs the second half); sqrt of its Spearman-Brown "
        "reliability is about the most any model, even the true Q, can reach against it.",
        "",
    ]
    for split, a in agreement.items():
        lines += [
            f"On {titles.get(split, split)}: {a['seeds']} seed trajectories, {a['steps']} steps.",
            "",
            "| reward model | promise: Spearman M vs MC | progress: Spearman vs MC progress | progress sign agrees |",
            "|---|---|---|---|",
        ]
        for row in a["rows"]:
            lines.append(
                f"| {row['name']} | {_interval(row['promise'])} | {_interval(row['progress'])} | "
                f"{_interval(row['sign'])} |"
            )
        rel = a["reliability"]
        ceil = {
            k: float(v) ** 0.5 if v is not None and v == v and v > 0 else float("nan") for k, v in rel.items()
        }
        lines += [
            "",
            f"MC split-half reliability: promise {_interval((rel['promise'], None, None))} (ceiling "
            f"{_interval((ceil['promise'], None, None))}), progress {_interval((rel['progress'], None, None))} "
            f"(ceiling {_interval((ceil['progress'], None, None))}).",
            "",
        ]
    return lines


def cost_section(costs) -> list[str]:
    """Table 3's Tokens column: what each labelling scheme costs beyond the model's own training."""
    lines = [
        "## Labelling cost (the paper's Table 3, Tokens column)",
        "",
        "TD(lambda)+GAE labels are computed from the PRM's own predictions inside training: they cost "
        "only the rollouts. Monte Carlo labels cost the rollouts plus N_mc rollouts from every step.",
        "",
        "| run | kind | episodes | policy tokens | prompt tokens | env steps | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for p, kind, m in costs:
        led = m["ledger"]
        lines.append(
            f"| {p.name} | {kind} | {led['episodes']} | {led['policy_tokens']} | {led['prompt_tokens']} | "
            f"{led['env_steps']} | {led['seconds']:.0f} |"
        )
    return lines + [""]


def table3_section(results: Results, costs) -> list[str]:
    """The paper's Table 3: what TD and MC labels cost (policy tokens, env steps) and what Best-of-N
    and beam search reach with the reward model trained on each. TD costs its N_TD rollouts per task;
    MC its seed trajectories (one per task, taken from those rollouts, counted pro rata) plus its
    N_mc rollouts after every step."""
    rollouts = next((m for _, kind, m in costs if kind == "rollouts"), None)
    mc = next((m for _, kind, m in costs if kind == "mc-label"), None)
    td_name, _ = results.method_and_baselines()
    mc_name = next((n for n, i in results.reward_models.items() if i.labels == "mc"), None)
    if rollouts is None or mc is None or td_name is None or mc_name is None:
        return []
    top = results.top
    beams = sorted(results.beam.get(td_name, {}), key=lambda b: int(b.split("x")[0]))
    td_led, mc_led = rollouts["ledger"], mc["ledger"]
    # MC's seed trajectories (one per task) are a share of the rollouts: their cost pro rata
    share = mc.get("seeds", 0) / max(1, rollouts.get("trajectories", td_led["episodes"]))
    rows = [
        (f"TD(lambda)+GAE ({td_name})", td_name, td_led["policy_tokens"], td_led["env_steps"]),
        (
            f"Monte Carlo ({mc_name})",
            mc_name,
            round(share * td_led["policy_tokens"]) + mc_led["policy_tokens"],
            round(share * td_led["env_steps"]) + mc_led["env_steps"],
        ),
    ]
    lines = [
        "## Table 3: labelling cost and what it buys",
        "",
        "| labels | policy tokens | env steps | cost vs TD (tokens) | "
        + f"Best-of-{top} success | "
        + " | ".join(f"beam @{b} success" for b in beams)
        + " |",
        "|---" * (5 + len(beams)) + "|",
    ]
    for label, name, tokens, steps in rows:
        bon = results.bon[name]["last"][top]
        beam = " | ".join(_ci(results.beam[name][b], "success") for b in beams)
        lines.append(
            f"| {label} | {tokens} | {steps} | {tokens / rows[0][2]:.2f}x | {_ci(bon, 'success')} | {beam} |"
        )
    return lines + [""]


def curves_section(prms, out: Path) -> list[str]:
    """Training curves of reward models trained with --eval-every: held-out loss against optimizer
    steps (training_curves.png) and the step whose weights each kept (--keep best: the lowest
    held-out loss, the first on ties as train-prm keeps it; --keep last: the last step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for p, args, _ in prms:
        by_step = {m["step"]: m for m in _metrics(p) if "heldout/loss" in m}  # a resumed step: the last
        if by_step:
            curves[p.name] = (args, dict(sorted(by_step.items())))
    if not curves:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, (_, c) in curves.items():
        axes[0].plot(list(c), [m["heldout/loss"] for m in c.values()], marker=".", label=name)
        axes[1].plot(list(c), [m["heldout/sibling_accuracy"] for m in c.values()], marker=".", label=name)
    axes[0].set_title("held-out loss (each model's own objective)")
    axes[1].set_title("held-out sibling accuracy (not used for selection)")
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=120)
    plt.close(fig)
    lines = [
        "## Training curves",
        "",
        "Held-out loss of each reward model every few optimizer steps, and the step whose weights were "
        "evaluated (`--keep best`: the lowest held-out loss). A curve still falling at its last step means "
        "more steps could help that model.",
        "",
        "| reward model | steps | kept step | held-out loss: first, kept, last | sibling accuracy at kept |",
        "|---|---|---|---|---|",
    ]
    for name, (args, c) in curves.items():
        kept = min(c, key=lambda k: c[k]["heldout/loss"]) if args.get("keep") == "best" else max(c)
        first, last = next(iter(c.values())), c[max(c)]
        lines.append(
            f"| {name} | {max(c)} | {kept} | {first['heldout/loss']:.4f}, {c[kept]['heldout/loss']:.4f}, "
            f"{last['heldout/loss']:.4f} | {_num(c[kept], 'heldout/sibling_accuracy'):.3f} |"
        )
    return lines + ["", "![training curves](training_curves.png)", ""]


def write(paths, out: Path, preface: list[str] | None = None) -> Path:
    """report.md (+ figure3_<env>.png, figure4_<env>.png, training_curves.png) in `out` from the
    given run folders; `preface` (markdown lines) goes first, e.g. the protocol of a study."""
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(paths)
    lines = ["# agentprm report", "", *(preface or [])]
    for path, results in runs["evaluate"]:
        lines += evaluate_section(path, results)
        f3 = figure3(results, out / f"figure3_{results.env}.png")
        lines += [f"![{paper_layouts(results.env)[1]}]({f3.name})", ""]
        f4 = figure4(results, out / f"figure4_{results.env}.png")
        if f4:
            lines += [f"![Figure 4]({f4.name})", ""]
    if runs["prm"]:
        lines += prm_section(runs["prm"])
        lines += curves_section(runs["prm"], out)
    for _, agreement in runs["agreement"]:
        lines += agreement_section(agreement)
    if runs["cost"]:
        lines += cost_section(runs["cost"])
        for _, results in runs["evaluate"]:
            lines += table3_section(results, runs["cost"])
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
