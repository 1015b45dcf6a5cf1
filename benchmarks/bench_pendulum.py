"""Benchmark: npgbook NPG and TRPO against sb3-contrib TRPO and tianshou NPG and TRPO on Pendulum-v1.

All five agents train in one process, interleaved seed by seed, with one torch thread, each for
200k environment steps (no early stop, so that final returns compare at one budget). The runners
are in ``agents.py``. For each run it records

* env steps and wall seconds until the mean return of the last 20 finished *training* episodes
  (sampled actions) first reaches -250 and -200;
* the same from checkpoints every 10k steps, each evaluated after training on 10 fresh episodes
  with the deterministic (mean, clipped) action; this is how tianshou's own test decides;
* the final policy's mean return on 20 fresh episodes (mean action), the same evaluator for all.

Agents and their hyperparameters:

* npgbook NPG / TRPO: ``TrainConfig`` defaults with gamma 0.9 (the RL Zoo's Pendulum value) and
  8 copies x 256 steps per batch (observation normalization on, as for every continuous task);
  ``tune_pendulum.py`` tried delta 0.01 and GAE lambda 0.9 on tuning seeds 100-109 and kept these;
* sb3-contrib TRPO: the RL Zoo's tuned Pendulum-v1 hyperparameters (``hyperparams/trpo.yml``: 2 envs,
  n_steps 1024, gamma 0.9, 15 critic updates, gSDE with sample frequency 4);
* tianshou NPG / TRPO: its own Pendulum-v1 tests (``test/continuous/test_npg.py`` and
  ``test_trpo.py``: 16 envs, 2048 steps per collect, gamma 0.95, GAE 0.95, return scaling, 5 critic
  iterations, 2 repetitions; NPG step size 0.5, TRPO max KL 0.005 with 10 backtracks of 0.8).

Peers are benchmark-only dependencies (``pip install -e '.[bench]'`` in a separate venv).

Run:  python benchmarks/bench_pendulum.py [--seeds 0-9] [--agents all]
      python benchmarks/bench_pendulum.py --report-only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agents as A

from npgbook.rl import TrainConfig

HERE = Path(__file__).resolve().parent
ENV_ID = "Pendulum-v1"
THRESHOLDS = (-250.0, -200.0)
BUDGET, CHECKPOINT_EVERY = 200_000, 10_000

NPG_CONFIG = TrainConfig(algo="npg", env_id=ENV_ID, gamma=0.9, num_envs=8, steps_per_env=256)
TRPO_CONFIG = NPG_CONFIG.replace(algo="trpo")

# RL Zoo, hyperparams/trpo.yml, Pendulum-v1 ("Tuned")
ZOO_TRPO = {"n_steps": 1024, "gamma": 0.9, "n_critic_updates": 15, "use_sde": True, "sde_sample_freq": 4}
ZOO_N_ENVS = 2

# tianshou test/continuous/test_npg.py and test_trpo.py (Pendulum-v1, threshold -250)
TIANSHOU_COMMON = {
    "style": "test",
    "lr": 1e-3,
    "gamma": 0.95,
    "collection_step_num_env_steps": 2048,
    "update_step_num_repetitions": 2,
    "batch_size": 99999,
    "hidden_sizes": [64, 64],
    "num_train_envs": 16,
    "gae_lambda": 0.95,
    "return_scaling": True,
    "advantage_normalization": True,
    "optim_critic_iters": 5,
}
TIANSHOU_NPG = {**TIANSHOU_COMMON, "trust_region_size": 0.5}
TIANSHOU_TRPO = {**TIANSHOU_COMMON, "max_kl": 0.005, "backtrack_coeff": 0.8, "max_backtracks": 10}


def _npgbook(config: TrainConfig) -> Any:
    return lambda seed, budget: A.train_npgbook(config, seed, budget, checkpoint_every=CHECKPOINT_EVERY)


RUNNERS = {
    "npgbook NPG": _npgbook(NPG_CONFIG),
    "npgbook TRPO": _npgbook(TRPO_CONFIG),
    "sb3-contrib TRPO": lambda seed, budget: A.train_sb3_trpo(
        ENV_ID, ZOO_TRPO, ZOO_N_ENVS, seed, budget, checkpoint_every=CHECKPOINT_EVERY),
    "tianshou NPG": lambda seed, budget: A.train_tianshou(
        "npg", ENV_ID, TIANSHOU_NPG, seed, budget, checkpoint_every=CHECKPOINT_EVERY),
    "tianshou TRPO": lambda seed, budget: A.train_tianshou(
        "trpo", ENV_ID, TIANSHOU_TRPO, seed, budget, checkpoint_every=CHECKPOINT_EVERY),
}
SETTINGS = {
    "npgbook NPG": f"`{A.config_json(NPG_CONFIG)}`",
    "npgbook TRPO": "the same with algo trpo",
    "sb3-contrib TRPO": f"`MlpPolicy`, n_envs {ZOO_N_ENVS}, `{json.dumps(ZOO_TRPO)}` (RL Zoo)",
    "tianshou NPG": f"`{json.dumps(TIANSHOU_NPG)}` (tianshou's test_npg.py)",
    "tianshou TRPO": f"`{json.dumps(TIANSHOU_TRPO)}` (tianshou's test_trpo.py)",
}


def warm_up(names: list[str]) -> None:
    """One-time import and first-call costs (torch._dynamo, tianshou's imports) before timing."""
    for name in names:
        RUNNERS[name](0, 4096)


def report(data: dict) -> str:
    runs = {name: rs for name, rs in data["runs"].items() if rs}
    for rs in runs.values():
        for r in rs:
            r["summary"] = A.summarize(r, THRESHOLDS, at_steps=100_000)
    plot = HERE / "results" / "pendulum_curves.png"
    A.plot_iqm_curves(runs, np.arange(CHECKPOINT_EVERY, BUDGET + 1, CHECKPOINT_EVERY), plot, THRESHOLDS)
    seeds = data["seeds"]
    lines = [
        "# Benchmark: npgbook NPG and TRPO vs sb3-contrib TRPO and tianshou NPG and TRPO on Pendulum-v1", "",
        f"Run on {data['date']} (UTC) with " + " and ".join(f"`{c}`" for c in data["commands"]) + ".", "",
        "Machine and versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        (f"Load average (1, 5, 15 min) at the start: {data['load_average']}, at the end: {data['load_average_end']}. "
         f"One torch thread per run; agents interleaved seed by seed; {data['wall_minutes']:.0f} min of wall time"
         f"{data.get('note', '')}."), "",
        (f"Seeds {', '.join(map(str, seeds))}; every run trains for {BUDGET:,} env steps (the last batch is "
         "completed). Steps and seconds are counted from before the environment and the model are built; "
         f"checkpoints (every {CHECKPOINT_EVERY:,} steps, at the first update after each multiple) are "
         f"evaluated after training on {A.CHECKPOINT_EPISODES} fresh episodes with the mean action, so "
         "evaluation costs no training time. An unreached threshold counts as +inf in medians and quartiles."),
        "",
        ("" if data.get("finished", True) else "**Partial:** the run was stopped before its end.\n"),
        "## Reaching -250 and -200: training episodes (last-20 mean, sampled actions)", "",
        *A.reached_table(runs, THRESHOLDS, "training"), "",
        "## Reaching -250 and -200: deterministic evaluation at the checkpoints", "",
        *A.reached_table(runs, THRESHOLDS, "eval"), "",
        "Medians over seeds, [IQR] the 25%-75% quantiles.", "",
        "## Returns: interquartile mean over seeds [95% stratified-bootstrap interval]", "",
        *A.returns_table(runs, "100k steps", "200k steps, 20 episodes"), "",
        f"![IQM learning curves](results/{plot.name})", "",
    ]
    for base in ("npgbook NPG", "npgbook TRPO"):
        if base not in runs:
            continue
        for by, what in (("training", "training episodes"), ("eval", "deterministic evaluation")):
            lines += [f"Ratios of medians, peer / {base}, judged on {what}:", "",
                      *A.ratio_table(runs, base, THRESHOLDS, by), ""]
    bad = [(n, r["seed"]) for n, rs in runs.items() for r in rs if not r.get("finite_params", True)]
    skipped = {n: sum(r.get("skipped_updates", 0) for r in rs) for n, rs in runs.items() if n.startswith("npgbook")}
    lines += [f"Runs with non-finite parameters: {bad or 'none'}. Skipped npgbook updates: {skipped}.", ""]
    lines += ["## Runs that reached -250 and fell", "",
              "Runs whose deterministic checkpoints reached -250 but whose final evaluation is below -400:", "",
              *A.falls(runs, -250.0, -400.0), "", FALL_NOTE, ""]
    lines += ["## Per seed", "", "steps to -250 (training) / steps to -250 (eval) / final eval return:", "",
              "| seed | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for seed in seeds:
        cells = []
        for rs in runs.values():
            r = next((x for x in rs if x["seed"] == seed), None)
            cells.append("not run" if r is None else
                         f"{A.fmt(r['summary']['training_steps_-250'])} / {A.fmt(r['summary']['eval_steps_-250'])} / "
                         f"{r['eval_return']:.0f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", "## Settings", ""] + [f"* {n}: {SETTINGS[n]}" for n in runs] + ["", NOTES, ""]
    for rs in runs.values():
        for r in rs:
            del r["summary"]
    return "\n".join(lines)


FALL_NOTE = """A fall is a trajectory that reaches the swing-up, then loses it while sigma keeps shrinking. For
npgbook NPG's seed 9, `pendulum_npg_fall.py` reruns the same seed with one change at a time
([results/pendulum_npg_fall.md](results/pendulum_npg_fall.md)): a floor of 0.3 on sigma does *not*
stop the fall (the return stays near -600 for 60k steps with sigma pinned at the floor), so the
shrinking sigma comes with the fall rather than causing it; a smaller delta, no observation
normalization or GAE lambda 0.9 each give a different trajectory that keeps learning. npgbook
therefore adds no sigma floor. Nor do those changes help in general: on tuning seeds 100-109
(`tune_pendulum.py`, [results/tune_pendulum.md](results/tune_pendulum.md)) the settings used here
hold on 9/10 runs, delta 0.01, GAE lambda 0.9 and both on 8/10 each. Seed 6 was not studied separately. The falls are what
separates the final returns: sb3-contrib TRPO (the RL Zoo's tuned settings, with gSDE) has none
and by far the tightest final spread, tianshou's fixed-step NPG has the most. npgbook's speed to
-250 does not buy a steadier end point."""

NOTES = """## How to read this

* Two ways of deciding "reached": the training episodes use sampled actions, so a wide Gaussian
  scores worse on them than its mean action does; the checkpoint evaluation uses the mean action
  (tianshou's own tests stop on such deterministic test episodes). tianshou starts from
  sigma = 1 in its normalized action units, that is 2 in torque, and keeps its training returns
  low for longer; judged on the mean action it learns much sooner.
* Seconds are wall time on a shared 2-core machine (the load averages above); the ratios between
  agents of one run are the numbers to read.
* sb3-contrib TRPO uses gSDE (state-dependent exploration, resampled every 4 steps), as the RL
  Zoo's tuned settings do; it is part of why its seconds per 1,000 steps are high.
* tianshou's NPG scales the natural direction by a fixed step size (0.5), not by a KL budget."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-9", help="seed range, e.g. 0-9")
    parser.add_argument("--agents", default=",".join(RUNNERS), help="comma-separated agent names")
    parser.add_argument("--budget", type=int, default=BUDGET, help="env steps per run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_pendulum.json")
    parser.add_argument("--report", type=Path, default=HERE / "pendulum_report.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from --out")
    parser.add_argument("--merge", type=Path, nargs="+", help="merge these result files into --out, then report")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        data = {**parts[0], "commands": [c for p in parts for c in p["commands"]],
                "seeds": sorted(s for p in parts for s in p["seeds"]),
                "load_average_end": parts[-1]["load_average_end"],
                "wall_minutes": max(p["wall_minutes"] for p in parts),
                "note": f" ({len(parts)} processes side by side, one per core)",
                "runs": {n: sorted((r for p in parts for r in p["runs"].get(n, [])), key=lambda r: r["seed"])
                         for n in parts[0]["runs"]}}
        args.out.write_text(json.dumps(data) + "\n")
        args.report_only = True
    if args.report_only:
        args.report.write_text(report(json.loads(args.out.read_text())))
        return
    names, seeds = A.parse_command_line(args.agents, args.seeds, RUNNERS)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]
    warm_up(names)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    command = f"python benchmarks/bench_pendulum.py --seeds {args.seeds} --agents '{args.agents}'"
    date = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    versions = A.versions(("stable-baselines3", "sb3-contrib", "tianshou"))

    def save(finished: bool) -> dict:
        """Write the results so far (after every run, so that a cut-short run keeps them)."""
        data = {"date": date, "commands": [command], "finished": finished, "versions": versions,
                "load_average": load, "load_average_end": [round(x, 2) for x in os.getloadavg()],
                "wall_minutes": (time.perf_counter() - t0) / 60,
                "seeds": [s for s in seeds if any(r["seed"] == s for rs in runs.values() for r in rs)],
                "runs": runs}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data) + "\n")
        return data

    for seed in seeds:
        for name in names:
            result = RUNNERS[name](seed, args.budget)
            runs[name].append({"seed": seed, **result})
            brief = {k: v for k, v in result.items() if not isinstance(v, list)}
            print(f"seed {seed} {name}: {json.dumps(brief)}", flush=True)
            save(False)
    save(True)
    args.report.write_text(report(json.loads(args.out.read_text())))
    print(args.report.read_text())


if __name__ == "__main__":
    main()
