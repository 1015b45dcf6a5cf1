"""Tune tianshou's NPG and TRPO step sizes on CartPole-v1 before the same-run benchmark.

tianshou has no CartPole example for NPG or TRPO, so ``bench_cartpole.py`` starts from the
settings of its Pendulum-v1 tests (``test/continuous/test_npg.py`` / ``test_trpo.py``) with the
usual CartPole discount 0.99, and takes the step size from this sweep: NPG's fixed step size
(``trust_region_size``) and TRPO's ``max_kl``, each over a grid, on tuning seeds 100-102 that
the benchmark's seeds (0-9) do not share. A run stops once the mean of its last 20 training
episodes reaches 475, or at 200k steps. The chosen value is the one with the fewest median
steps to 475 (unsolved = +inf), ties broken by median seconds.

Run:  python benchmarks/tune_tianshou_cartpole.py   (about 10 min on one core)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agents as A
import bench_cartpole as bc

HERE = Path(__file__).resolve().parent
SEEDS = (100, 101, 102)
GRIDS = {"npg": ("trust_region_size", (0.1, 0.25, 0.5, 1.0)), "trpo": ("max_kl", (0.005, 0.01, 0.02, 0.05))}


def main() -> None:
    torch.set_num_threads(1)
    bc.warm_up(["tianshou NPG", "tianshou TRPO"])
    rows = []
    for algo, (key, values) in GRIDS.items():
        base = bc.TIANSHOU_BASE[algo]
        for v in values:
            hp = {**base, key: v}
            res = [A.train_tianshou(algo, "CartPole-v1", hp, s, 200_000, stop=A.last_mean_reaches(475.0))
                   for s in SEEDS]
            reached = [A.first_reached(r, 475.0) for r in res]
            row = {"algo": algo, key: v, "steps": [s for s, _ in reached], "seconds": [t for _, t in reached],
                   "median_steps": A.median_inf([s for s, _ in reached]),
                   "median_seconds": A.median_inf([t for _, t in reached])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["# tianshou NPG / TRPO step-size sweep on CartPole-v1", "",
             f"Run on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} (UTC) with "
             "`python benchmarks/tune_tianshou_cartpole.py`; tuning seeds "
             f"{', '.join(map(str, SEEDS))}; each run stops at a last-20 mean of 475 or at 200k steps.", "",
             "Other settings: those of tianshou's Pendulum-v1 tests with gamma 0.99 "
             "(`bench_cartpole.TIANSHOU_BASE`).", "",
             "| algorithm | step setting | steps to 475 per seed | median steps | median seconds |",
             "|---|---|---|---|---|"]
    chosen = {}
    for algo, (key, _) in GRIDS.items():
        mine = [r for r in rows if r["algo"] == algo]
        best = min(mine, key=lambda r: (r["median_steps"], r["median_seconds"]))
        chosen[algo] = {key: best[key]}
        for r in mine:
            mark = " **(chosen)**" if r is best else ""
            lines.append(f"| tianshou {algo.upper()} | {key} = {r[key]}{mark} | "
                         + ", ".join(A.fmt(s) for s in r["steps"])
                         + f" | {A.fmt(r['median_steps'])} | {A.fmt(r['median_seconds'], '.1f')} |")
    lines += ["", f"Chosen: `{json.dumps(chosen)}` (copied into `bench_cartpole.TIANSHOU_CHOSEN`).", ""]
    (HERE / "results" / "tune_tianshou_cartpole.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
