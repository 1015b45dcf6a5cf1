"""Sweeps: methods x tasks x seeds x hyperparameter grid, one result file per run, resumable.

A :class:`Sweep` is the one definition of an experiment: which methods (``TrainConfig`` changes,
e.g. ``{"algo": "ppo"}``), on which tasks (e.g. ``{"env_id": "Acrobot-v1", "total_steps":
100_000}``), for which seeds, over which grid of each method's step-size parameters. Its
:meth:`Sweep.runs` are the cross product, each with a stable key. :func:`run_sweep` executes the
runs that have no result file yet -- in local processes by default, or as Ray tasks when given a
cluster ``address`` (``ray.init(address=...)``; Ray is an optional extra) -- and writes each
result as its own JSON file the moment it finishes (written to a temporary name, then renamed),
so a killed sweep loses at most the runs in flight and resumes where it stopped.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .._checks import require_int
from .algorithms import TrainConfig, Trainer


@dataclass(frozen=True)
class Run:
    """One training run of a sweep: a method with one grid point, on one task, with one seed."""

    method: str
    task: str
    seed: int
    params: tuple[tuple[str, Any], ...]
    config: TrainConfig

    @property
    def key(self) -> str:
        """A file-name-safe identifier, the same in every process and every session."""
        point = "_".join(f"{k}={v}" for k, v in self.params) or "default"
        digest = hashlib.sha1(json.dumps(asdict(self.config), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.method}__{self.task}__seed{self.seed}__{point}__{digest}".replace("/", "-")


@dataclass(frozen=True)
class Sweep:
    """Methods x tasks x seeds x each method's grid.

    Args:
        methods: name -> ``TrainConfig`` changes defining the method (``{"algo": "npg"}``).
        tasks: name -> ``TrainConfig`` changes defining the task (``{"env_id": ..., "total_steps": ...}``).
        seeds: the seeds of every (method, task, grid point).
        grid: method name -> {hyperparameter: candidate values}; a method without an entry is run
            at its own settings only.
        base: the ``TrainConfig`` the changes apply to.
    """

    methods: Mapping[str, Mapping[str, Any]]
    tasks: Mapping[str, Mapping[str, Any]]
    seeds: tuple[int, ...]
    grid: Mapping[str, Mapping[str, tuple[Any, ...]]] = field(default_factory=dict)
    base: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.methods or not self.tasks or not self.seeds:
            raise ValueError("methods, tasks and seeds must each be non-empty")
        unknown = set(self.grid) - set(self.methods)
        if unknown:
            raise ValueError(f"grid names methods that are not in the sweep: {sorted(unknown)}")
        for s in self.seeds:
            require_int("seeds", s, minimum=0)

    def runs(self) -> list[Run]:
        """Every run, in a fixed order (method, task, grid point, seed); configs validated now."""
        out = []
        for method, changes in self.methods.items():
            axes = self.grid.get(method, {})
            names = sorted(axes)
            for task, task_changes in self.tasks.items():
                for values in itertools.product(*(axes[n] for n in names)):
                    params = tuple(zip(names, values))
                    for seed in self.seeds:
                        config = self.base.replace(
                            **{**changes, **task_changes, **dict(params), "seed": seed}
                        )
                        out.append(Run(method, task, seed, params, config))
        keys = [r.key for r in out]
        if len(set(keys)) != len(keys):
            raise ValueError("two runs of the sweep share a key (repeated seeds or grid values?)")
        return out


def run_one(config: TrainConfig) -> dict[str, Any]:
    """Train ``config`` and return what the analysis needs, as JSON-ready data.

    Episode returns with the environment step and wall second at which each ended, and per
    update the realized KL, whether it was accepted and the environment steps so far.
    """
    trainer = Trainer(config)
    start = time.perf_counter()
    try:
        history = trainer.run()
    finally:
        trainer.close()
    log = trainer.episodes
    return {
        "config": asdict(config),
        "episode_returns": log.returns,
        "episode_end_steps": log.end_steps,
        "episode_end_seconds": log.end_times,
        "update_kl": [h.kl for h in history],
        "update_env_steps": [h.env_steps for h in history],
        "update_accepted": [h.accepted for h in history],
        "skipped_updates": sum(h.skipped is not None for h in history),
        "wall_seconds": time.perf_counter() - start,
    }


def _write(path: Path, result: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)  # atomic: a file that exists is complete


def _run_and_label(run: Run) -> tuple[str, dict[str, Any]]:
    result = run_one(run.config)
    result.update(method=run.method, task=run.task, seed=run.seed, params=dict(run.params), key=run.key)
    return run.key, result


def pending_runs(sweep: Sweep, out_dir: Path | str) -> list[Run]:
    """The runs of ``sweep`` without a result file in ``out_dir``."""
    out = Path(out_dir)
    return [r for r in sweep.runs() if not (out / f"{r.key}.json").exists()]


def run_sweep(
    sweep: Sweep,
    out_dir: Path | str,
    *,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Run every pending run of ``sweep``, one JSON file each in ``out_dir``; return all result files.

    Args:
        sweep: the sweep.
        out_dir: where the results go (created); existing results are kept and skipped.
        workers: local processes (default: the number of CPUs); ignored with ``address``.
        address: a Ray cluster address (``"auto"``, ``"ray://host:10001"``, or ``"local"`` to
            start a Ray instance on this machine); ``None`` runs in local processes.
        progress: show a progress bar over the runs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = sweep.runs()
    pending = pending_runs(sweep, out)
    bar = tqdm(
        total=len(runs),
        initial=len(runs) - len(pending),
        unit="run",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        if address is None:
            _run_local(pending, out, workers, bar)
        else:
            _run_ray(pending, out, address, bar)
    finally:
        bar.close()
    return [out / f"{r.key}.json" for r in runs]


def _die_with_parent() -> None:
    """Worker initializer: on Linux, ask the kernel to end this worker when the sweep's process dies.

    Without it a killed sweep (``kill``, a closed terminal) leaves its workers training runs whose
    results nobody collects; with it, the restarted sweep is the only one using the CPUs.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - an unusual libc
            pass


def _run_local(pending: list[Run], out: Path, workers: int | None, bar: tqdm) -> None:
    if not pending:
        return
    workers = require_int("workers", workers if workers is not None else (os.cpu_count() or 1))
    if workers == 1:
        for run in pending:
            key, result = _run_and_label(run)
            _write(out / f"{key}.json", result)
            bar.update()
        return
    context = multiprocessing.get_context("spawn")  # no forked torch or gymnasium state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent) as pool:
        futures = {pool.submit(_run_and_label, run) for run in pending}
        while futures:
            done, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                key, result = future.result()
                _write(out / f"{key}.json", result)
                bar.update()


def _run_ray(pending: list[Run], out: Path, address: str, bar: tqdm) -> None:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("address was given but Ray is not installed: pip install 'npgbook[sweep]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_run_and_label)
        in_flight = [remote.remote(run) for run in pending]
        while in_flight:
            done, in_flight = ray.wait(in_flight, num_returns=1)
            for ref in done:
                key, result = ray.get(ref)
                _write(out / f"{key}.json", result)
                bar.update()
    finally:
        if started_here:
            ray.shutdown()


def load_results(paths: Iterable[Path | str]) -> Iterator[dict[str, Any]]:
    """The results of the given files that exist (a sweep's :func:`run_sweep` list, say)."""
    for path in paths:
        p = Path(path)
        if p.exists():
            yield json.loads(p.read_text())
