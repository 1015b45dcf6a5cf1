"""Counterfactual tests of section 5.9's claim (npgbook.claims.ch05b_algorithm1_cartpole).

``test_counterfactual_algorithm1_cartpole`` asserts the verdict with the book's inputs and
shows that a trainer whose updates are all rejected, or whose step is scaled for the wrong
budget, changes it; the other tests pin down the decision rule.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from npgbook import claims, rl
from npgbook.claims import ch05b_algorithm1_cartpole as ch05b
from npgbook.rl.algorithms import UpdateResult

KEY = "algorithm1_cartpole"


def train_rejecting_every_update(config: rl.TrainConfig) -> rl.TrainResult:
    """A broken trainer: it collects and fits the baseline but never changes θ."""
    trainer = rl.Trainer(config)
    trainer.update = lambda policy, theta, data, cfg: UpdateResult(
        theta=theta, accepted=False, skipped="rejected by the test"
    )
    try:
        trainer.run()
    finally:
        trainer.close()
    return rl.TrainResult(
        config, trainer.history, trainer.episodes, trainer.policy, trainer.theta, trainer.value
    )


def train_with_ten_times_delta(config: rl.TrainConfig) -> rl.TrainResult:
    """A trainer whose step is sized for 10 δ while the check measures against δ."""
    return rl.train(config.replace(delta=10 * config.delta))


@pytest.fixture(scope="module")
def book_verdict():
    return claims.run(KEY)


def test_counterfactual_algorithm1_cartpole(book_verdict):
    assert book_verdict.outcome == "holds approximately"
    assert "12 of 12 applied" in book_verdict.evidence
    # every update rejected: the policy never moves, however the (empty) ratios look
    rejected = claims.run(KEY, train=train_rejecting_every_update)
    assert rejected.outcome == "does not hold as stated"
    assert "0 of 12 applied" in rejected.evidence
    # the step is sized for a budget ten times δ: the KL per update is far above δ
    oversized = claims.run(KEY, train=train_with_ten_times_delta)
    assert oversized.outcome == "does not hold as stated"
    # the vanilla policy gradient's fixed learning rate does not set the KL of an update
    vanilla = claims.run(KEY, config=ch05b.RUN.replace(algo="vpg"))
    assert vanilla.outcome == "does not hold as stated"


def test_holds_branch_is_reachable():
    """A small budget along the gradient direction (one CG iteration): the quadratic model
    of the KL is then accurate, and every update lands within 10% of δ."""
    verdict = claims.run(KEY, config=ch05b.RUN.replace(cg_iters=1, delta=1e-4))
    assert verdict.outcome == "holds"


def test_an_update_not_applied_counts_as_zero():
    """An update that was not applied changed nothing: its ratio is 0, not 'about δ'."""
    (result,) = [rl.train(ch05b.RUN.replace(seed=0, total_steps=1025))]
    assert np.all(ch05b.kl_ratios([result], ch05b.RUN.delta) > 0.25)
    result.history[0] = dataclasses.replace(result.history[0], accepted=False)
    assert ch05b.kl_ratios([result], ch05b.RUN.delta)[0] == 0.0


def test_run_count_is_fixed_by_the_step_budget(book_verdict):
    """3 * 1024 + 1 steps need more than three full batches and fit in four."""
    assert ch05b.RUN.total_steps > 3 * ch05b.RUN.num_envs * ch05b.RUN.steps_per_env
    assert book_verdict.evidence.startswith("CartPole-v1, δ = 0.02, first 4 NPG updates")


def test_evidence_has_no_measured_digits(book_verdict):
    """The book's evidence states bounds only (identical on every machine)."""
    after_colon = book_verdict.evidence.split(": ", 1)[1]
    assert after_colon == (
        "realized KL / δ has median in [0.5, 2] and every update in [0.25, 4], "
        "but not every update is within 10% of 1"
    )
