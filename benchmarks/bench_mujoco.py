"""Benchmark on MuJoCo (gymnasium + the ``mujoco`` package): InvertedPendulum-v5 in the same run, Hopper-v5 at 1M.

``--task inverted-pendulum``: npgbook NPG and TRPO against sb3-contrib TRPO and tianshou NPG and
TRPO, in one process, interleaved seed by seed, one torch thread, 100k env steps each (no early
stop). Steps and seconds to a mean return of 950, judged on the last 20 training episodes and on
checkpoints every 5k steps (10 fresh episodes, deterministic action, evaluated after training).

* npgbook: ``TrainConfig`` defaults (observation normalization on for continuous actions) with
  delta 0.01 and 256 steps per copy (2,048 per batch), chosen over delta 0.02 / 0.01 x 128 / 256
  steps on tuning seeds 100-104 (``--tune``: 100k steps without early stop, the most runs that
  reach 950 *and* still score 950 at the end; ``results/tune_inverted_pendulum.md``);
* sb3-contrib TRPO: the RL Zoo has no TRPO entry for InvertedPendulum, so its defaults, one env;
* tianshou NPG / TRPO: its ``examples/mujoco/mujoco_npg.py`` and ``mujoco_trpo.py`` settings
  (normalized observations, 16 envs, 1024 steps per collect, 20 critic iterations, NPG step 0.1,
  TRPO max KL 0.01), without their linear learning-rate decay over 3M steps, which changes the
  critic's rate by less than 4 % within 100k steps.

``--task hopper``: npgbook NPG alone for 1M env steps per seed (checkpoints every 50k steps),
set beside the published sb3-contrib and tianshou tables (other versions of everything).

Run:  python benchmarks/bench_mujoco.py --tune          (npgbook's InvertedPendulum sweep, ~5 min)
      python benchmarks/bench_mujoco.py --task inverted-pendulum [--seeds 0-4]
      python benchmarks/bench_mujoco.py --task hopper [--seeds 0-4]
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

IP_DEFAULTS = TrainConfig(algo="npg", env_id="InvertedPendulum-v5")
IP_TUNING_GRID = ({}, {"delta": 0.01}, {"steps_per_env": 256}, {"delta": 0.01, "steps_per_env": 256})
TUNING_SEEDS = (100, 101, 102, 103, 104)
# chosen by --tune (results/tune_inverted_pendulum.md)
IP_NPG = IP_DEFAULTS.replace(delta=0.01, steps_per_env=256)

_TIANSHOU_MUJOCO = {
    "style": "mujoco", "lr": 1e-3, "gamma": 0.99, "collection_step_num_env_steps": 1024,
    "update_step_num_repetitions": 1, "batch_size": None, "hidden_sizes": [64, 64], "num_train_envs": 16,
    "gae_lambda": 0.95, "return_scaling": True, "advantage_normalization": True, "optim_critic_iters": 20,
}
TIANSHOU_NPG = {**_TIANSHOU_MUJOCO, "trust_region_size": 0.1}
TIANSHOU_TRPO = {**_TIANSHOU_MUJOCO, "max_kl": 0.01, "backtrack_coeff": 0.8, "max_backtracks": 10}

HOPPER_NPG = TrainConfig(algo="npg", env_id="Hopper-v5", num_envs=16, steps_per_env=128, hidden=(64, 64),
                         init_log_std=-0.5)

# Published 1M-step results (other versions of the libraries, of gym/gymnasium and of MuJoCo).
PUBLISHED_HOPPER = [
    ("sb3-contrib TRPO", "3372 ± 215", "3 seeds, 1M steps, Hopper-v3, sb3-contrib documentation (RL Zoo settings)"),
    ("tianshou NPG", "1915 ± 551", "10 seeds, best over the first 1M steps, Hopper-v3, tianshou examples/mujoco"),
]

TASKS: dict[str, dict[str, Any]] = {
    "inverted-pendulum": {
        "env_id": "InvertedPendulum-v5", "thresholds": (950.0,), "budget": 100_000, "every": 5_000,
        "at": 50_000, "report": "inverted_pendulum_report.md", "out": "bench_inverted_pendulum.json",
        "agents": {
            "npgbook NPG": lambda s, b, e: A.train_npgbook(IP_NPG, s, b, checkpoint_every=e),
            "npgbook TRPO": lambda s, b, e: A.train_npgbook(IP_NPG.replace(algo="trpo"), s, b, checkpoint_every=e),
            "sb3-contrib TRPO (defaults)": lambda s, b, e: A.train_sb3_trpo("InvertedPendulum-v5", {}, 1, s, b,
                                                                            checkpoint_every=e),
            "tianshou NPG": lambda s, b, e: A.train_tianshou("npg", "InvertedPendulum-v5", TIANSHOU_NPG, s, b,
                                                             checkpoint_every=e),
            "tianshou TRPO": lambda s, b, e: A.train_tianshou("trpo", "InvertedPendulum-v5", TIANSHOU_TRPO, s, b,
                                                              checkpoint_every=e),
        },
        "notes": [
            "## Why npgbook's settings are not the defaults", "",
            ("A first run of this benchmark used the `TrainConfig` defaults (delta 0.02, 8 x 128 steps per "
             "batch), chosen by a sweep that stopped each run once it reached 950 and so could not see what "
             "came after. With the mean action, npgbook NPG and TRPO balanced the pole on every seed after "
             "about 11k steps (1.2-1.3 s), earlier than every peer; but on the training episodes only 3/5 "
             "NPG and 2/5 TRPO runs reached 950, and 1 NPG and 3 TRPO runs ended far below it (final "
             "evaluations 26 for NPG; 2, 146 and 343 for TRPO). NPG seed 2 went from a last-20 mean of "
             "1000 at 57k steps to 46 at 61k. A likely reason, not tested here: once every episode of a "
             "batch lasts the full 1,000 steps, the batch says little about which way is better, yet an "
             "update of fixed KL still moves the policy by delta. Halving delta and doubling the batch makes "
             "each update spend less on more data; on the tuning seeds this held on 5/5 runs against 4/5 "
             "for the defaults (`results/tune_inverted_pendulum.md`). The first run's results are kept in "
             "`results/bench_inverted_pendulum_defaults.json`."), ""],
        "settings": {
            "npgbook NPG": f"`{A.config_json(IP_NPG)}`",
            "npgbook TRPO": "the same with algo trpo",
            "sb3-contrib TRPO (defaults)": "`MlpPolicy`, one env, sb3-contrib's defaults",
            "tianshou NPG": f"`{json.dumps(TIANSHOU_NPG)}` (examples/mujoco/mujoco_npg.py)",
            "tianshou TRPO": f"`{json.dumps(TIANSHOU_TRPO)}` (examples/mujoco/mujoco_trpo.py)",
        },
    },
    "hopper": {
        "env_id": "Hopper-v5", "thresholds": (1000.0, 2000.0), "budget": 1_000_000, "every": 50_000,
        "at": 500_000, "report": "hopper_report.md", "out": "bench_hopper.json",
        "agents": {"npgbook NPG": lambda s, b, e: A.train_npgbook(HOPPER_NPG, s, b, checkpoint_every=e)},
        "settings": {"npgbook NPG": f"`{A.config_json(HOPPER_NPG)}`"},
    },
}


def report(task: str, data: dict) -> str:
    spec = TASKS[task]
    thresholds, budget = spec["thresholds"], spec["budget"]
    runs = {name: rs for name, rs in data["runs"].items() if rs}
    for rs in runs.values():
        for r in rs:
            r["summary"] = A.summarize(r, thresholds, at_steps=spec["at"])
    plot = HERE / "results" / f"{task}_curves.png"
    A.plot_iqm_curves(runs, np.arange(spec["every"], budget + 1, spec["every"]), plot, thresholds)
    names = " and ".join(runs)
    lines = [
        f"# Benchmark on {spec['env_id']} (MuJoCo): {names}", "",
        f"Run on {data['date']} (UTC) with `{data['command']}`.", "",
        "Machine and versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        (f"Load average (1, 5, 15 min) at the start: {data['load_average']}, at the end: {data['load_average_end']}; "
         f"{data['wall_minutes']:.0f} min of wall time. One torch thread; agents interleaved seed by seed."), "",
        (f"Seeds {', '.join(map(str, data['seeds']))}; every run trains for {budget:,} env steps. Steps and seconds "
         "count from before the environment and the model are built; a threshold is reached by the mean of the "
         f"last {A.WINDOW} training episodes (sampled actions) or by a checkpoint (every {spec['every']:,} steps, "
         f"{A.CHECKPOINT_EPISODES} fresh episodes, deterministic action, evaluated after training)."), "",
        ("" if data.get("finished", True) else "**Partial:** the run was stopped before its end.\n"),
        "## Reaching the thresholds: training episodes", "", *A.reached_table(runs, thresholds, "training"), "",
        "## Reaching the thresholds: deterministic evaluation at the checkpoints", "",
        *A.reached_table(runs, thresholds, "eval"), "",
        "Medians over seeds, [IQR] the 25%-75% quantiles; an unreached threshold counts as +inf.", "",
        "## Returns: interquartile mean over seeds [95% stratified-bootstrap interval]", "",
        *A.returns_table(runs, f"{spec['at'] // 1000}k steps", f"{budget // 1000}k steps, {A.EVAL_EPISODES} episodes"),
        "", f"![IQM learning curves](results/{plot.name})", "",
    ]
    if len(runs) > 1 and "npgbook NPG" in runs:
        for by, what in (("training", "training episodes"), ("eval", "deterministic evaluation")):
            lines += [f"Ratios of medians, peer / npgbook NPG, judged on {what}:", "",
                      *A.ratio_table(runs, "npgbook NPG", thresholds, by), ""]
    if task == "hopper":
        lines += ["## Published results (other versions: labelled, not rerun here)", "",
                  "| agent | return at 1M steps | how it was measured |", "|---|---|---|"]
        lines += [f"| {a} | {v} | {how} |" for a, v, how in PUBLISHED_HOPPER]
        final = [r["eval_return"] for r in runs["npgbook NPG"]]
        best = [max(c[2] for c in r["checkpoints"]) for r in runs["npgbook NPG"]]
        lines += [f"| npgbook NPG (this run) | {np.mean(final):.0f} ± {np.std(final, ddof=1) if len(final) > 1 else 0:.0f}"
                  f" final; best checkpoint {np.mean(best):.0f} ± {np.std(best, ddof=1) if len(best) > 1 else 0:.0f} | "
                  f"{len(final)} seeds, Hopper-v5, final policy on {A.EVAL_EPISODES} episodes; 'best' = the best "
                  f"checkpoint, as tianshou's table reports |", ""]
    bad = [(n, r["seed"]) for n, rs in runs.items() for r in rs if not r.get("finite_params", True)]
    skipped = {n: sum(r.get("skipped_updates", 0) for r in rs) for n, rs in runs.items() if n.startswith("npgbook")}
    lines += [f"Runs with non-finite parameters: {bad or 'none'}. Skipped npgbook updates: {skipped}.", ""]
    lines += ["## Per seed", "", f"steps to {A.label(thresholds[0])} (training) / (eval) / final eval return:", "",
              "| seed | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    key = A.label(thresholds[0])
    for seed in data["seeds"]:
        cells = []
        for rs in runs.values():
            r = next((x for x in rs if x["seed"] == seed), None)
            cells.append("not run" if r is None else f"{A.fmt(r['summary'][f'training_steps_{key}'])} / "
                         f"{A.fmt(r['summary'][f'eval_steps_{key}'])} / {r['eval_return']:.0f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", "## Settings", ""] + [f"* {n}: {spec['settings'][n]}" for n in runs] + [""]
    lines += spec.get("notes", [])
    for rs in runs.values():
        for r in rs:
            del r["summary"]
    return "\n".join(lines)


def tune() -> None:
    """npgbook NPG on InvertedPendulum-v5: a small grid on the tuning seeds, 100k steps, no early stop.

    A run *holds* if its last-20 training mean reaches 950 and its final policy (mean action,
    20 episodes) scores at least 950. Chosen: the most runs that hold, then the fewest median
    steps to 950 on the training episodes.
    """
    torch.set_num_threads(1)
    lines = ["# npgbook NPG on InvertedPendulum-v5: the small sweep that chose its settings", "",
             f"Run on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} (UTC) with "
             "`python benchmarks/bench_mujoco.py --tune`; seeds "
             f"{', '.join(map(str, TUNING_SEEDS))}; 100k steps each, no early stop. A run holds if its "
             "last-20 training mean reaches 950 and its final evaluation (20 episodes, mean action) is at "
             "least 950. Chosen: the most runs that hold, then the fewest median steps to 950.", "",
             "| change from the defaults | runs that hold | steps to 950 per seed | median | final eval per seed |",
             "|---|---|---|---|---|"]
    rows = []
    for change in IP_TUNING_GRID:
        res = [A.train_npgbook(IP_DEFAULTS.replace(**change), s, 100_000) for s in TUNING_SEEDS]
        steps = [A.first_reached(r, 950.0)[0] for r in res]
        final = [r["eval_return"] for r in res]
        holds = sum(st is not None and f >= 950.0 for st, f in zip(steps, final))
        rows.append((change, holds, steps, final))
        print(json.dumps({"change": change, "holds": holds, "steps": steps, "final": final}), flush=True)
    best = min(rows, key=lambda r: (-r[1], A.median_inf(r[2])))
    for row in rows:
        change, holds, steps, final = row
        name = (json.dumps(change) if change else "none (defaults)") + (" **(chosen)**" if row is best else "")
        lines.append(f"| {name} | {holds}/{len(TUNING_SEEDS)} | " + ", ".join(A.fmt(v) for v in steps)
                     + f" | {A.fmt(A.median_inf(steps))} | " + ", ".join(f"{f:.0f}" for f in final) + " |")
    lines += ["", f"Chosen: `{json.dumps(best[0])}` (copied into `bench_mujoco.IP_NPG`).", ""]
    (HERE / "results" / "tune_inverted_pendulum.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS))
    parser.add_argument("--tune", action="store_true", help="run npgbook's InvertedPendulum sweep and stop")
    parser.add_argument("--seeds", default="0-4", help="seed range, e.g. 0-4")
    parser.add_argument("--agents", default=None, help="comma-separated agent names (default: all of the task)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the saved results")
    args = parser.parse_args()
    if args.tune:
        tune()
        return
    if args.task is None:
        parser.error("--task is required (or --tune)")
    spec = TASKS[args.task]
    out, rep = HERE / "results" / spec["out"], HERE / spec["report"]
    if args.report_only:
        rep.write_text(report(args.task, json.loads(out.read_text())))
        return
    names, seeds = A.parse_command_line(args.agents or ",".join(spec["agents"]), args.seeds, spec["agents"])
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]
    for name in names:  # one-time import and first-call costs, before timing
        spec["agents"][name](0, 4096, None)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    command = f"python benchmarks/bench_mujoco.py --task {args.task} --seeds {args.seeds}" + (
        f" --agents '{args.agents}'" if args.agents else "")
    date = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    versions = A.versions(("mujoco", "stable-baselines3", "sb3-contrib", "tianshou"))

    def save(finished: bool) -> None:
        data = {"date": date, "command": command, "finished": finished, "versions": versions, "load_average": load,
                "load_average_end": [round(x, 2) for x in os.getloadavg()],
                "wall_minutes": (time.perf_counter() - t0) / 60,
                "seeds": [s for s in seeds if any(r["seed"] == s for rs in runs.values() for r in rs)], "runs": runs}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data) + "\n")

    for seed in seeds:
        for name in names:
            result = spec["agents"][name](seed, spec["budget"], spec["every"])
            runs[name].append({"seed": seed, **result})
            brief = {k: v for k, v in result.items() if not isinstance(v, list)}
            print(f"seed {seed} {name}: {json.dumps(brief)}", flush=True)
            save(False)
    save(True)
    rep.write_text(report(args.task, json.loads(out.read_text())))
    print(rep.read_text())


if __name__ == "__main__":
    main()
