"""NPG with damping 0 / 0.01 / 1, NPG with K-FAC, and Adam-based vanilla policy gradient on CartPole.

The heavy version of the CartPole comparison at the end of chapter 6. Every run is chapter 5's
NPG setup (``npgbook.rl.TrainConfig`` defaults: 8 envs x 128 steps per iteration, GAE, value
baseline, delta = 0.02, tanh 32-32) with only the update rule changed
(``npgbook.experiments.variants``):

1. ``tune``: Adam's learning rate is chosen on seeds 100-104 (not the comparison's seeds) from
   {0.003, 0.01, 0.02, 0.05, 0.1} by the mean last-20-episode return after 20,480 steps;
2. ``compare``: seeds 0-9, 49,152 environment steps (six times the chapter's budget), for
   NPG with damping 0, 0.01 and 1, NPG with K-FAC (damping 0.01) and Adam at the tuned rate.

Usage::

    python benchmarks/npg_variants.py            # tune + compare, save npg_variants.json, report
    python benchmarks/npg_variants.py --report   # only rebuild the report from the saved json

Outputs next to this script: ``npg_variants.json``, ``npg_variants.png``, ``npg_variants.md``.
The saved results are read only here; the book does not load them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from npgbook import rl
from npgbook.experiments import variants

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "npg_variants.json"
FIGURE = HERE / "npg_variants.png"
REPORT = HERE / "npg_variants.md"
TUNE_SEEDS = tuple(range(100, 105))
TUNE_RATES = (0.003, 0.01, 0.02, 0.05, 0.1)
TUNE_STEPS = 20_480
SEEDS = tuple(range(10))
STEPS = 49_152
GRID = np.arange(4096, STEPS + 1, 4096)
RULES = {
    "NPG, λ = 0": ("npg", {"cg_damping": 0.0}),
    "NPG, λ = 0.01": ("npg", {}),
    "NPG, λ = 1": ("npg", {"cg_damping": 1.0}),
    "NPG, K-FAC": ("kfac-npg", {}),
}


def last20(summary: variants.RunSummary) -> float:
    return float(np.mean(summary.episode_returns[-20:]))


def curve(summary: variants.RunSummary) -> list[float]:
    """Mean return of the last 20 episodes finished by each step of GRID."""
    returns, steps = np.asarray(summary.episode_returns), np.asarray(summary.episode_end_steps)
    out = []
    for g in GRID:
        done = returns[steps <= g]
        out.append(float(done[-20:].mean()) if done.size else float("nan"))
    return out


def run(processes: int) -> dict:
    start = time.perf_counter()
    tune_jobs = [
        ("adam", rl.TrainConfig(seed=s, total_steps=TUNE_STEPS, learning_rate=lr)) for lr in TUNE_RATES for s in TUNE_SEEDS
    ]
    tuned = variants.train_many(tune_jobs, processes)
    tune_means = {
        lr: float(np.mean([last20(r) for r in tuned[i * len(TUNE_SEEDS) : (i + 1) * len(TUNE_SEEDS)]]))
        for i, lr in enumerate(TUNE_RATES)
    }
    best = max(tune_means, key=tune_means.get)
    print("Adam tuning (mean last-20 return):", tune_means, "-> learning rate", best, flush=True)
    rules = {**RULES, "Adam (vanilla PG)": ("adam", {"learning_rate": best})}
    jobs = [
        (rule, rl.TrainConfig(seed=s, total_steps=STEPS, **changes)) for rule, changes in rules.values() for s in SEEDS
    ]
    summaries = variants.train_many(jobs, processes)
    runs = {}
    for i, name in enumerate(rules):
        group = summaries[i * len(SEEDS) : (i + 1) * len(SEEDS)]
        runs[name] = [
            {
                "seed": s,
                "final": last20(r),
                "curve": curve(r),
                "kl_over_delta": [h.kl / r.config.delta for h in r.history if h.accepted],
                "skipped": sum(not h.accepted for h in r.history),
            }
            for s, r in zip(SEEDS, group)
        ]
        print(name, [round(x["final"]) for x in runs[name]], flush=True)
    return {
        "tune": {"seeds": TUNE_SEEDS, "steps": TUNE_STEPS, "mean_return": tune_means, "best": best},
        "seeds": SEEDS,
        "steps": STEPS,
        "grid": GRID.tolist(),
        "runs": runs,
        "machine": {"cpu_count": os.cpu_count(), "seconds": time.perf_counter() - start, "date": time.strftime("%Y-%m-%d")},
    }


def report(results: dict) -> None:
    runs = results["runs"]
    grid = np.asarray(results["grid"])
    colors = ("tab:red", "tab:blue", "tab:purple", "tab:green", "tab:orange")
    fig, (ax_ret, ax_kl) = plt.subplots(1, 2, figsize=(10, 3.8))
    for color, (name, rs) in zip(colors, runs.items()):
        curves = np.array([r["curve"] for r in rs])
        mean = np.nanmean(curves, axis=0)
        err = np.nanstd(curves, axis=0) / np.sqrt(len(rs))
        ax_ret.plot(grid, mean, color=color, label=name)
        ax_ret.fill_between(grid, mean - err, mean + err, color=color, alpha=0.2)
        kl = np.concatenate([r["kl_over_delta"] for r in rs])
        ax_kl.hist(np.log10(np.maximum(kl, 1e-4)), bins=40, histtype="step", color=color, label=name)
    ax_ret.set(xlabel="environment steps", ylabel="mean return, last 20 episodes", title=f"{len(results['seeds'])} seeds, mean ± s.e.")
    ax_kl.set(xlabel="log10(KL per update / δ)", ylabel="updates", title="KL caused by each update")
    ax_ret.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=90)

    tune = results["tune"]
    lines = [
        "# NPG variants against Adam on CartPole: ten seeds",
        "",
        "Produced by `python benchmarks/npg_variants.py` (raw results in `npg_variants.json`).",
        "Chapter 6 runs a five-seed, 8,192-step version itself; it does not load these results.",
        "",
        f"Adam's learning rate was tuned on seeds {tune['seeds'][0]}–{tune['seeds'][-1]} ({tune['steps']:,} steps): "
        + ", ".join(f"{lr} → {v:.0f}" for lr, v in tune["mean_return"].items())
        + f"; chosen {tune['best']}.",
        "",
        (f"Comparison: seeds {results['seeds'][0]}–{results['seeds'][-1]}, {results['steps']:,} environment steps, "
        "chapter 5's NPG setup with only the update rule changed."),
        "",
        "![curves](npg_variants.png)",
        "",
        "| update rule | final return, mean ± s.e. | min–max over seeds | median KL/δ | 99th pct KL/δ | max KL/δ | skipped |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rs in runs.items():
        final = np.array([r["final"] for r in rs])
        kl = np.concatenate([r["kl_over_delta"] for r in rs])
        lines.append(
            f"| {name} | {final.mean():.0f} ± {final.std(ddof=1) / np.sqrt(final.size):.0f} | {final.min():.0f}–{final.max():.0f} | "
            f"{np.median(kl):.2f} | {np.quantile(kl, 0.99):.2f} | {kl.max():.1f} | {sum(r['skipped'] for r in rs)} |"
        )
    final = {name: np.array([r["final"] for r in rs]) for name, rs in runs.items()}
    wins = {name: int(np.sum(final["NPG, λ = 0.01"] > final[name])) for name in final if name != "NPG, λ = 0.01"}
    lines += [
        "",
        "Seeds (of 10) on which NPG with λ = 0.01 ends with the higher return: "
        + ", ".join(f"vs {name}: {w}" for name, w in wins.items())
        + ".",
        "",
        (f"Total wall time {results['machine']['seconds'] / 60:.0f} min on {results['machine']['cpu_count']} CPUs "
        f"({results['machine']['date']})."),
    ]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT.name} and {FIGURE.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only rebuild the report from the saved json")
    parser.add_argument("--processes", type=int, default=2, help="parallel training processes")
    args = parser.parse_args()
    if not args.report:
        RESULTS.write_text(json.dumps(run(args.processes), indent=1) + "\n")
    report(json.loads(RESULTS.read_text()))


if __name__ == "__main__":
    main()
