"""The claims checked in section 5.9 (§5: Algorithm 1 on CartPole)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import rl
from ._registry import (
    Verdict,
    _fmt,
    _training_defaults,
    claim,
    decide,
)

RUN = rl.TrainConfig(
    algo="npg",
    total_steps=3 * 1024 + 1,
    value_minibatch=512,
)
"""The short runs of the check: the library defaults with section 5.9's
speed setting (value minibatches of 512).

With 8 x 128 slots per batch and about 45 autoreset slots each while episodes are short,
``3 * 1024 + 1`` steps take exactly four updates on every machine. These are the first four
updates of the chapter's 20,000-step runs of the same seeds.
"""

SEEDS = (0, 1, 2)
"""The seeds of the check's runs."""


def kl_ratios(results: Sequence[rl.TrainResult], delta: float) -> np.ndarray:
    """Realized KL / δ of every update of ``results``; an update not applied counts as 0."""
    return np.array([h.kl / delta if h.accepted else 0.0 for r in results for h in r.history])


@claim(
    "algorithm1_cartpole",
    "§5",
    "Algorithm 1 with sampled g and F changes the policy by about δ per update.",
    "05b_algorithm1_cartpole",
)
def _algorithm1_cartpole(
    *,
    config: rl.TrainConfig = RUN,
    seeds: Sequence[int] = SEEDS,
    train: Callable[[rl.TrainConfig], rl.TrainResult] = rl.train,
) -> Verdict:
    # Train as the chapter does (float32 networks, float32 default dtype), so that the
    # numbers are the chapter's; the verdict uses only bounds that hold with a wide margin.
    with _training_defaults():
        results = [train(config.replace(seed=s)) for s in seeds]
    ratios = kl_ratios(results, config.delta)
    applied = sum(h.accepted for r in results for h in r.history)
    n = ratios.size
    median = float(np.median(ratios)) if n else 0.0
    exact = n > 0 and applied == n and bool(np.all(np.abs(ratios - 1) <= 0.1))
    about = n > 0 and 0.5 <= median <= 2 and bool(np.all((ratios >= 0.25) & (ratios <= 4)))
    outcome = decide(exact, about)
    head = (
        f"CartPole-v1, δ = {config.delta}, first {n // max(len(seeds), 1)} "
        f"{config.algo.upper()} updates "
        f"of seeds {', '.join(map(str, seeds))} ({applied} of {n} applied): realized KL / δ"
    )
    if outcome == "holds":
        tail = "within 10% of 1 for every update"
    elif outcome == "holds approximately":
        tail = (
            "has median in [0.5, 2] and every update in [0.25, 4], "
            "but not every update is within 10% of 1"
        )
    elif n == 0:
        tail = "not measured (no updates)"
    else:
        tail = (
            f"has median {_fmt(median, 1)}, range {_fmt(float(ratios.min()), 1)} "
            f"to {_fmt(float(ratios.max()), 1)}"
        )
    return Verdict(outcome, f"{head} {tail}")
