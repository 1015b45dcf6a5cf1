"""Where npgbook's NPG spends its time as the number of parallel copies and the policy width grow.

1. Parallel copies N = 8, 16, 32, 64 with the batch held at N*T = 1,024 slots (T = 1024 / N):
   wall seconds per 1,000 environment steps, in total and for the rollout, value fit and update.
2. Policy widths 32 ... 1,024 (two tanh layers of that width, 8 x 128 batch): seconds per
   iteration for the rollout, the value fit and the NPG update, the share of the update spent in
   CG's 10 Fisher-vector products, and one product by the closed form used in training
   (``rl.mlp.fisher_operator``) against double backprop (``npgbook.fisher_vector_product``).

One torch thread; the load average is recorded. Run: python benchmarks/scaling.py [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

import npgbook as nb
from npgbook.rl import TrainConfig, Trainer
from npgbook.rl import algorithms as alg
from npgbook.rl.mlp import fisher_operator

HERE = Path(__file__).resolve().parent


def timed_trainer(config: TrainConfig) -> tuple[Trainer, dict[str, list[float]]]:
    """A trainer whose rollout, value fit, update and Fisher products record their wall seconds."""
    trainer = Trainer(config)
    times: dict[str, list[float]] = defaultdict(list)

    def wrap(name, fn):
        def inner(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            times[name].append(time.perf_counter() - start)
            return out

        return inner

    trainer.sampler.collect = wrap("rollout", trainer.sampler.collect)
    trainer.value.fit = wrap("value fit", trainer.value.fit)
    trainer.update = wrap("update", trainer.update)

    def timed_operator(*args, **kwargs):
        return wrap("fvp", fisher_operator(*args, **kwargs))

    alg.fisher_operator = timed_operator  # restored by the caller
    return trainer, times


def copies_table(steps: int) -> list[str]:
    lines = [
        "| copies N x steps T | s per 1k env steps | rollout | value fit | update | rest |",
        "|---|---|---|---|---|---|",
    ]
    for n in (8, 16, 32, 64):
        per_1k = []
        parts = defaultdict(list)
        for seed in (1001, 1002, 1003):
            trainer, times = timed_trainer(TrainConfig(seed=seed, num_envs=n, steps_per_env=1024 // n))
            start = time.perf_counter()
            while trainer.sampler.total_steps < steps:
                trainer.iteration()
            total = time.perf_counter() - start
            trainer.close()
            k = trainer.sampler.total_steps / 1000
            per_1k.append(total / k)
            for name in ("rollout", "value fit", "update"):
                parts[name].append(sum(times[name]) / k)
        med = {name: statistics.median(v) for name, v in parts.items()}
        tot = statistics.median(per_1k)
        lines.append(
            f"| {n} x {1024 // n} | {tot:.3f} | {med['rollout']:.3f} | {med['value fit']:.3f} | "
            f"{med['update']:.3f} | {tot - sum(med.values()):.3f} |"
        )
    return lines


def width_table(widths: list[int]) -> list[str]:
    lines = [
        ("| policy width | parameters | rollout (s/iter) | value fit | NPG update | of which 10 Fisher products "
        "| one product: closed form | double backprop |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in widths:
        iters = 4 if w <= 256 else 2
        trainer, times = timed_trainer(TrainConfig(seed=1001, hidden=(w, w)))
        for _ in range(iters):
            trainer.iteration()
        trainer.close()
        med = {k: statistics.median(v) for k, v in times.items()}
        fvp_per_update = sum(times["fvp"]) / iters
        # one product each way on the last batch's states
        policy, theta = trainer.policy, trainer.theta
        obs = trainer.sampler.collect(policy, theta, 128, torch.Generator().manual_seed(0)).flat()[0]
        v = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(1))
        reps = 5 if w <= 256 else 2
        per = {}
        for name, make in (("closed", fisher_operator), ("autograd", nb.fisher_vector_product)):
            op = make(policy, theta, obs, damping=0.01)
            op(v)
            start = time.perf_counter()
            for _ in range(reps):
                op(v)
            per[name] = (time.perf_counter() - start) / reps
        lines.append(
            f"| {w} | {policy.n_params:,} | {med['rollout']:.4f} | {med['value fit']:.4f} | {med['update']:.4f} | "
            f"{fvp_per_update:.4f} ({fvp_per_update / med['update']:.0%}) | {per['closed'] * 1e3:.2f} ms | "
            f"{per['autograd'] * 1e3:.2f} ms |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scaling.md")
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per run in the copies table")
    parser.add_argument("--widths", default="32,64,128,256,512,1024")
    args = parser.parse_args()
    torch.set_num_threads(1)
    original = alg.fisher_operator
    load = [round(x, 2) for x in os.getloadavg()]
    try:
        Trainer(TrainConfig(total_steps=2000)).run()  # warm-up
        copies = copies_table(args.steps)
        widths = width_table([int(w) for w in args.widths.split(",")])
    finally:
        alg.fisher_operator = original
    text = "\n".join(
        [
            "# Scaling of npgbook NPG's wall time (benchmarks/scaling.py)",
            "",
            (f"{time.strftime('%Y-%m-%d %H:%M')}; load average at the start {load}, at the end "
            f"{[round(x, 2) for x in os.getloadavg()]}; one torch thread; torch {torch.__version__}."),
            "",
            (f"Parallel copies, batch fixed at 1,024 slots, {args.steps:,} steps, median of seeds 1001-1003 "
            "(seconds per 1,000 env steps):"),
            "",
            *copies,
            "",
            "Policy width (two tanh layers), 8 x 128 batch, default value network; seconds per iteration:",
            "",
            *widths,
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
