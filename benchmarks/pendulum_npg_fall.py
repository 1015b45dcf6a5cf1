"""Why npgbook NPG seed 9 falls back on Pendulum-v1: is the shrinking sigma the cause?

In ``bench_pendulum.py`` NPG seed 9 learns to a last-20 training return near -270 by about 60k
steps and then falls back towards -850 while sigma shrinks from about 0.45 to 0.13. If the
collapse of sigma caused the fall (too little exploration, a Fisher block 1/sigma^2 that makes the
mean freeze), keeping sigma from shrinking should prevent it. This script reruns that seed

* as in the benchmark;
* with a floor on sigma (after each update, log sigma is raised to log 0.3 if it fell below; a
  raise can only lower the KL of the update, so the step stays within delta);
* with three small changes of the configuration, to see whether the fall belongs to the seed's
  trajectory or to the configuration: delta 0.01, no observation normalization, GAE lambda 0.9;
* as TRPO (the same step plus a line search that rejects steps that do not improve the surrogate).

and prints the last-20 training return and sigma every 20k steps. Run:
python benchmarks/pendulum_npg_fall.py [--seed 9]   (about 1 min)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pendulum import BUDGET, NPG_CONFIG

from npgbook.rl import Trainer

HERE = Path(__file__).resolve().parent
EVERY = 20_000


def trace(config, seed: int, floor: float | None = None) -> list[tuple[int, float, float]]:
    trainer = Trainer(config.replace(seed=seed, total_steps=BUDGET))
    k = trainer.policy.n_net_params
    out, mark = [], EVERY
    try:
        while trainer.sampler.total_steps < BUDGET:
            record = trainer.iteration()
            if floor is not None:
                trainer.theta[k:].clamp_(min=math.log(floor))
            if trainer.sampler.total_steps >= mark:
                out.append((trainer.sampler.total_steps, record.last20_return or float("nan"),
                            float(torch.exp(trainer.theta[k:]).mean())))
                mark += EVERY
    finally:
        trainer.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = {
        "as in the benchmark": (NPG_CONFIG, None),
        "sigma floor 0.3": (NPG_CONFIG, 0.3),
        "delta 0.01": (NPG_CONFIG.replace(delta=0.01), None),
        "obs_norm off": (NPG_CONFIG.replace(obs_norm="off"), None),
        "gae_lambda 0.9": (NPG_CONFIG.replace(gae_lambda=0.9), None),
        "TRPO": (NPG_CONFIG.replace(algo="trpo"), None),
    }
    rows = {name: trace(cfg, args.seed, floor) for name, (cfg, floor) in variants.items()}
    steps = [s for s, _, _ in rows["as in the benchmark"]]
    lines = [f"# npgbook NPG, Pendulum-v1, seed {args.seed}: the fall and sigma", "",
             f"Run on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} (UTC) with "
             f"`python benchmarks/pendulum_npg_fall.py --seed {args.seed}`. Last-20 training return "
             "(sigma after the update) at the first update after every 20k steps:", "",
             "| variant | " + " | ".join(f"{s // 1000}k" for s in steps) + " |", "|---|" + "---|" * len(steps)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r:.0f} ({sg:.2f})" for _, r, sg in row) + " |")
    text = "\n".join(lines) + "\n"
    (HERE / "results" / "pendulum_npg_fall.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
