"""Tune npgbook NPG's KL budget and GAE lambda on Pendulum-v1, on seeds the benchmark does not use.

``bench_pendulum.py`` first ran npgbook with ``TrainConfig`` defaults and gamma 0.9; two of its ten
NPG runs and one TRPO run reached the swing-up and then fell back (``results/pendulum_npg_fall.md``
follows one of them). This sweep asks whether a smaller delta or GAE lambda 0.9, the two changes
that kept that seed learning, make the runs steadier in general: a 2 x 2 grid, NPG, tuning seeds
100-109, 200k steps each, no early stop. A run *holds* if the mean of its last 20 training
episodes reaches -250 within the budget and its final policy (mean action, 20 episodes) scores at
least -250. Chosen: the most runs that hold, then the fewest median steps to -250.

Run:  python benchmarks/tune_pendulum.py   (about 7 min on one core)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agents as A
import bench_pendulum as bp

HERE = Path(__file__).resolve().parent
SEEDS = tuple(range(100, 110))
GRID = ({}, {"delta": 0.01}, {"gae_lambda": 0.9}, {"delta": 0.01, "gae_lambda": 0.9})
THRESHOLD = -250.0


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for change in GRID:
        cfg = bp.NPG_CONFIG.replace(**change)
        res = [A.train_npgbook(cfg, s, bp.BUDGET) for s in SEEDS]
        steps = [A.first_reached(r, THRESHOLD)[0] for r in res]
        final = [r["eval_return"] for r in res]
        holds = sum(s is not None and f >= THRESHOLD for s, f in zip(steps, final))
        row = {"change": change, "steps": steps, "final": final, "holds": holds,
               "median_steps": A.median_inf(steps), "seconds": sum(r["total_seconds"] for r in res)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    best = min(rows, key=lambda r: (-r["holds"], r["median_steps"]))
    lines = ["# npgbook NPG on Pendulum-v1: delta and GAE lambda on tuning seeds", "",
             f"Run on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} (UTC) with "
             f"`python benchmarks/tune_pendulum.py`; seeds {SEEDS[0]}-{SEEDS[-1]}, {bp.BUDGET:,} steps each, "
             "from `bench_pendulum.NPG_CONFIG`. A run holds if its last-20 training mean reaches -250 and "
             "its final evaluation (20 episodes, mean action) is at least -250.", "",
             "| change | runs that hold | median steps to -250 | final eval per seed | seconds (all seeds) |",
             "|---|---|---|---|---|"]
    for r in rows:
        name = (json.dumps(r["change"]) if r["change"] else "none") + (" **(chosen)**" if r is best else "")
        lines.append(f"| {name} | {r['holds']}/{len(SEEDS)} | {A.fmt(r['median_steps'])} | "
                     + ", ".join(f"{f:.0f}" for f in r["final"]) + f" | {r['seconds']:.0f} |")
    lines += ["", f"Chosen: `{json.dumps(best['change'])}`.", ""]
    (HERE / "results" / "tune_pendulum.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
