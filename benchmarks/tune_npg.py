"""Tuning sweep for npgbook's NPG on CartPole-v1 (a record of what was tried; not a test).

For each configuration and each seed, train until the mean of the last 20 training episodes
first reaches 475 (or a step budget runs out) and report the median env steps and wall
seconds to get there. Run: python benchmarks/tune_npg.py [--seeds 10] [--budget 100000] > out.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from npgbook.rl import TrainConfig, Trainer, first_solved

CANDIDATES: dict[str, dict] = {
    # first round (6 seeds): larger KL budgets, batch shapes, GAE lambda, value epochs, network width
    "default": {},
    "delta=0.05": {"delta": 0.05},
    "delta=0.1": {"delta": 0.1},
    "delta=0.05,T=256": {"delta": 0.05, "steps_per_env": 256},
    "delta=0.05,lam=0.98": {"delta": 0.05, "gae_lambda": 0.98},
    "delta=0.05,vepochs=5": {"delta": 0.05, "value_epochs": 5},
    "delta=0.05,N=16,T=64": {"delta": 0.05, "num_envs": 16, "steps_per_env": 64},
    # second round (10 seeds): around the default
    "delta=0.01": {"delta": 0.01},
    "delta=0.03": {"delta": 0.03},
    "T=64": {"steps_per_env": 64},
    "T=64,delta=0.01": {"steps_per_env": 64, "delta": 0.01},
    "lam=0.9": {"gae_lambda": 0.9},
    "hidden=64,64": {"hidden": (64, 64)},
    "damping=0.1": {"cg_damping": 0.1},
    "value_lr=1e-2": {"value_lr": 1e-2},
    "vepochs=5,vminibatch=512": {"value_epochs": 5, "value_minibatch": 512},
}


def solve_time(config: TrainConfig) -> tuple[int | None, float | None]:
    """Env steps and wall seconds when the last-20 mean first reaches 475, or (None, None)."""
    trainer = Trainer(config)
    try:
        while trainer.sampler.total_steps < config.total_steps:
            trainer.iteration()
            i = first_solved(trainer.episodes.returns)
            if i is not None:
                return trainer.episodes.end_steps[i], trainer.episodes.end_times[i]
    finally:
        trainer.close()
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| configuration | solved | median steps | median seconds | steps per seed |")
    print("|---|---|---|---|---|")
    for name, changes in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        cfg = TrainConfig(total_steps=args.budget, **changes)
        results = [solve_time(cfg.replace(seed=s)) for s in range(args.seeds)]
        steps = [s if s is not None else float("inf") for s, _ in results]
        secs = [t if t is not None else float("inf") for _, t in results]
        solved = sum(s is not None for s, _ in results)
        print(
            f"| {name} | {solved}/{args.seeds} | {statistics.median(steps):.0f} | {statistics.median(secs):.2f} | "
            f"{json.dumps([s for s, _ in results])} |",
            flush=True,
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
