"""Benchmark: npgbook NPG (Algorithm 1) against sb3-contrib TRPO and tianshou NPG and TRPO on CartPole-v1.

All agents train in one process, interleaved seed by seed, with ``torch.set_num_threads(1)``,
until the mean return of their last 20 training episodes reaches 475 or a budget of real
environment steps runs out (``--full-budget`` trains for the whole budget instead). The runners
are in ``agents.py``. For each run it records

* env steps and wall seconds (from before the env and the model are built) until the mean return
  of the last 20 finished *training* episodes first reaches 475;
* whether that happened within the budget (200k steps);
* the final policy's mean return over 20 fresh evaluation episodes (most probable action, the
  same evaluator for all).

Agents and their hyperparameters:

* npgbook NPG: ``TrainConfig`` defaults (chosen by ``tune_npg.py``);
* sb3-contrib TRPO: the RL Zoo's tuned CartPole-v1 hyperparameters (``hyperparams/trpo.yml``);
* tianshou NPG / TRPO: tianshou has no CartPole example for them; the settings of its Pendulum-v1
  tests with gamma 0.99, and the step size (NPG) or KL bound (TRPO) chosen by
  ``tune_tianshou_cartpole.py`` on seeds 100-102 (``results/tune_tianshou_cartpole.md``).

Peers are benchmark-only dependencies: install them into a separate virtual environment (see
README.md in this folder). Results go to ``benchmarks/results/`` and the report to
``benchmarks/cartpole_report.md``.

Run:  python benchmarks/bench_cartpole.py [--seeds 0-9] [--budget 200000] [--agents all]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agents as A

from npgbook.rl import TrainConfig

HERE = Path(__file__).resolve().parent
ENV_ID, THRESHOLD = "CartPole-v1", 475.0

# npgbook NPG: chosen by benchmarks/tune_npg.py (see results/tune_npg.md)
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

# tianshou: its Pendulum-v1 tests' settings with CartPole's usual gamma; the step is tuned
_TIANSHOU = {
    "style": "test", "lr": 1e-3, "gamma": 0.99, "collection_step_num_env_steps": 2048,
    "update_step_num_repetitions": 2, "batch_size": 99999, "hidden_sizes": [64, 64], "num_train_envs": 16,
    "gae_lambda": 0.95, "return_scaling": True, "advantage_normalization": True, "optim_critic_iters": 5,
}
TIANSHOU_BASE = {
    "npg": {**_TIANSHOU, "trust_region_size": 0.5},
    "trpo": {**_TIANSHOU, "max_kl": 0.005, "backtrack_coeff": 0.8, "max_backtracks": 10},
}
# chosen by tune_tianshou_cartpole.py (results/tune_tianshou_cartpole.md)
TIANSHOU_CHOSEN = {"npg": {"trust_region_size": 0.25}, "trpo": {"max_kl": 0.01}}
TIANSHOU = {a: {**TIANSHOU_BASE[a], **TIANSHOU_CHOSEN[a]} for a in TIANSHOU_BASE}

STOP_WHEN_SOLVED = True  # set by --full-budget


def _stop() -> A.Stop | None:
    return A.last_mean_reaches(THRESHOLD) if STOP_WHEN_SOLVED else None


RUNNERS: dict[str, Any] = {
    "npgbook NPG": lambda seed, budget: A.train_npgbook(NPG_CONFIG, seed, budget, stop=_stop()),
    "sb3-contrib TRPO": lambda seed, budget: A.train_sb3_trpo(ENV_ID, ZOO_TRPO, ZOO_N_ENVS, seed, budget, stop=_stop()),
    "tianshou NPG": lambda seed, budget: A.train_tianshou("npg", ENV_ID, TIANSHOU["npg"], seed, budget, stop=_stop()),
    "tianshou TRPO": lambda seed, budget: A.train_tianshou("trpo", ENV_ID, TIANSHOU["trpo"], seed, budget,
                                                           stop=_stop()),
}


def warm_up(names: list[str]) -> None:
    """Pay one-time import and first-call costs (torch.optim imports torch._dynamo) before timing."""
    for name in names:
        RUNNERS[name](0, 2048)


def report(data: dict) -> str:
    """The markdown report of a saved benchmark run."""
    runs, budget, seeds = data["runs"], data["budget"], data["seeds"]
    reached = {n: [A.first_reached(r, THRESHOLD) for r in rs] for n, rs in runs.items()}
    lines = [
        "# Benchmark: npgbook NPG vs sb3-contrib TRPO and tianshou NPG and TRPO on CartPole-v1", "",
        f"Run on {data['date']} (UTC) with `{data['command']}`.", "",
        "Machine and versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        (f"Load average (1, 5, 15 min) when the run started: {data['load_average']}, when it ended: "
         f"{data.get('load_average_end')}. One torch thread per run; runs interleaved seed by seed"
         f"{'; ' + data['note'] if data.get('note') else ''}."), "",
        (f"Seeds {seeds[0]}-{seeds[-1]}, at most {budget:,} environment steps per run"
         + (", each run stopped once solved" if data.get("stop_when_solved") else "")
         + f". 'Solved' = the mean return of the last {A.WINDOW} finished training episodes reaches "
         f"{THRESHOLD:.0f}; steps and seconds are counted from before the environment and the model are "
         f"built. Evaluation: the final policy's most probable action on {A.EVAL_EPISODES} fresh episodes "
         "(the same evaluator for all)."), "",
        ("| algorithm | solved within budget | steps to 475: median [IQR] | seconds to 475: median [IQR] | "
         "IQM seconds to 475 [95% CI] | mean final eval return | seconds per 1,000 env steps (median) |"),
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        st, se = [s for s, _ in reached[name]], [t for _, t in reached[name]]
        qs, qt = A.quartiles_inf(st), A.quartiles_inf(se)
        iqm = "-" if None in se else "{:.2f} [{:.2f}, {:.2f}]".format(*A.iqm_ci(se))
        evals = [r["eval_return"] for r in rs]
        spk = np.median([1000 * r["total_seconds"] / r["total_steps"] for r in rs])
        lines.append(
            f"| {name} | {sum(s is not None for s in st)}/{len(rs)} | {A.fmt(A.median_inf(st))} "
            f"[{A.fmt(qs[0])}-{A.fmt(qs[1])}] | {A.fmt(A.median_inf(se), '.2f')} "
            f"[{A.fmt(qt[0], '.2f')}-{A.fmt(qt[1], '.2f')}] | {iqm} | {np.mean(evals):.1f} (min {min(evals):.0f}) "
            f"| {spk:.3f} |")
    base = "npgbook NPG"
    lines += ["", f"Wall seconds to 475, peer / {base}: ratio of the medians, and the smallest and largest "
              "ratio of the same seed's two runs (a seed the peer did not solve counts as +inf):", "",
              "| peer | ratio of medians (seconds) | per seed: min - max | ratio of medians (steps) |",
              "|---|---|---|---|"]
    b_st, b_se = [s for s, _ in reached[base]], [t for _, t in reached[base]]
    for name in runs:
        if name == base:
            continue
        st, se = [s for s, _ in reached[name]], [t for _, t in reached[name]]
        ms, mb = A.median_inf(se), A.median_inf(b_se)
        per = [(np.inf if p is None else p) / (np.inf if b is None else b) for p, b in zip(se, b_se)]
        steps_ratio = A.median_inf(st) / A.median_inf(b_st)
        lines.append(f"| {name} | **{A.fmt(ms / mb, '.1f')}x** | {A.fmt(min(per), '.1f')}x - "
                     f"{A.fmt(max(per), '.1f')}x | {A.fmt(steps_ratio, '.2f')}x |")
    bad = [(n, r["seed"]) for n, rs in runs.items() for r in rs if not r.get("finite_params", True)]
    lines += ["", f"Runs with non-finite parameters: {bad or 'none'}. Skipped npgbook updates: "
              f"{sum(r.get('skipped_updates', 0) for r in runs[base])}.", ""]
    lines += ["Per seed (steps to 475 / seconds to 475 / final eval return):", "",
              "| seed | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for k, seed in enumerate(seeds):
        cells = []
        for name, rs in runs.items():
            s, t = reached[name][k]
            cells.append(f"{A.fmt(s)} / {A.fmt(t, '.2f')} s / {rs[k]['eval_return']:.0f}" if s is not None
                         else f"not solved / - / {rs[k]['eval_return']:.0f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", "npgbook NPG configuration: `"
              + json.dumps({k: v for k, v in data["npg_config"].items() if k not in ("seed", "total_steps")}) + "`", "",
              f"sb3-contrib TRPO: `MlpPolicy`, n_envs {ZOO_N_ENVS}, `{json.dumps(ZOO_TRPO)}` (RL Zoo)", ""]
    for algo in ("npg", "trpo"):
        lines += [f"tianshou {algo.upper()}: `{json.dumps(TIANSHOU[algo])}` (step chosen by "
                  "`tune_tianshou_cartpole.py`, see `results/tune_tianshou_cartpole.md`)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-9", help="seed range, e.g. 0-9")
    parser.add_argument("--budget", type=int, default=200_000, help="environment steps per run")
    parser.add_argument("--agents", default=",".join(RUNNERS), help="comma-separated agent names")
    parser.add_argument("--note", default="", help="a remark on the conditions, copied into the report")
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
    names, seeds = A.parse_command_line(args.agents, args.seeds, RUNNERS)
    torch.set_num_threads(1)
    load = [round(x, 2) for x in os.getloadavg()]
    warm_up(names)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for seed in seeds:
        for name in names:
            result = RUNNERS[name](seed, args.budget)
            runs[name].append({"seed": seed, **result})
            brief = {k: v for k, v in result.items() if not isinstance(v, list)}
            print(f"seed {seed} {name}: {json.dumps(brief)}", flush=True)
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "command": f"python benchmarks/bench_cartpole.py --seeds {args.seeds} --budget {args.budget}"
        + (f" --agents '{args.agents}'" if args.agents != ",".join(RUNNERS) else "")
        + (" --full-budget" if args.full_budget else ""),
        "note": args.note,
        "stop_when_solved": STOP_WHEN_SOLVED,
        "versions": A.versions(("stable-baselines3", "sb3-contrib", "tianshou")),
        "load_average": load,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "budget": args.budget,
        "seeds": seeds,
        "npg_config": asdict(NPG_CONFIG),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data) + "\n")
    args.report.write_text(report(data))
    print(report(data))


if __name__ == "__main__":
    main()
