"""The claim checked in section 7.1 (§6's headline: NPG converges quicker and better).

Decided by the full sweep of ``benchmarks/quicker_better.py`` (six update rules, each tuned on
its own seeds, 10 evaluation seeds on CartPole-v1 and Acrobot-v1), whose per-run summaries are
stored as package data: the check recomputes the probabilities of improvement from them with
the functions of :mod:`npgbook.experiments.quicker_better`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..experiments import quicker_better as qb
from ._registry import Verdict, claim


def improvement(
    runs: Sequence[Mapping[str, Any]], counterparts: Sequence[str], *, reps: int = 2000
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """``{metric: {other: (P, low, high)}}``: NPG's probability of improvement on ``final`` and ``quick``."""
    methods = ("npg", *counterparts)
    return {
        metric: qb.probability_of_improvement(
            qb.score_matrix(runs, metric, methods, tuple(qb.TASKS)), counterparts, reps=reps
        )
        for metric in ("final", "quick")
    }


@claim(
    "converges_quicker_and_better",
    "§6",
    "The natural policy gradient converges quicker and better than its traditional (first-order) "
    "counterparts.",
    "07b_quicker_better",
)
def _quicker_and_better(
    *,
    runs: Sequence[Mapping[str, Any]] | None = None,
    counterparts: Sequence[str] = qb.FIRST_ORDER,
    reps: int = 2000,
) -> Verdict:
    """Holds if NPG's probability of improvement over every counterpart lies above 1/2 (95 %
    interval) on both the final score (better) and the quickness 1 - s/S (quicker); see
    :func:`npgbook.experiments.quicker_better.verdict` for the weaker outcome."""
    runs = qb.load_stored()["evaluation"] if runs is None else runs
    poi = improvement(runs, counterparts, reps=reps)
    outcome, calls = qb.verdict(poi, counterparts)
    parts = []
    for o in counterparts:
        b, q = poi["final"][o], poi["quick"][o]
        parts.append(
            f"vs {o}: better {calls[o]['better']} (P = {b[0]:.2f} [{b[1]:.2f}, {b[2]:.2f}]), "
            f"quicker {calls[o]['quicker']} (P = {q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}])"
        )
    n = len({r["seed"] for r in runs})
    return Verdict(outcome, "; ".join(parts) + f" — {n} seeds × {len(qb.TASKS)} tasks, each method tuned")
