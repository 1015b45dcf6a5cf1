"""Benchmark: npgbook NPG (Algorithm 1) against sb3-contrib TRPO on CartPole-v1, seeds 0-9, one thread.

Both agents train, interleaved seed by seed in one process with ``torch.set_num_threads(1)``,
until the mean return of their last 20 training episodes reaches 475 or a budget of real
environment steps runs out (``--full-budget`` trains for the whole budget instead). For each
run it records

* env steps and wall seconds (from building the env and model) until the mean return of the
  last 20 finished *training* episodes first reaches 475;
* whether that happened within the budget (200k steps);
* the final policy's mean return over 20 fresh evaluation episodes (most probable action,
  the same evaluator for both).

sb3-contrib is a benchmark-only dependency: install it into a separate virtual environment
(see README.md in this folder). Results go to ``benchmarks/results/`` and the report to
``benchmarks/cartpole_report.md``; nothing else loads them.

Run:  python benchmarks/bench_cartpole.py [--seeds 0-9] [--budget 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from npgbook.rl import TrainConfig, Trainer, evaluate_actor, evaluate_policy, first_solved

HERE = Path(__file__).resolve().parent
THRESHOLD, WINDOW, EVAL_EPISODES = 475.0, 20, 20

# npgbook NPG: chosen by benchmarks/tune_npg.py (see the report for what was tried)
NPG_CONFIG = TrainConfig(algo="npg")

# RL Zoo's tuned CartPole-v1 hyperparameters for sb3-contrib TRPO (hyperparams/trpo.yml)
ZOO_TRPO = {
    "n_steps": 512,
    "batch_size": 512,
    "cg_damping": 1e-3,
    "gae_lambda": 0.98,
    "gamma": 0.99,
    "learning_rate": 1e-3,
    "n_critic_updates": 20,
}
ZOO_N_ENVS = 2


def outcome(returns: list[float], end_steps: list[int], end_times: list[float]) -> dict:
    """Steps and seconds when the last-20 mean first reached the threshold (None if never)."""
    i = first_solved(returns, window=WINDOW, threshold=THRESHOLD)
    return {
        "solved": i is not None,
        "steps_to_475": None if i is None else int(end_steps[i]),
        "seconds_to_475": None if i is None else float(end_times[i]),
        "episodes": len(returns),
    }


STOP_WHEN_SOLVED = True  # set by --full-budget


def run_npgbook(seed: int, budget: int) -> dict:
    """Train npgbook NPG for ``budget`` env steps (or until solved); time from building the trainer."""
    trainer = Trainer(NPG_CONFIG.replace(seed=seed, total_steps=budget))
    try:
        while trainer.sampler.total_steps < budget:
            trainer.iteration()
            if STOP_WHEN_SOLVED and first_solved(trainer.episodes.returns, window=WINDOW, threshold=THRESHOLD) is not None:
                break
    finally:
        trainer.close()
    log = trainer.episodes
    total = time.perf_counter() - trainer.start
    result = outcome(log.returns, log.end_steps, log.end_times)
    returns = evaluate_policy(trainer.policy, trainer.theta, n_episodes=EVAL_EPISODES, seed=10_000 + seed)
    return {**result, "total_steps": trainer.sampler.total_steps, "total_seconds": total, "eval_return": float(returns.mean())}


def run_sb3_trpo(seed: int, budget: int) -> dict:
    """Train sb3-contrib TRPO with the RL Zoo hyperparameters for ``budget`` env steps (or until solved)."""
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class EpisodeRecorder(BaseCallback):
        def __init__(self, start: float) -> None:
            super().__init__()
            self.start = start
            self.returns: list[float] = []
            self.end_steps: list[int] = []
            self.end_times: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
                    self.end_steps.append(int(self.num_timesteps))
                    self.end_times.append(time.perf_counter() - self.start)
                    if STOP_WHEN_SOLVED and first_solved(self.returns, window=WINDOW, threshold=THRESHOLD) is not None:
                        return False  # stop training: solved
            return True

    start = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=ZOO_N_ENVS, seed=seed)
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **ZOO_TRPO)
    recorder = EpisodeRecorder(start)
    model.learn(total_timesteps=budget, callback=recorder)
    total = time.perf_counter() - start
    env.close()
    result = outcome(recorder.returns, recorder.end_steps, recorder.end_times)
    returns = evaluate_actor(
        lambda obs: model.predict(obs, deterministic=True)[0], n_episodes=EVAL_EPISODES, seed=10_000 + seed
    )
    return {**result, "total_steps": int(model.num_timesteps), "total_seconds": total, "eval_return": float(returns.mean())}


RUNNERS = {"npgbook NPG": run_npgbook, "sb3-contrib TRPO": run_sb3_trpo}


def warm_up() -> None:
    """Pay one-time import and first-call costs (torch.optim imports torch._dynamo) before timing."""
    run_npgbook(0, 2000)
    run_sb3_trpo(0, 2048)


def versions() -> dict:
    import gymnasium
    import sb3_contrib
    import stable_baselines3

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "stable-baselines3": stable_baselines3.__version__,
        "sb3-contrib": sb3_contrib.__version__,
        "numpy": np.__version__,
    }


def median_or_none(values: list[float | None]) -> float | None:
    """Median over seeds, counting an unsolved run as +inf (None if half or more are unsolved)."""
    finite = [v if v is not None else float("inf") for v in values]
    m = statistics.median(finite)
    return None if m == float("inf") else m


def quartiles(values: list[float | None]) -> tuple[float, float]:
    """The 25% and 75% quantiles over seeds, an unsolved run counting as +inf."""
    v = np.array([x if x is not None else np.inf for x in values], dtype=float)
    return float(np.quantile(v, 0.25)), float(np.quantile(v, 0.75))


def report(data: dict) -> str:
    """The markdown report of a saved benchmark run."""
    runs, budget, seeds = data["runs"], data["budget"], data["seeds"]
    lines = [
        "# Benchmark: npgbook NPG vs sb3-contrib TRPO on CartPole-v1",
        "",
        f"Run on {data['date']} with `{data['command']}`.",
        "",
        "Machine and versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        (f"Load average (1, 5, 15 min) when the run started: {data['load_average']}, when it ended: "
        f"{data.get('load_average_end')}. One torch thread per run; runs interleaved seed by seed."),
        "",
        (f"Seeds {seeds[0]}-{seeds[-1]}, at most {budget:,} environment steps per run"
        + (", each run stopped once solved" if data.get("stop_when_solved") else "")
        + ". 'Solved' = the mean return of the last "
        f"{WINDOW} finished training episodes reaches {THRESHOLD:.0f}; steps and seconds are counted from building "
        "the environment and the model. Evaluation: the final policy's most probable action on "
        f"{EVAL_EPISODES} fresh episodes (same evaluator for both)."),
        "",
        ("| algorithm | solved within budget | steps to 475: median [IQR] | seconds to 475: median [IQR] | "
        "mean final eval return | seconds per 1,000 env steps (median) |"),
        "|---|---|---|---|---|---|",
    ]
    medians = {}
    for name, per_seed in runs.items():
        steps = median_or_none([r["steps_to_475"] for r in per_seed])
        secs = median_or_none([r["seconds_to_475"] for r in per_seed])
        medians[name] = (steps, secs)
        solved = sum(r["solved"] for r in per_seed)
        evals = [r["eval_return"] for r in per_seed]
        q_steps, q_secs = quartiles([r["steps_to_475"] for r in per_seed]), quartiles([r["seconds_to_475"] for r in per_seed])
        lines.append(
            f"| {name} | {solved}/{len(per_seed)} | {'-' if steps is None else f'{steps:,.0f}'} "
            f"[{q_steps[0]:,.0f}-{q_steps[1]:,.0f}] | "
            f"{'-' if secs is None else f'{secs:.2f}'} [{q_secs[0]:.2f}-{q_secs[1]:.2f}] | "
            f"{np.mean(evals):.1f} (min {min(evals):.0f}) | "
            f"{statistics.median(1000 * r['total_seconds'] / r['total_steps'] for r in per_seed):.3f} |"
        )
    (npg_steps, npg_secs), (trpo_steps, trpo_secs) = medians["npgbook NPG"], medians["sb3-contrib TRPO"]
    lines += ["", "Ratios of medians (sb3-contrib TRPO / npgbook NPG):"]
    if None not in (npg_secs, trpo_secs, npg_steps, trpo_steps):
        lines.append(f"wall seconds to 475: **{trpo_secs / npg_secs:.1f}x**; env steps to 475: {trpo_steps / npg_steps:.2f}x.")
    else:
        lines.append("not defined: a median run did not reach 475.")
    lines += ["", "Per seed (steps to 475 / seconds to 475 / final eval return):", ""]
    lines.append("| seed | " + " | ".join(runs) + " |")
    lines.append("|---|" + "---|" * len(runs))
    for k, seed in enumerate(seeds):
        cells = []
        for per_seed in runs.values():
            r = per_seed[k]
            if r["solved"]:
                cells.append(f"{r['steps_to_475']:,} / {r['seconds_to_475']:.2f} s / {r['eval_return']:.0f}")
            else:
                cells.append(f"not solved / - / {r['eval_return']:.0f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", "npgbook NPG configuration: `" + json.dumps(data["npg_config"]) + "`", ""]
    lines += ["sb3-contrib TRPO: `MlpPolicy`, n_envs " + str(ZOO_N_ENVS) + ", `" + json.dumps(ZOO_TRPO) + "` (RL Zoo)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-9", help="seed range, e.g. 0-9")
    parser.add_argument("--budget", type=int, default=200_000, help="environment steps per run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_cartpole.json")
    parser.add_argument("--report", type=Path, default=HERE / "cartpole_report.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the saved results")
    parser.add_argument("--full-budget", action="store_true", help="train for the whole budget, not until solved")
    args = parser.parse_args()
    global STOP_WHEN_SOLVED
    STOP_WHEN_SOLVED = not args.full_budget
    if args.report_only:
        args.report.write_text(report(json.loads(args.out.read_text())))
        return
    first, last = (int(x) for x in args.seeds.split("-"))
    seeds = list(range(first, last + 1))
    torch.set_num_threads(1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    warm_up()
    runs: dict[str, list[dict]] = {name: [] for name in RUNNERS}
    for seed in seeds:
        for name, runner in RUNNERS.items():
            result = runner(seed, args.budget)
            runs[name].append({"seed": seed, **result})
            print(f"seed {seed} {name}: {json.dumps(result)}", flush=True)
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/bench_cartpole.py --seeds " + args.seeds + f" --budget {args.budget}"
        + (" --full-budget" if args.full_budget else ""),
        "stop_when_solved": STOP_WHEN_SOLVED,
        "versions": versions(),
        "load_average": None if load is None else [round(x, 2) for x in load],
        "load_average_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "budget": args.budget,
        "seeds": seeds,
        "npg_config": asdict(NPG_CONFIG),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    args.report.write_text(report(data))
    print(report(data))


if __name__ == "__main__":
    main()
