"""Benchmark: does NPG "converge quicker and better"? Six update rules, tuned alike, 10 seeds, two tasks.

The experiment is defined in :mod:`npgbook.experiments.quicker_better` (methods, grids, seeds,
tasks, scores, statistics); this script runs it and writes the report:

1. **tuning**: every method over its six step sizes on the tuning seeds 100-104;
2. **choice**: per task and method, the step size with the highest mean area under the curve;
3. **evaluation**: every method at its chosen step size on the evaluation seeds 1000-1009;
4. **report**: per-run summaries stored as package data
   (``npgbook/experiments/data/quicker_better.json``, read by chapter 7's section and the claim
   ``converges_quicker_and_better``), ``benchmarks/quicker_better_report.md`` and its figures.

Each run's raw result is one JSON file under ``results/quicker_better/{tuning,evaluation}/``,
written when the run finishes: a killed sweep restarted with the same command skips the runs
whose files exist. ``--address`` runs the sweeps on a Ray cluster (``pip install
'npgbook[sweep]'``); without it they run in ``--workers`` local processes.

Run:  python benchmarks/quicker_better.py [--workers 2] [--address ADDR] [--report-only]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from npgbook.experiments import quicker_better as qb
from npgbook.rl.sweep import Sweep, load_results, pending_runs, run_sweep
from report_quicker_better import render

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "quicker_better"
STORED = HERE.parent / "npgbook" / "experiments" / "data" / "quicker_better.json"
REPORT = HERE / "quicker_better_report.md"


def run_phase(name: str, sweeps: Sequence[Any], workers: int, address: str | None) -> list[dict[str, Any]]:
    """Run the pending runs of ``sweeps``, log how many ran and how long it took, archive the phase's
    runs, and return their summaries."""
    out = RESULTS / name
    paths = []
    for sweep in sweeps:
        pending = len(pending_runs(sweep, out))
        start = time.perf_counter()
        paths += run_sweep(sweep, out, workers=workers, address=address)
        if pending:
            with open(RESULTS / "sweep_log.jsonl", "a") as log:
                entry = {"phase": name, "runs": pending, "seconds": round(time.perf_counter() - start, 1),
                         "workers": workers, "address": address, "date": time.strftime("%Y-%m-%d %H:%M")}
                log.write(json.dumps(entry) + "\n")
    results = list(load_results(paths))
    if len(results) != len(paths):
        raise RuntimeError(f"{len(paths) - len(results)} runs of the {name} phase have no result")
    with gzip.open(RESULTS / f"{name}_runs.jsonl.gz", "wt") as f:  # the raw results, committed
        for r in results:
            f.write(json.dumps(r) + "\n")
    return [qb.summarize_run(r) for r in results]


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=HERE
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--address", default=None, help="Ray cluster address ('local' starts one here)")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the report from stored summaries")
    args = ap.parse_args()
    if not args.report_only:
        restore(RESULTS)
        tuning = run_phase("tuning", [qb.tuning_sweep()], args.workers, args.address)
        chosen = qb.choose(tuning)
        beyond = qb.beyond_grid(chosen)
        edge_sweeps = [
            Sweep(methods={m: {**qb.METHODS[m], qb.STEP_SIZE[m]: v}}, tasks={t: qb.task_changes(qb.TASKS[t])},
                  seeds=qb.TUNING_SEEDS)
            for t, per_method in beyond.items() for m, v in per_method.items()
        ]
        edge = run_phase("beyond_grid", edge_sweeps, args.workers, args.address) if edge_sweeps else []
        evaluation = run_phase(
            "evaluation", [qb.evaluation_sweep(t, chosen[t]) for t in qb.TASKS], args.workers, args.address
        )
        # the follow-up: Adam PG with one step per batch, tuned and evaluated the same way
        follow = qb.ONE_STEP_ADAM
        follow_tuning = run_phase("one_step_adam_tuning", [qb.tuning_sweep(methods=follow)], args.workers,
                                  args.address)
        follow_chosen = qb.choose(follow_tuning, tuple(follow))
        follow_eval = run_phase(
            "one_step_adam_evaluation",
            [qb.evaluation_sweep(t, follow_chosen[t], methods=follow) for t in qb.TASKS],
            args.workers,
            args.address,
        )
        import rliable
        import torch

        meta = {
            "command": "python benchmarks/quicker_better.py --workers %d" % args.workers,
            "commit": git_commit(),
            "date": time.strftime("%Y-%m-%d"),
            "sweep_log": [json.loads(line) for line in (RESULTS / "sweep_log.jsonl").read_text().splitlines()],
            "workers": args.workers,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
            "torch": torch.__version__,
            "rliable": getattr(rliable, "__version__", "1.2.0"),
            "tasks": {k: vars(t) for k, t in qb.TASKS.items()},
            "grids": qb.GRIDS,
            "tuning_seeds": qb.TUNING_SEEDS,
            "eval_seeds": qb.EVAL_SEEDS,
        }
        STORED.write_text(
            json.dumps(
                {"meta": meta, "chosen": chosen, "tuning": tuning, "beyond_grid": edge, "evaluation": evaluation,
                 "one_step_adam": {"chosen": follow_chosen, "tuning": follow_tuning, "evaluation": follow_eval}},
                indent=0,
            )
        )
    write_report(qb.load_stored())


def restore(results: Path) -> None:
    """Unpack the committed archives into run files, so that a fresh clone's rerun skips those runs."""
    for phase in ("tuning", "beyond_grid", "evaluation", "one_step_adam_tuning", "one_step_adam_evaluation"):
        archived = results / f"{phase}_runs.jsonl.gz"
        if not archived.exists():
            continue
        (results / phase).mkdir(parents=True, exist_ok=True)
        with gzip.open(archived, "rt") as f:
            for line in f:
                run = json.loads(line)
                path = results / phase / f"{run['key']}.json"
                if not path.exists():
                    path.write_text(line.strip())


def write_report(stored: dict[str, Any]) -> None:
    REPORT.write_text(render(stored, HERE))
    print(f"wrote {REPORT.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
