"""Cost of one natural-gradient direction: dense Fisher + Cholesky vs CG with Fisher-vector products vs K-FAC.

The heavy version of the sweep in chapter 6 ("Problems with natural gradients"). For
CartPole-shaped policies (4 inputs, 2 actions, two tanh hidden layers of width h, so
n = h^2 + 8h + 2 parameters) and N = 128 CartPole states, it times the build and the solve of
each route (shortest of --repeats runs, one thread) and measures the peak rise of resident
memory (Linux), with ``npgbook.experiments.cost.measure_natural_gradient_cost``:

* dense: up to h = 96 (n = 9,986; the matrix alone is 0.8 GB) -- larger sizes are extrapolated;
* CG (10 Fisher-vector products, damping 0.01) and K-FAC: up to h = 1000 (n = 1,008,002).

Usage::

    python benchmarks/fisher_cost.py            # measure, save fisher_cost.json, then report
    python benchmarks/fisher_cost.py --report   # only rebuild the report from the saved json

Outputs, next to this script: ``fisher_cost.json`` (raw measurements and machine facts),
``fisher_cost.png`` (log-log plot, fitted and extrapolated) and ``fisher_cost.md`` (report).
The saved results are read only here, by ``--report``; the book does not load them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

import npgbook as nb
from npgbook.experiments import cost
from npgbook.problems import envs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "fisher_cost.json"
FIGURE = HERE / "fisher_cost.png"
REPORT = HERE / "fisher_cost.md"
DENSE_WIDTHS = (8, 16, 24, 32, 48, 64, 80, 96)
ALL_WIDTHS = (8, 16, 24, 32, 48, 64, 80, 96, 128, 192, 256, 384, 512, 768, 1000)
N_STATES = 128
FIT_FROM = 700  # fit power laws on n >= this (smaller sizes are dominated by per-call overhead)
LAPTOP_BYTES = 16e9


def measure(repeats: int) -> dict:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    obs = envs.cartpole_observations(N_STATES, seed=0)
    rows = []
    for h in ALL_WIDTHS:
        policy = nb.MLPCategoricalPolicy(4, 2, (h, h))
        theta = policy.initial_params(0, last_layer_scale=1.0)
        grad = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(h))
        for method in cost.METHODS:
            if method == "dense" and h not in DENSE_WIDTHS:
                continue
            start = time.perf_counter()
            m = cost.measure_natural_gradient_cost(policy, theta, obs, grad, method, repeats=repeats)
            rows.append({"width": h, **asdict(m)})
            print(
                f"{method:>6} h={h:>5} n={m.n_params:>9} build {m.seconds_build:9.4f}s solve {m.seconds_solve:9.4f}s"
                f" peak {m.peak_bytes / 1e6:10.2f} MB  ({time.perf_counter() - start:.1f}s wall)",
                flush=True,
            )
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_after": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "n_states": N_STATES,
        "repeats": repeats,
        "rows": rows,
    }


def fits(rows: list[dict]) -> dict:
    out = {}
    for method in cost.METHODS:
        sel = [r for r in rows if r["method"] == method and r["n_params"] >= FIT_FROM]
        n = [r["n_params"] for r in sel]
        out[method] = {
            "build": cost.fit_power_law(n, [r["seconds_build"] for r in sel]),
            "solve": cost.fit_power_law(n, [r["seconds_solve"] for r in sel]),
            "memory": cost.fit_power_law(n, [r["peak_bytes"] for r in sel]),
            "largest_measured": max(r["n_params"] for r in rows if r["method"] == method),
        }
    return out


def report(results: dict) -> None:
    rows = results["rows"]
    fitted = fits(rows)

    def seconds(method: str, n: float) -> float:
        return float(fitted[method]["build"](n) + fitted[method]["solve"](n))

    labels = {"dense": "dense F + Cholesky", "cg": "CG, 10 Fisher-vector products", "kfac": "K-FAC"}
    colors = {"dense": "tab:red", "cg": "tab:blue", "kfac": "tab:green"}
    grid = np.logspace(2, 6, 60)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for method in cost.METHODS:
        sel = [r for r in rows if r["method"] == method]
        n = [r["n_params"] for r in sel]
        ax_t.loglog(n, [r["seconds_build"] + r["seconds_solve"] for r in sel], "o", color=colors[method], label=labels[method])
        ax_m.loglog(n, [r["peak_bytes"] for r in sel], "o", color=colors[method], label=labels[method])
        beyond = grid[grid >= n[-1]]
        if beyond.size:
            f = fitted[method]
            ax_t.loglog(beyond, [seconds(method, x) for x in beyond], "--", color=colors[method],
                        label=f"extrapolated (build n^{f['build'].exponent:.1f}, solve n^{f['solve'].exponent:.1f})")
            ax_m.loglog(beyond, f["memory"](beyond), "--", color=colors[method],
                        label=f"extrapolated (n^{f['memory'].exponent:.1f})")
    ax_m.loglog(grid, [cost.dense_fisher_bytes(int(x)) for x in grid], color="grey", lw=3, alpha=0.4, label="n² float64")
    ax_m.axhline(LAPTOP_BYTES, color="black", lw=0.8, ls=":")
    ax_t.set(xlabel="parameters n", ylabel="seconds (build + solve)", title="time, one thread")
    ax_m.set(xlabel="parameters n", ylabel="bytes", title="peak memory rise")
    ax_t.legend(fontsize=7)
    ax_m.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=90)

    machine = results["machine"]
    lines = [
        "# Cost of a natural-gradient direction: measured sweep",
        "",
        "Produced by `python benchmarks/fisher_cost.py` (measurements in `fisher_cost.json`, figure",
        "`fisher_cost.png`). Chapter 6 runs the small end of this sweep itself; it does not load these results.",
        "",
        (
            f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, "
            f"{machine['threads']} thread; {results['n_states']} CartPole states; time = shortest of "
            f"{results['repeats']} runs; load average after the run "
            f"{tuple(round(x, 1) for x in machine['load_average_after'])} "
            f"(other jobs shared the machine: absolute times are indicative). Run on {machine['date']}."
        ),
        "",
        "![cost](fisher_cost.png)",
        "",
        "## Measurements",
        "",
        "| route | width h | n | build (s) | solve (s) | peak memory (MB) | dense matrix would be (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['width']} | {r['n_params']:,} | {r['seconds_build']:.4f} | {r['seconds_solve']:.4f} | "
            f"{r['peak_bytes'] / 1e6:.1f} | {cost.dense_fisher_bytes(r['n_params']) / 1e6:.1f} |"
        )
    lines += [
        "",
        f"## Fitted power laws (n ≥ {FIT_FROM}) and extrapolations",
        "",
        "| route | build ∝ n^p | solve ∝ n^p | memory ∝ n^p | largest n measured | time at n = 10⁵ | time at n = 10⁶ | memory at 10⁶ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method in cost.METHODS:
        f = fitted[method]

        def tag(n: float, largest: int = f["largest_measured"]) -> str:
            return "" if n <= largest else " (extrapolated)"

        lines.append(
            f"| {labels[method]} | {f['build'].exponent:.2f} | {f['solve'].exponent:.2f} | {f['memory'].exponent:.2f} | "
            f"{f['largest_measured']:,} | {seconds(method, 1e5):.3g} s{tag(1e5)} | {seconds(method, 1e6):.3g} s{tag(1e6)} | "
            f"{f['memory'](1e6) / 1e9:.3g} GB{tag(1e6)} |"
        )
    n_note = 100_000
    solve_exponent = fitted["dense"]["solve"].exponent
    lines += [
        "",
        "## The note's numbers",
        "",
        (
            f"- 100,000 parameters: {n_note**2:.0e} entries (the note's \"10 billion\"), "
            f"{cost.dense_fisher_bytes(n_note, torch.float32) / 1e9:.0f} GB in float32, "
            f"{cost.dense_fisher_bytes(n_note, torch.float64) / 1e9:.0f} GB in float64. The note writes the size as "
            "\"|θ|·θ\"; it means |θ|×|θ|."
        ),
        f"- A 16 GB machine holds a dense float64 Fisher matrix up to n ≈ {(LAPTOP_BYTES / 8) ** 0.5:,.0f}.",
        (
            f"- Dense solve exponent measured here: {solve_exponent:.2f} over n = {FIT_FROM:,}–"
            f"{fitted['dense']['largest_measured']:,} (Cholesky costs n³/3 flops, i.e. n³/6 multiply-adds: the note's O(N³)). "
            + (
                "It is below the asymptotic 3, so the extrapolated dense times are optimistic."
                if solve_exponent < 3
                else "It has reached the asymptotic 3."
            )
        ),
        f"- CG with Fisher-vector products at n = {fitted['cg']['largest_measured']:,}: measured, not extrapolated.",
    ]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT.name} and {FIGURE.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only rebuild the report from the saved json")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per phase (the shortest is kept)")
    args = parser.parse_args()
    if not args.report:
        results = measure(args.repeats)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    report(json.loads(RESULTS.read_text()))


if __name__ == "__main__":
    main()
