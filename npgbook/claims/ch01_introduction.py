"""The claims checked in chapter 1 (the note's §1)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor

from ..experiments.ascent import step_size_sweep
from ..policies import GaussianPolicy
from ._benches import _BANDIT
from ._registry import (
    Verdict,
    claim,
    decide,
)

# ----------------------------------------------------------------------------------------
# §1

_LOG_SIGMA = GaussianPolicy("log_sigma")


def bandit_objective(theta: Tensor) -> Tensor:
    """The book's bandit objective J(μ, log σ) (chapters 1 and 2)."""
    return _BANDIT.expected_reward(_LOG_SIGMA, theta)


def bandit_gradient(theta: Tensor) -> Tensor:
    """The exact gradient of :func:`bandit_objective`."""
    return _BANDIT.exact_gradient(_LOG_SIGMA, theta)


@claim(
    "ascent_reaches_optimum",
    "§1",
    "Following the gradient of J ends up at an optimum.",
    "01_introduction",
)
def _ascent_reaches_optimum(
    *,
    objective: Callable[[Tensor], Tensor] = bandit_objective,
    gradient: Callable[[Tensor], Tensor] = bandit_gradient,
    start: tuple[float, float] = (0.0, 1.0),
    alphas: Sequence[float] = (0.1, 0.3, 1.0, 3.0, 10.0),
    n_iter: int = 200,
    level: float = 0.9,
    last: int = 20,
) -> Verdict:
    """A run *ends at the optimum* if J ≥ ``level`` (the supremum is 1) at each of its last
    ``last`` iterates. Holds if every step size of the grid ends there within the budget,
    holds approximately if some do (a suitable α is needed), does not hold if none does."""
    theta0 = _LOG_SIGMA.params(*start)
    sweep = step_size_sweep(objective, gradient, theta0, alphas, n_iter)
    settled = sweep.settled(level, last)
    ends = [a for a, s in zip(sweep.alphas, settled) if s]
    others = [a for a, s in zip(sweep.alphas, settled) if not s]
    outcome = decide(all(settled), any(settled))
    grid = ", ".join(f"{a:g}" for a in sweep.alphas)
    where = "α = " + ", ".join(f"{a:g}" for a in ends) if ends else "no α"
    best_other = max((float(sweep.run(a).values[-last:].max()) for a in others), default=None)
    # rounded up, so that "at most" stays true
    rest = f"; the others at most {math.ceil(best_other * 100) / 100:.2f}" if others else ""
    return Verdict(
        outcome,
        f"bandit, {n_iter} exact-gradient steps from J = {float(objective(theta0)):.3f} for α = {grid}: "
        f"J ≥ {level:g} over the last {last} iterates for {where}{rest}",
    )
