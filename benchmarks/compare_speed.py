"""Same-run comparison of two versions of npgbook's NPG: wall time per environment step and steps to 475.

Each version (a git revision, or the working tree) gets a worker process with its own copy of
``npgbook`` on ``PYTHONPATH``; both pay their one-time import and first-call costs in a warm-up
run before anything is timed. Then, seed by seed, the two workers train NPG with *their own*
default ``TrainConfig`` until the mean return of the last 20 training episodes reaches 475 (or the
budget runs out), taking turns (A, B, then B, A, ...) so that a change in the machine's load hits
both alike. Time is counted from building the ``Trainer``, as in ``bench_cartpole.py``.

Reported per version: median steps and seconds to 475 with their interquartile range, the
interquartile mean (IQM) of the steps with a bootstrap 95% interval, and seconds per 1,000
environment steps; and per seed the ratio base / head of those seconds, whose median is the
speed-up of the change.

Run:  python benchmarks/compare_speed.py --base HEAD~1 [--head WORKTREE|REV] [--seeds 1001-1010]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def worker() -> None:
    """Read ``seed budget`` lines from stdin; answer each with one JSON line."""
    import torch

    from npgbook.rl import TrainConfig, Trainer, first_solved

    torch.set_num_threads(1)
    overrides = json.loads(os.environ.get("COMPARE_CONFIG", "{}"))
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}

    def solve(seed: int, budget: int) -> dict:
        trainer = Trainer(TrainConfig(seed=seed, total_steps=budget, **overrides))
        found = None
        try:
            while trainer.sampler.total_steps < budget:
                trainer.iteration()
                found = first_solved(trainer.episodes.returns)
                if found is not None:
                    break
        finally:
            trainer.close()
        seconds = time.perf_counter() - trainer.start
        log = trainer.episodes
        return {
            "seed": seed,
            "steps_to_475": None if found is None else int(log.end_steps[found]),
            "seconds_to_475": None if found is None else float(log.end_times[found]),
            "total_steps": int(trainer.sampler.total_steps),
            "total_seconds": seconds,
            "iterations": len(trainer.history),
        }

    solve(0, 3000)  # warm-up: imports and first calls
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        seed, budget = (int(x) for x in line.split())
        print(json.dumps(solve(seed, budget)), flush=True)


def checkout(rev: str, into: Path) -> Path:
    """The ``npgbook`` package of a git revision, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "npgbook"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def short(rev: str) -> str:
    """The abbreviated commit hash of a revision (what the results are labelled with)."""
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True, capture_output=True, text=True
    ).stdout.strip()


def start(path: Path, config: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(path), "OMP_NUM_THREADS": "1", "COMPARE_CONFIG": config}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    json.loads(proc.stdout.readline())  # ready
    return proc


