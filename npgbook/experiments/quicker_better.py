r"""Does the natural gradient "converge quicker and better"? Six update rules, tuned alike, many seeds.

The note's headline claim (§6) compares the natural policy gradient with its first-order
counterparts. This module defines the experiment that decides it, and the statistics:

* **Methods** (:data:`METHODS`), all in :class:`npgbook.rl.Trainer`'s one loop (same network,
  batch, GAE advantages, value baseline); only the update differs: the vanilla gradient at a
  fixed learning rate (``vpg``), the vanilla direction scaled to the KL budget (``kl-vpg``, the
  ablation that keeps NPG's step size rule but drops the metric :math:`F^{-1}`), NPG
  (Algorithm 1), TRPO, Adam on the surrogate with minibatch epochs (``adam-vpg``) and PPO.
* **Fair tuning** (:func:`tuning_sweep`, :func:`choose`): every method gets the same budget,
  six values of its step-size parameter (:data:`GRIDS`) on five tuning seeds
  (:data:`TUNING_SEEDS`), disjoint from the ten evaluation seeds (:data:`EVAL_SEEDS`); the value
  with the highest mean area under the learning curve wins.
* **Per-run scores** (:func:`summarize_run`): the learning curve (mean return of the last 20
  episodes) at every :data:`CHECKPOINT_EVERY` steps, normalized so that 0 is the worst return
  and 1 the task's solved threshold (:class:`Task`); *final* is its last point, *AUC* its
  mean; *quick* is :math:`1 - s/S` for a run that first reaches the threshold after :math:`s`
  of its :math:`S` steps (0 if it never does).
* **Aggregates** (:func:`aggregate`) with rliable (Agarwal et al., 2021): interquartile mean
  and optimality gap with 95 % stratified-bootstrap intervals, the probability that NPG
  improves on each other method, and IQM sample-efficiency curves.
* **The verdict** (:func:`verdict`) of the claim, from the probabilities of improvement.

The full sweep is ``benchmarks/quicker_better.py``; it stores the per-run summaries as package
data (:func:`load_stored`), which chapter 7's section and the claim
``converges_quicker_and_better`` read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from ..rl.algorithms import TrainConfig, first_solved, learning_curve
from ..rl.sweep import Sweep


@dataclass(frozen=True)
class Task:
    r"""A benchmark task: environment, step budget and the two ends of its score scale.

    The normalized score of a return :math:`R` is :math:`(R - R_{\min})/(R_\star - R_{\min})`:
    0 at the worst return (``low``), 1 at gymnasium's solved threshold :math:`R_\star`
    (``threshold``; CartPole-v1 475, Acrobot-v1 -100).
    """

    env_id: str
    total_steps: int
    threshold: float
    low: float

    def normalize(self, returns: np.ndarray | float) -> np.ndarray:
        """Returns on the 0 (worst) .. 1 (solved) scale."""
        return (np.asarray(returns, dtype=np.float64) - self.low) / (self.threshold - self.low)


TASKS: dict[str, Task] = {
    "CartPole-v1": Task("CartPole-v1", 100_000, 475.0, 0.0),
    "Acrobot-v1": Task("Acrobot-v1", 100_000, -100.0, -500.0),
}

ADAM_EPOCHS = {"policy_epochs": 4, "policy_minibatch": 256}
"""Adam-vpg's and PPO's passes: 4 epochs of 4 minibatches of a 1,024-step batch (CleanRL's PPO defaults)."""

METHODS: dict[str, dict[str, Any]] = {
    "vpg": {"algo": "vpg"},
    "kl-vpg": {"algo": "kl-vpg"},
    "npg": {"algo": "npg"},
    "trpo": {"algo": "trpo"},
    "adam-vpg": {"algo": "adam-vpg", **ADAM_EPOCHS},
    "ppo": {"algo": "ppo", **ADAM_EPOCHS},
}
"""The six update rules; everything else is :class:`~npgbook.rl.TrainConfig`'s default."""

COLORS = {
    "vpg": "tab:gray",
    "kl-vpg": "tab:olive",
    "npg": "tab:blue",
    "trpo": "tab:purple",
    "adam-vpg": "tab:orange",
    "ppo": "tab:green",
    "adam-vpg-1x1": "tab:brown",
}
"""One colour per method, the same in the report's figures and the chapter's."""

ONE_STEP_ADAM = {"adam-vpg-1x1": {"algo": "adam-vpg", "policy_epochs": 1, "policy_minibatch": 1024}}
"""A follow-up, outside the six: Adam PG with one step per batch (1 epoch of one minibatch holding
the whole batch), which separates PPO's and Adam PG's reuse of the batch from Adam's scaling."""

STEP_SIZE = {
    "vpg": "learning_rate",
    "kl-vpg": "delta",
    "npg": "delta",
    "trpo": "delta",
    "adam-vpg": "adam_lr",
    "ppo": "adam_lr",
    "adam-vpg-1x1": "adam_lr",
}
"""Each method's step-size parameter: the one its grid tunes."""

_DELTAS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
_ADAM_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
GRIDS: dict[str, tuple[float, ...]] = {
    "vpg": (0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
    "kl-vpg": _DELTAS,
    "npg": _DELTAS,
    "trpo": _DELTAS,
    "adam-vpg": _ADAM_LRS,
    "ppo": _ADAM_LRS,
    "adam-vpg-1x1": _ADAM_LRS,
}
"""Six candidate step sizes per method, spaced by about 3x from below the usual value up.

The first sweep had five; three methods chose the largest of them on some task (NPG and TRPO
on Acrobot, PPO on CartPole), so every grid got one more value at the top."""

TUNING_SEEDS = (100, 101, 102, 103, 104)
EVAL_SEEDS = tuple(range(1000, 1010))
CHECKPOINT_EVERY = 5_000
FIRST_ORDER = ("vpg", "adam-vpg")
"""The note's "traditional counterparts": first-order steps at a fixed rate, and with Adam."""


def task_changes(task: Task) -> dict[str, Any]:
    """The ``TrainConfig`` changes that make a run of ``task``: its environment and step budget."""
    return {"env_id": task.env_id, "total_steps": task.total_steps}


def tuning_sweep(
    tasks: Mapping[str, Task] = TASKS,
    seeds: Sequence[int] = TUNING_SEEDS,
    base: TrainConfig | None = None,
    methods: Mapping[str, Mapping[str, Any]] = METHODS,
) -> Sweep:
    """Every method (default: the six) over its grid, on the tuning seeds."""
    return Sweep(
        methods=methods,
        tasks={name: task_changes(t) for name, t in tasks.items()},
        seeds=tuple(seeds),
        grid={m: {STEP_SIZE[m]: GRIDS[m]} for m in methods},
        base=base or TrainConfig(),
    )


def beyond_grid(chosen: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """``{task: {method: value}}`` for every choice at the top of its grid: the next value at the
    grid's last spacing (e.g. 0.1, 0.2 -> 0.4). Training these on the tuning seeds tells whether
    the grid stopped short of the optimum; they are reported, not chosen from."""
    out: dict[str, dict[str, float]] = {}
    for task, per_method in chosen.items():
        for method, value in per_method.items():
            grid = GRIDS[method]
            if value == grid[-1]:
                out.setdefault(task, {})[method] = float(f"{grid[-1] * grid[-1] / grid[-2]:.6g}")
    return out


def evaluation_sweep(
    task_name: str,
    chosen: Mapping[str, float],
    tasks: Mapping[str, Task] = TASKS,
    seeds: Sequence[int] = EVAL_SEEDS,
    base: TrainConfig | None = None,
    methods: Mapping[str, Mapping[str, Any]] = METHODS,
) -> Sweep:
    """Every method (default: the six) at its chosen step size (``chosen[method]``) on one task,
    on the evaluation seeds."""
    missing = set(methods) - set(chosen)
    if missing:
        raise ValueError(f"chosen has no step size for {sorted(missing)}")
    return Sweep(
        methods={m: {**methods[m], STEP_SIZE[m]: chosen[m]} for m in methods},
        tasks={task_name: task_changes(tasks[task_name])},
        seeds=tuple(seeds),
        base=base or TrainConfig(),
    )


def checkpoints(task: Task) -> np.ndarray:
    """The environment-step counts at which learning curves are read: every :data:`CHECKPOINT_EVERY`."""
    return np.arange(CHECKPOINT_EVERY, task.total_steps + 1, CHECKPOINT_EVERY)


def summarize_run(result: Mapping[str, Any], tasks: Mapping[str, Task] = TASKS) -> dict[str, Any]:
    """One run's scores from its :func:`npgbook.rl.sweep.run_one` result (JSON-ready).

    Keys: ``method, task, seed, step_size`` (the tuned parameter's value), ``curve``
    (normalized, at :func:`checkpoints`), ``final``, ``auc``, ``steps_to_threshold`` and
    ``seconds_to_threshold`` (``None`` if never reached), ``quick``, ``kl_median`` and ``kl_p90``
    (realized KL per update), ``skipped_updates``, ``wall_seconds``.
    """
    task = tasks[result["task"]]
    returns = np.asarray(result["episode_returns"], dtype=np.float64)
    curve = task.normalize(learning_curve(returns, result["episode_end_steps"], checkpoints(task)))
    hit = first_solved(returns, window=20, threshold=task.threshold)
    steps = None if hit is None else int(result["episode_end_steps"][hit])
    if steps is not None and steps > task.total_steps:  # reached only in the last, overlong batch
        steps = None
    kl = np.asarray(result["update_kl"], dtype=np.float64)
    method = result["method"]
    return {
        "method": method,
        "task": result["task"],
        "seed": int(result["seed"]),
        "step_size": float(result["config"][STEP_SIZE[method]]),
        "curve": [float(x) for x in curve],
        "final": float(curve[-1]),
        "auc": float(curve.mean()),
        "steps_to_threshold": steps,
        "seconds_to_threshold": None if steps is None else float(result["episode_end_seconds"][hit]),
        "quick": 0.0 if steps is None else 1.0 - steps / task.total_steps,
        "kl_median": float(np.median(kl)),
        "kl_p90": float(np.quantile(kl, 0.9)),
        "skipped_updates": int(result["skipped_updates"]),
        "wall_seconds": float(result["wall_seconds"]),
    }


def choose(tuning: Sequence[Mapping[str, Any]], methods: Sequence[str] = tuple(METHODS)) -> dict[str, dict[str, float]]:
    """``{task: {method: step size}}``: per task and method, the grid value with the highest mean AUC.

    Ties go to the smaller step size. Raises ``ValueError`` if a (task, method) has no runs.
    """
    table = tuning_table(tuning)
    out: dict[str, dict[str, float]] = {}
    for task in sorted({r["task"] for r in tuning}):
        out[task] = {}
        for method in methods:
            rows = [row for row in table if row["task"] == task and row["method"] == method]
            if not rows:
                raise ValueError(f"no tuning runs for {method} on {task}")
            best = max(rows, key=lambda row: (row["auc_mean"], -row["step_size"]))
            out[task][method] = best["step_size"]
    return out


def tuning_table(tuning: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, method, step size): mean AUC and final score over the tuning seeds, their count."""
    groups: dict[tuple[str, str, float], list[Mapping[str, Any]]] = {}
    for r in tuning:
        groups.setdefault((r["task"], r["method"], r["step_size"]), []).append(r)
    return [
        {
            "task": task,
            "method": method,
            "step_size": step,
            "runs": len(rs),
            "auc_mean": float(np.mean([r["auc"] for r in rs])),
            "final_mean": float(np.mean([r["final"] for r in rs])),
        }
        for (task, method, step), rs in sorted(groups.items())
    ]


def score_matrix(
    runs: Sequence[Mapping[str, Any]], metric: str, methods: Sequence[str], tasks: Sequence[str]
) -> dict[str, np.ndarray]:
    """``{method: array (seeds, tasks)}`` of one per-run score (``"final"``, ``"auc"``, ``"quick"``).

    Rows are the seeds in increasing order; every (method, task) must have the same seeds.
    With ``metric="curve"`` the arrays are ``(seeds, tasks, checkpoints)``.
    """
    out: dict[str, np.ndarray] = {}
    seeds: list[int] | None = None
    for m in methods:
        columns = []
        for t in tasks:
            rs = sorted((r for r in runs if r["method"] == m and r["task"] == t), key=lambda r: r["seed"])
            these = [r["seed"] for r in rs]
            if not rs:
                raise ValueError(f"no runs of {m} on {t}")
            if seeds is None:
                seeds = these
            elif these != seeds:
                raise ValueError(f"{m} on {t} has seeds {these}, others have {seeds}")
            columns.append(np.array([r[metric] for r in rs], dtype=np.float64))
        out[m] = np.stack(columns, axis=1)
    return out


def _rliable() -> tuple[Any, Any]:
    from rliable import library, metrics

    return library, metrics


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over runs and tasks (all axes but the last if ``scores`` is 3-D).

    The mean of the sorted scores after dropping ``int(n/4)`` from each end, as
    ``scipy.stats.trim_mean(x, 0.25)`` and rliable's ``aggregate_iqm``; vectorized, so that
    a bootstrap of many checkpoints costs one sort.
    """
    x = np.asarray(scores, dtype=np.float64)
    flat = np.sort(x.reshape(-1, x.shape[-1]) if x.ndim == 3 else x.reshape(-1, 1), axis=0)
    k = int(0.25 * flat.shape[0])
    out = flat[k : flat.shape[0] - k].mean(axis=0)
    return out if x.ndim == 3 else out[:1]


def optimality_gap(scores: np.ndarray) -> np.ndarray:
    r"""Mean shortfall below the solved score 1: :math:`\frac1n\sum\max(1 - x, 0)` (rliable's, with gamma 1)."""
    return np.array([np.mean(np.maximum(1.0 - np.asarray(scores, dtype=np.float64), 0.0))])


def improvement_probability(x: np.ndarray, y: np.ndarray) -> float:
    r""":math:`P(X > Y)` averaged over tasks: per task column, the fraction of run pairs with
    :math:`x > y`, ties counting one half (the Mann-Whitney :math:`U/(nm)`, as rliable's
    ``probability_of_improvement``)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    a, b = x[:, None, :], y[None, :, :]
    return float(np.mean((a > b).mean(axis=(0, 1)) + 0.5 * (a == b).mean(axis=(0, 1))))


STATISTICS = {"iqm": iqm, "optimality_gap": optimality_gap}


def _bootstrap(data: Any, func: Any, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """rliable's stratified bootstrap of one entry: runs resampled within each task, 95 % percentile
    interval, as ``rliable.library.get_interval_estimates`` does it.

    rliable draws its resampling indices from numpy's *global* generator (``np.random.choice``),
    whatever ``random_state`` it is given; so the global generator is seeded here and restored
    afterwards. An interval is then the same on every call and machine, whatever else is computed.
    """
    library, _ = _rliable()
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        if isinstance(data, tuple):
            boot, point = library.StratifiedIndependentBootstrap(*data), func(*data)
        else:
            boot, point = library.StratifiedBootstrap(data), func(data)
        ci = boot.conf_int(func, reps=reps, size=0.95, method="percentile")
    finally:
        np.random.set_state(state)
    return np.asarray(point, dtype=np.float64), np.asarray(ci, dtype=np.float64)


def interval_estimates(
    scores: Mapping[str, np.ndarray], statistic: str, *, reps: int = 2000, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """``{method: (point, low, high)}``: an aggregate with its 95 % stratified-bootstrap interval.

    ``statistic`` is ``"iqm"`` (interquartile mean of all runs and tasks) or ``"optimality_gap"``
    (mean shortfall below 1, the solved threshold). rliable resamples runs within each task.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    out = {}
    for m, x in scores.items():
        point, ci = _bootstrap(x, STATISTICS[statistic], reps, seed)
        out[m] = (float(point[0]), float(ci[0, 0]), float(ci[1, 0]))
    return out


def probability_of_improvement(
    scores: Mapping[str, np.ndarray], against: Sequence[str], of: str = "npg", *, reps: int = 2000, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    r"""``{other: (P, low, high)}``: :math:`P(X_{of} > X_{other})`, averaged over tasks, with its 95 % interval.

    :math:`P(X > Y)` is the probability that a random run of ``of`` scores higher than a random
    run of ``other`` on the same task (ties count one half; :func:`improvement_probability`).
    """
    out = {}
    for o in against:
        point, ci = _bootstrap((scores[of], scores[o]), improvement_probability, reps, seed)
        out[o] = (float(np.ravel(point)[0]), *(float(c) for c in np.ravel(ci)))
    return out


def iqm_curves(
    scores: Mapping[str, np.ndarray], *, reps: int = 2000, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{method: (iqm, ci)}``: IQM over runs and tasks at every checkpoint, ``ci`` of shape ``(2, checkpoints)``.

    ``scores[method]`` has shape ``(runs, tasks, checkpoints)``.
    """
    return {m: _bootstrap(x, iqm, reps, seed) for m, x in scores.items()}


def performance_profile(
    scores: Mapping[str, np.ndarray], taus: np.ndarray, *, reps: int = 2000
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    r"""``{method: (fraction, ci)}``: the fraction of runs (all tasks) scoring above :math:`\tau`, per
    :math:`\tau` in ``taus``, with its 95 % stratified-bootstrap band ``ci`` of shape ``(2, len(taus))``."""
    library, _ = _rliable()
    state = np.random.get_state()
    np.random.seed(0)  # rliable resamples with numpy's global generator (see _bootstrap)
    try:
        point, ci = library.create_performance_profile(dict(scores), np.asarray(taus), reps=reps)
    finally:
        np.random.set_state(state)
    return {m: (np.asarray(point[m]), np.asarray(ci[m])) for m in scores}


def aggregate(
    runs: Sequence[Mapping[str, Any]],
    methods: Sequence[str] = tuple(METHODS),
    tasks: Sequence[str] = tuple(TASKS),
    *,
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every aggregate of the report: per metric (final, auc, quick) IQM and optimality gap, and NPG's
    probability of improvement over each other method, all with 95 % intervals."""
    others = [m for m in methods if m != "npg"]
    out: dict[str, Any] = {}
    for metric in ("final", "auc", "quick"):
        s = score_matrix(runs, metric, methods, tasks)
        out[metric] = {
            "iqm": interval_estimates(s, "iqm", reps=reps, seed=seed),
            "optimality_gap": interval_estimates(s, "optimality_gap", reps=reps, seed=seed),
            "poi_npg": probability_of_improvement(s, others, reps=reps, seed=seed),
        }
    return out


def call(interval: tuple[float, float, float]) -> str:
    """A probability of improvement ``(P, low, high)`` in words: ``"win"`` if the interval lies above
    1/2, ``"loss"`` if below, else ``"tie"``."""
    _, low, high = interval
    return "win" if low > 0.5 else "loss" if high < 0.5 else "tie"


def verdict(
    poi: Mapping[str, Mapping[str, tuple[float, float, float]]], counterparts: Sequence[str] = FIRST_ORDER
) -> tuple[str, dict[str, dict[str, str]]]:
    """The outcome of "NPG converges quicker and better than its first-order counterparts".

    ``poi[metric][other]`` is NPG's probability of improvement ``(P, low, high)``; ``"final"``
    decides *better* and ``"quick"`` *quicker*. Against each counterpart, NPG *wins* a criterion if
    the interval lies above 1/2, *loses* it if below, else it is a *tie*. The claim holds if NPG
    wins both criteria against every counterpart; holds approximately if against every
    counterpart it wins at least one and loses none; otherwise it does not hold as stated.
    Returns the outcome and ``{other: {"better": ..., "quicker": ...}}`` (see :func:`call`).
    """
    table = {o: {"better": call(poi["final"][o]), "quicker": call(poi["quick"][o])} for o in counterparts}
    if all(v == "win" for row in table.values() for v in row.values()):
        return "holds", table
    if all("win" in row.values() and "loss" not in row.values() for row in table.values()):
        return "holds approximately", table
    return "does not hold as stated", table


def load_stored() -> dict[str, Any]:
    """The full sweep's stored summaries: ``{"chosen", "tuning", "evaluation", "meta"}`` (package data)."""
    text = resources.files(__package__).joinpath("data/quicker_better.json").read_text()
    return json.loads(text)
