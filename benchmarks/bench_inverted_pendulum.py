"""Benchmark: npgbook NPG against sb3-contrib TRPO on MuJoCo's InvertedPendulum-v5, steps to 950.

The runners of ``bench_pendulum.py`` pointed at another task: one process, one torch thread,
runs interleaved seed by seed, each stopped once the mean return of its last 20 finished
training episodes reaches 950 or at 100k steps. The RL Zoo has no tuned TRPO settings for
InvertedPendulum, so sb3-contrib TRPO runs with its defaults (one env); npgbook NPG with the
``TrainConfig`` defaults (observation normalization on for continuous actions). Needs the
``mujoco`` package (``pip install mujoco imageio`` in the bench venv).

Run:  python benchmarks/bench_inverted_pendulum.py [--seeds 0-2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pendulum as bp
from bench_cartpole import median_or_none, quartiles

from npgbook.rl import TrainConfig, first_solved

HERE = Path(__file__).resolve().parent
ENV_ID, THRESHOLD, BUDGET = "InvertedPendulum-v5", 950.0, 100_000
NPG_CONFIG = TrainConfig(algo="npg", env_id=ENV_ID)


def outcome(returns: list[float], end_steps: list[int], end_times: list[float]) -> dict:
    i = first_solved(returns, window=bp.WINDOW, threshold=THRESHOLD)
    return {"episodes": len(returns), "steps_to_950": None if i is None else int(end_steps[i]),
            "seconds_to_950": None if i is None else float(end_times[i])}


# point bench_pendulum's runners at this task
bp.ENV_ID, bp.THRESHOLDS, bp.outcome = ENV_ID, (THRESHOLD,), outcome
bp.ZOO_TRPO, bp.ZOO_N_ENVS = {}, 1

RUNNERS = {
    "npgbook NPG": lambda seed: bp.run_npgbook(NPG_CONFIG, seed, BUDGET),
    "sb3-contrib TRPO (defaults)": lambda seed: bp.run_sb3_trpo(seed, BUDGET),
}


def report(data: dict) -> str:
    runs = {k: v for k, v in data["runs"].items() if v}
    lines = [
        "# Benchmark: npgbook NPG vs sb3-contrib TRPO on InvertedPendulum-v5 (MuJoCo)", "",
        f"Run on {data['date']} (UTC) with `{data['command']}`.", "",
        "Machine and versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        (f"Load average at start {data['load_average']}, at end {data['load_average_end']}; total "
         f"{data['wall_minutes']:.1f} min. Seeds {data['seeds']}; each run stops once the last-20 mean of its "
         f"training returns reaches 950, or at {BUDGET:,} steps."),
        ("" if data.get("finished", True) else "**Partial:** stopped before its end.\n"),
        ("Reaching 950 is judged on *training* episodes (sampled actions); the final eval column uses the "
         "mean action on 20 fresh episodes. The load changed a lot during the run (other processes), so "
         "seconds of different seeds are not comparable; compare agents within a seed."),
        "",
        "| algorithm | runs | reached 950 | steps to 950 | seconds to 950 | final eval return | s per 1k steps |",
        "|---|---|---|---|---|---|---|",
    ]
    med = {}
    for name, rs in runs.items():
        st, se = [r["steps_to_950"] for r in rs], [r["seconds_to_950"] for r in rs]
        ms, mt, qs, qt = median_or_none(st), median_or_none(se), quartiles(st), quartiles(se)
        med[name] = (ms, mt)
        lines.append(
            f"| {name} | {len(rs)} | {sum(v is not None for v in st)}/{len(rs)} | {bp.fmt_steps(ms)} "
            f"[{bp.fmt_steps(qs[0])}-{bp.fmt_steps(qs[1])}] | {'-' if mt is None else f'{mt:.1f}'} "
            f"[{bp.fmt_secs(qt[0])}-{bp.fmt_secs(qt[1])}] | {statistics.median(r['eval_return'] for r in rs):.0f} | "
            f"{statistics.median(1000 * r['total_seconds'] / r['total_steps'] for r in rs):.3f} |")
    a, b = med.get("npgbook NPG"), med.get("sb3-contrib TRPO (defaults)")
    if a and b and None not in (*a, *b):
        lines += ["", (f"Ratios of medians (sb3-contrib / npgbook): wall seconds {b[1] / a[1]:.1f}x, "
                       f"steps {b[0] / a[0]:.2f}x.")]
    lines += ["", "Per seed (steps to 950 / seconds / final eval return):", ""]
    for name, rs in runs.items():
        cells = [f"seed {r['seed']}: {bp.fmt_steps(r['steps_to_950'])} / "
                 f"{'-' if r['seconds_to_950'] is None else round(r['seconds_to_950'], 1)} s / "
                 f"{r['eval_return']:.0f}" for r in rs]
        lines.append(f"- {name}: " + "; ".join(cells))
    lines += ["", "npgbook NPG: `" + json.dumps(data["npg_config"]) + "`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_inverted_pendulum.json")
    parser.add_argument("--report", type=Path, default=HERE / "inverted_pendulum_report.md")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if args.report_only:
        args.report.write_text(report(json.loads(args.out.read_text())))
        return
    first, last = (int(x) for x in args.seeds.split("-"))
    seeds = list(range(first, last + 1))
    torch.set_num_threads(1)
    t0, load = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    bp.run_npgbook(NPG_CONFIG, 0, 2048)  # warm-up: first-call costs
    bp.run_sb3_trpo(0, 2048)
    runs: dict[str, list[dict]] = {n: [] for n in RUNNERS}
    import mujoco

    for seed in seeds:
        for name, runner in RUNNERS.items():
            runs[name].append({"seed": seed, **runner(seed)})
            print(f"seed {seed} {name}: {json.dumps(runs[name][-1])}", flush=True)
            data = {
                "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                "command": f"python benchmarks/bench_inverted_pendulum.py --seeds {args.seeds}",
                "finished": seed == seeds[-1] and name == list(RUNNERS)[-1],
                "versions": {**bp.versions([]), "mujoco": mujoco.__version__},
                "load_average": load, "load_average_end": [round(x, 2) for x in os.getloadavg()],
                "wall_minutes": (time.perf_counter() - t0) / 60, "seeds": seeds,
                "npg_config": asdict(NPG_CONFIG), "runs": runs,
            }
            args.out.write_text(json.dumps(data, indent=1) + "\n")
            args.report.write_text(report(data))
    print(report(data))


if __name__ == "__main__":
    main()