def ask(proc: subprocess.Popen, seed: int, budget: int) -> dict:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{seed} {budget}\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def iqm(values: np.ndarray) -> float:
    """Mean of the middle half (25%-75%) of the sorted values."""
    v = np.sort(values)
    n = len(v)
    return float(v[n // 4 : n - n // 4].mean())


def bootstrap_iqm(values: list[float], reps: int = 5000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap 95% interval of the IQM (unsolved runs count as +inf)."""
    rng = np.random.default_rng(seed)
    v = np.asarray(values, dtype=float)
    stats = [iqm(rng.choice(v, size=v.size)) for _ in range(reps)]
    return float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))


def summarize(runs: list[dict]) -> dict:
    steps = [r["steps_to_475"] if r["steps_to_475"] is not None else float("inf") for r in runs]
    secs = [r["seconds_to_475"] if r["seconds_to_475"] is not None else float("inf") for r in runs]
    rate = [1000 * r["total_seconds"] / r["total_steps"] for r in runs]
    q = lambda v: [float(x) for x in np.quantile(v, [0.25, 0.5, 0.75])]
    return {
        "solved": sum(r["steps_to_475"] is not None for r in runs),
        "steps_quartiles": q(steps),
        "steps_iqm": iqm(np.asarray(steps)),
        "steps_iqm_ci": bootstrap_iqm(steps),
        "seconds_quartiles": q(secs),
        "seconds_per_1k_quartiles": q(rate),
    }


def markdown(data: dict) -> str:
    a, b = data["labels"]
    lines = [
        (f"Same-run comparison, {data['date']}, seeds {data['seeds'][0]}-{data['seeds'][-1]}, budget {data['budget']:,}; "
        f"load average before {data['load_before']}, after {data['load_after']}."),
        "",
        ("| version | solved | steps to 475: median [IQR] | IQM (95% CI) | seconds to 475: median [IQR] "
        "| s per 1k steps: median [IQR] |"),
        "|---|---|---|---|---|---|",
    ]
    for label in (a, b):
        s = data["summary"][label]
        st, se, ra = s["steps_quartiles"], s["seconds_quartiles"], s["seconds_per_1k_quartiles"]
        lo, hi = s["steps_iqm_ci"]
        lines.append(
            f"| {label} | {s['solved']}/{len(data['seeds'])} | {st[1]:,.0f} [{st[0]:,.0f}-{st[2]:,.0f}] | "
            f"{s['steps_iqm']:,.0f} ({lo:,.0f}-{hi:,.0f}) | {se[1]:.2f} [{se[0]:.2f}-{se[2]:.2f}] | "
            f"{ra[1]:.3f} [{ra[0]:.3f}-{ra[2]:.3f}] |"
        )
    r = data["ratios"]
    lines += [
        "",
        (f"Per-seed ratio {a} / {b} of seconds per 1k steps: median **{statistics.median(r):.2f}x** "
        f"(min {min(r):.2f}, max {max(r):.2f}); ratio of median seconds to 475: "
        f"{data['summary'][a]['seconds_quartiles'][1] / data['summary'][b]['seconds_quartiles'][1]:.2f}x."),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", default="HEAD~1", help="git revision of the baseline")
    parser.add_argument("--head", default="WORKTREE", help="git revision of the new version, or WORKTREE")
    parser.add_argument("--seeds", default="1001-1010")
    parser.add_argument("--budget", type=int, default=150_000)
    parser.add_argument("--base-config", default="{}", help="JSON TrainConfig changes for the base, e.g. '{\"value_epochs\": 5}'")
    parser.add_argument("--head-config", default="{}", help="JSON TrainConfig changes for the head")
    parser.add_argument("--name", default=None, help="save results as results/compare_<name>.json")
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    first, last = (int(x) for x in args.seeds.split("-"))
    seeds = list(range(first, last + 1))
    labels = [short(args.base), "worktree" if args.head == "WORKTREE" else short(args.head)]
    labels = [lab + ("" if c == "{}" else " " + c) for lab, c in zip(labels, (args.base_config, args.head_config))]
    if labels[0] == labels[1]:
        labels[1] += " (head)"
    with tempfile.TemporaryDirectory() as tmp:
        paths = [checkout(args.base, Path(tmp) / "base")]
        paths.append(ROOT if args.head == "WORKTREE" else checkout(args.head, Path(tmp) / "head"))
        load_before = [round(x, 2) for x in os.getloadavg()]
        procs = [start(p, c) for p, c in zip(paths, (args.base_config, args.head_config))]
        runs: dict[str, list[dict]] = {label: [] for label in labels}
        for k, seed in enumerate(seeds):
            order = (0, 1) if k % 2 == 0 else (1, 0)
            for i in order:
                result = ask(procs[i], seed, args.budget)
                runs[labels[i]].append(result)
                print(f"{labels[i]}: {json.dumps(result)}", file=sys.stderr, flush=True)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()
        load_after = [round(x, 2) for x in os.getloadavg()]
    rate = {lab: [1000 * r["total_seconds"] / r["total_steps"] for r in runs[lab]] for lab in labels}
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "labels": labels,
        "seeds": seeds,
        "budget": args.budget,
        "configs": [args.base_config, args.head_config],
        "load_before": load_before,
        "load_after": load_after,
        "runs": runs,
        "summary": {lab: summarize(runs[lab]) for lab in labels},
        "ratios": [x / y for x, y in zip(rate[labels[0]], rate[labels[1]])],
    }
    if args.name:
        out = HERE / "results" / f"compare_{args.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1) + "\n")
    print(markdown(data))


if __name__ == "__main__":
    main()
