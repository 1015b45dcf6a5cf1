"""The report of ``quicker_better.py``: tables and figures from the stored per-run summaries.

Every number comes from :mod:`npgbook.experiments.quicker_better` (the same functions chapter 7's
section and the claim ``converges_quicker_and_better`` call).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from npgbook.experiments import quicker_better as qb  # noqa: E402

LABEL = {
    "vpg": "vanilla PG",
    "kl-vpg": "KL-normalized vanilla",
    "npg": "NPG",
    "trpo": "TRPO",
    "adam-vpg": "Adam PG",
    "ppo": "PPO",
}
COLOR = qb.COLORS
METRIC_NAME = {"final": "final score", "auc": "area under the curve", "quick": "quickness 1 - s/S"}


def _ci(x: tuple[float, float, float], digits: int = 2) -> str:
    p, lo, hi = x
    return f"{p:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _median(xs: list[float | None]) -> str:
    vals = [x for x in xs if x is not None]
    return "—" if len(vals) < len(xs) / 2 else f"{np.median([x if x is not None else np.inf for x in xs]):,.0f}"


def _median_s(xs: list[float | None]) -> str:
    vals = [x for x in xs if x is not None]
    return "—" if len(vals) < len(xs) / 2 else f"{np.median([x if x is not None else np.inf for x in xs]):.1f}"


def render(stored: dict[str, Any], here: Path) -> str:
    methods, tasks = list(qb.METHODS), list(qb.TASKS)
    ev, tuning, chosen, meta = stored["evaluation"], stored["tuning"], stored["chosen"], stored["meta"]
    agg = qb.aggregate(ev, methods, tasks)
    outcome, calls = qb.verdict({m: agg[m]["poi_npg"] for m in ("final", "quick")})
    figdir = here / "results" / "quicker_better"
    figdir.mkdir(parents=True, exist_ok=True)
    figures = _figures(ev, agg, methods, tasks, figdir)
    total_runs = len(ev) + len(tuning) + len(stored.get("beyond_grid", []))
    main_phases = ("tuning", "beyond_grid", "evaluation")
    sweep_seconds = sum(e["seconds"] for e in meta["sweep_log"]
                        if e["phase"] in main_phases and "superseded" not in e.get("note", ""))
    follow_runs = sum(len(stored.get("one_step_adam", {}).get(k, [])) for k in ("tuning", "evaluation"))
    phases = ", ".join(
        f"{e['phase']} {e['runs']} runs {e['seconds'] / 60:.1f} min" + (f" ({e['note']})" if "note" in e else "")
        for e in meta["sweep_log"]
    )
    task_text = ", ".join(
        f"{k} ({t['total_steps']:,} steps, solved at {t['threshold']:g})" for k, t in meta["tasks"].items()
    )
    lines = [
        "# Does NPG converge quicker and better? Six update rules, tuned alike, 10 seeds",
        "",
        f"Made by `{meta['command']}` at commit {meta['commit']} on {meta['date']} "
        f"({meta['machine']}, torch {meta['torch']}, rliable {meta['rliable']}): "
        f"{total_runs} runs in {sweep_seconds / 60:.0f} min of wall time, and a follow-up of {follow_runs} runs "
        f"(all passes: {phases}). "
        "Raw per-run results: `results/quicker_better/{tuning,evaluation}_runs.jsonl.gz` (one JSON "
        "object per run: config, every episode's return and end step/second, every update's realized KL); "
        "per-run summaries: `npgbook/experiments/data/quicker_better.json`.",
        "",
        "## Setup",
        "",
        "- **One loop** (`npgbook.rl.Trainer`): tanh MLP policy 32-32, 8 envs × 128 steps = 1,024 steps per "
        "update, GAE(γ = 0.99, λ = 0.95) with a learned value baseline (64-64, Adam, 10 epochs), advantages "
        "normalized; float32. Only the update differs.",
        "- **Methods**: vanilla PG θ += α ĝ; KL-normalized vanilla step θ += √(2δ / ĝᵀF̂ĝ) ĝ (NPG's step "
        "length rule without the metric F⁻¹); NPG (Algorithm 1, 10 CG iterations, damping 0.01); TRPO "
        "(NPG's step + backtracking line search); Adam PG (plain importance-weighted surrogate) and PPO "
        "(clipped surrogate, ε = 0.2), both 4 epochs × 4 minibatches of 256, Adam moments kept across updates.",
        f"- **Tasks**: {task_text}. "
        "Normalized score: 0 = worst return (CartPole 0, Acrobot −500), 1 = gymnasium's solved threshold. "
        "A run's learning curve is the mean return of its last 20 training episodes, read every 5,000 steps.",
        "- **Scores per run**: *final* = the curve's last point; *AUC* = the curve's mean (rewards both); "
        "*quick* = 1 − s/S for a run that first reaches the threshold after s of its S steps, 0 if never.",
        f"- **Tuning**: each method's step size over six values, on tuning seeds {meta['tuning_seeds'][0]}–"
        f"{meta['tuning_seeds'][-1]} ({len(meta['tuning_seeds'])} seeds, disjoint from the evaluation seeds "
        f"{meta['eval_seeds'][0]}–{meta['eval_seeds'][-1]}); the value with the highest mean AUC is chosen, per task.",
        "- **Statistics**: rliable — interquartile mean (IQM) and optimality gap over all runs of both tasks, "
        "probability of improvement P(NPG > X), each with a 95 % stratified-bootstrap interval (2,000 "
        "resamples of runs within each task); performance profiles; IQM sample-efficiency curves.",
        "",
        "## Verdict",
        "",
        f"**{outcome}** — the claim \"NPG converges quicker and better than its first-order counterparts\" "
        "(vanilla PG at a tuned rate and Adam PG), decided by P(NPG > X) on *final* (better) and *quick* "
        "(quicker): a win when the 95 % interval lies above ½, a loss when below, else a tie.",
        "",
        "| against | better (final) | quicker |",
        "|---|---|---|",
    ]
    for o, row in calls.items():
        lines.append(f"| {LABEL[o]} | {row['better']}: P = {_ci(agg['final']['poi_npg'][o])} | "
                     f"{row['quicker']}: P = {_ci(agg['quick']['poi_npg'][o])} |")
    lines += ["", "## Tuning grids and the chosen values (mean over the tuning seeds; chosen in bold)", ""]
    table = qb.tuning_table(tuning)
    n_grid = max(len(v) for v in qb.GRIDS.values())
    for task in tasks:
        lines += [f"**{task}** — mean AUC (mean final) per step size", "",
                  "| method | parameter | " + " | ".join(f"value {i + 1}" for i in range(n_grid)) + " |",
                  "|---|---|" + "---|" * n_grid]
        for m in methods:
            rows = [r for r in table if r["task"] == task and r["method"] == m]
            cells = []
            for r in rows:
                text = f"{r['step_size']:g}: {r['auc_mean']:.2f} ({r['final_mean']:.2f})"
                cells.append(f"**{text}**" if r["step_size"] == chosen[task][m] else text)
            lines.append(f"| {LABEL[m]} | `{qb.STEP_SIZE[m]}` | " + " | ".join(cells) + " |")
        lines.append("")
    beyond = stored.get("beyond_grid", [])
    if beyond:
        lines += ["**Beyond the grid.** Where a method chose the top of its grid, one more value at the grid's "
                  "spacing was trained on the tuning seeds (reported, not chosen from; it is outside the equal "
                  "budget):", "", "| task | method | value | mean AUC (mean final) | per seed AUC | chosen value's mean AUC |",
                  "|---|---|---|---|---|---|"]
        for key in sorted({(r["task"], r["method"], r["step_size"]) for r in beyond}):
            rs = [r for r in beyond if (r["task"], r["method"], r["step_size"]) == key]
            per_seed = ", ".join(f"{r['auc']:.2f}" for r in rs)
            mine = next(x for x in table if (x["task"], x["method"], x["step_size"]) == (key[0], key[1], chosen[key[0]][key[1]]))
            lines.append(f"| {key[0]} | {LABEL[key[1]]} | {key[2]:g} | {np.mean([r['auc'] for r in rs]):.2f} "
                         f"({np.mean([r['final'] for r in rs]):.2f}) | {per_seed} | "
                         f"{mine['auc_mean']:.2f} |")
        lines.append("")
    lines += ["## Per task (10 evaluation seeds each)", "",
              "| task | method | solved | median steps to threshold | median seconds to threshold | "
              "mean final return | median realized KL per update | 90th pct KL | skipped updates |",
              "|---|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        t = qb.TASKS[task]
        for m in methods:
            rs = [r for r in ev if r["task"] == task and r["method"] == m]
            final_return = np.mean([r["final"] for r in rs]) * (t.threshold - t.low) + t.low
            solved = sum(r["steps_to_threshold"] is not None for r in rs)
            lines.append(
                f"| {task} | {LABEL[m]} | {solved}/{len(rs)} | {_median([r['steps_to_threshold'] for r in rs])} | "
                f"{_median_s([r['seconds_to_threshold'] for r in rs])} | {final_return:.1f} | "
                f"{np.median([r['kl_median'] for r in rs]):.4f} | {np.median([r['kl_p90'] for r in rs]):.4f} | "
                f"{sum(r['skipped_updates'] for r in rs)} |"
            )
    skipped = [r for r in ev if r["skipped_updates"]]
    lines += ["", "Skipped updates: " + ("none." if not skipped else ", ".join(
        f"{LABEL[r['method']]} on {r['task']} seed {r['seed']}: {r['skipped_updates']}" for r in skipped
    ) +
        ". Every one was refused by conjugate gradient because the sampled Fisher operator was not positive "
        "definite: rerun with warnings recorded (`TrainConfig(algo=..., env_id='Acrobot-v1', seed=..., delta=0.2)`), "
        "the policy's entropy on the batch states was 0 in float32 at each skipped update — the large budget "
        "had made the policy deterministic there, so its Fisher matrix vanished (chapter 6's brittleness). "
        "The parameters were kept; no run has a NaN weight.")]
    lines += ["", "A median is '—' when fewer than half of the runs reached the threshold. Seconds are wall time "
              f"with {meta['workers']} runs in parallel on the machine's cores, the same for every method.", ""]
    lines += ["## Aggregates over both tasks (95 % stratified-bootstrap intervals)", "",
              "| method | IQM final | optimality gap final | IQM AUC | IQM quick | P(NPG > X) final | "
              "P(NPG > X) AUC | P(NPG > X) quick |", "|---|---|---|---|---|---|---|---|"]
    for m in methods:
        poi = [_ci(agg[k]["poi_npg"][m]) if m != "npg" else "—" for k in ("final", "auc", "quick")]
        lines.append(f"| {LABEL[m]} | {_ci(agg['final']['iqm'][m])} | {_ci(agg['final']['optimality_gap'][m])} | "
                     f"{_ci(agg['auc']['iqm'][m])} | {_ci(agg['quick']['iqm'][m])} | " + " | ".join(poi) + " |")
    lines += ["", "## Per task: NPG's probability of improvement (95 % bootstrap intervals over runs)", "",
              "| task | X | P(NPG > X) final | P(NPG > X) AUC | P(NPG > X) quick |", "|---|---|---|---|---|"]
    for task in tasks:
        per = {k: qb.probability_of_improvement(qb.score_matrix(ev, k, methods, [task]),
                                                [m for m in methods if m != "npg"]) for k in ("final", "auc", "quick")}
        for o in (m for m in methods if m != "npg"):
            lines.append(f"| {task} | {LABEL[o]} | " + " | ".join(_ci(per[k][o]) for k in ("final", "auc", "quick")) + " |")
    follow = stored.get("one_step_adam")
    if follow:
        fev = follow["evaluation"]
        both = list(ev) + list(fev)
        lines += ["", "## Follow-up: Adam PG with one step per batch", "",
                  "Adam PG and PPO take 16 minibatch steps from each batch. To separate that reuse from Adam's "
                  "per-coordinate scaling, Adam PG with **one** step per batch (1 epoch, one minibatch of the "
                  "whole batch) was tuned over the same six rates on the same tuning seeds and run on the same "
                  "evaluation seeds (outside the six methods and the claim). Chosen rate: "
                  + ", ".join(f"{t} {follow['chosen'][t]['adam-vpg-1x1']:g}" for t in tasks) + ".", "",
                  "| task | method | solved | median steps to threshold | mean final return |", "|---|---|---|---|---|"]
        for task in tasks:
            t = qb.TASKS[task]
            for m in ("npg", "adam-vpg", "adam-vpg-1x1"):
                rs = [r for r in both if r["task"] == task and r["method"] == m]
                solved = sum(r["steps_to_threshold"] is not None for r in rs)
                final_return = np.mean([r["final"] for r in rs]) * (t.threshold - t.low) + t.low
                name = LABEL.get(m, "Adam PG, 1 step per batch")
                lines.append(f"| {task} | {name} | {solved}/{len(rs)} | "
                             f"{_median([r['steps_to_threshold'] for r in rs])} | {final_return:.1f} |")
        lines += ["", "| P(X > Adam PG, 1 step per batch), both tasks | final | quick |", "|---|---|---|"]
        for o in ("npg", "adam-vpg", "ppo"):
            cells = []
            for k in ("final", "quick"):
                sm = qb.score_matrix(both, k, [o, "adam-vpg-1x1"], tasks)
                cells.append(_ci(qb.probability_of_improvement(sm, ["adam-vpg-1x1"], of=o)["adam-vpg-1x1"]))
            lines.append(f"| {LABEL[o]} | " + " | ".join(cells) + " |")
    lines += ["", "## Figures", ""] + [f"![{name}](results/quicker_better/{f})" for name, f in figures] + [""]
    return "\n".join(lines)


def _figures(ev, agg, methods, tasks, figdir: Path) -> list[tuple[str, str]]:
    out = []
    # sample efficiency: per task and aggregated
    curves = qb.score_matrix(ev, "curve", methods, tasks)
    fig, axes = plt.subplots(1, len(tasks) + 1, figsize=(4.2 * (len(tasks) + 1), 3.4), sharey=True)
    steps = qb.checkpoints(qb.TASKS[tasks[0]]) / 1000
    for j, ax in enumerate(axes):
        sub = {m: (c[:, j : j + 1, :] if j < len(tasks) else c) for m, c in curves.items()}
        iqm = qb.iqm_curves(sub)
        for m in methods:
            point, ci = iqm[m]
            ax.plot(steps, point, color=COLOR[m], label=LABEL[m])
            ax.fill_between(steps, ci[0], ci[1], color=COLOR[m], alpha=0.2)
        ax.set_title(tasks[j] if j < len(tasks) else "both tasks")
        ax.set_xlabel("environment steps (thousands)")
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
    axes[0].set_ylabel("IQM normalized score (1 = solved)")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(figdir / "sample_efficiency.png", dpi=110)
    plt.close(fig)
    out.append(("IQM sample-efficiency curves with 95% bands", "sample_efficiency.png"))
    # interval estimates and probability of improvement
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    panels = [("final", "iqm", "IQM final"), ("final", "optimality_gap", "optimality gap final"),
              ("auc", "iqm", "IQM AUC"), ("quick", "iqm", "IQM quick")]
    for ax, (metric, stat, title) in zip(axes, panels):
        for i, m in enumerate(methods):
            p, lo, hi = agg[metric][stat][m]
            ax.plot([lo, hi], [i, i], color=COLOR[m], lw=5, alpha=0.6)
            ax.plot([p], [i], "k|", ms=12)
        ax.set_yticks(range(len(methods)), [LABEL[m] for m in methods] if ax is axes[0] else [])
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(figdir / "aggregates.png", dpi=110)
    plt.close(fig)
    out.append(("IQM and optimality gap with 95% intervals", "aggregates.png"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.0), sharey=True)
    others = [m for m in methods if m != "npg"]
    for ax, metric in zip(axes, ("final", "auc", "quick")):
        for i, o in enumerate(others):
            p, lo, hi = agg[metric]["poi_npg"][o]
            ax.plot([lo, hi], [i, i], color=COLOR[o], lw=5, alpha=0.6)
            ax.plot([p], [i], "k|", ms=12)
        ax.axvline(0.5, color="k", lw=0.6, ls=":")
        ax.set_xlim(0, 1)
        ax.set_title(f"P(NPG > X), {METRIC_NAME[metric]}")
    axes[0].set_yticks(range(len(others)), [LABEL[o] for o in others])
    fig.tight_layout()
    fig.savefig(figdir / "probability_of_improvement.png", dpi=110)
    plt.close(fig)
    out.append(("probability of improvement of NPG over each method", "probability_of_improvement.png"))
    # performance profiles of the final and AUC scores
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, metric in zip(axes, ("final", "auc")):
        taus = np.linspace(0.0, 1.1, 45)
        prof = qb.performance_profile(qb.score_matrix(ev, metric, methods, tasks), taus)
        for m in methods:
            point, ci = prof[m]
            ax.plot(taus, point, color=COLOR[m], label=LABEL[m])
            ax.fill_between(taus, ci[0], ci[1], color=COLOR[m], alpha=0.15)
        ax.set_xlabel("normalized score τ")
        ax.set_title(f"performance profile, {METRIC_NAME[metric]}")
    axes[0].set_ylabel("fraction of runs with score > τ")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figdir / "performance_profiles.png", dpi=110)
    plt.close(fig)
    out.append(("performance profiles", "performance_profiles.png"))
    # realized KL per update: median and 90th percentile of each run
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.2), sharey=True)
    for ax, task in zip(axes, tasks):
        data = [[r["kl_median"] for r in ev if r["task"] == task and r["method"] == m] for m in methods]
        ax.boxplot(data, tick_labels=[LABEL[m].replace(" ", "\n", 1) for m in methods])
        ax.set_yscale("log")
        ax.set_title(f"{task}: each run's median realized KL per update")
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(figdir / "realized_kl.png", dpi=110)
    plt.close(fig)
    out.append(("realized KL per update", "realized_kl.png"))
    return out
