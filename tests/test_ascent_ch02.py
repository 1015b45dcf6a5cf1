"""Unit tests of the ascent experiments of chapters 1 and 2: step-size sweeps, the plateau
measurement, and REINFORCE runs with and without one poor update."""

from __future__ import annotations

import math

import pytest
import torch

from npgbook.experiments.ascent import (
    _stderr_of_difference,
    plateau_escape,
    poor_update_recovery,
    reinforce_bandit_runs,
    step_size_sweep,
    vanilla_ascent,
)
from npgbook.policies import GaussianPolicy
from npgbook.problems.bandit import GaussianBandit

CENTRE = torch.tensor([1.0, -2.0])


def objective(theta):
    return -0.5 * ((theta - CENTRE) ** 2).sum()


def gradient(theta):
    return -(theta - CENTRE)


BANDIT = GaussianBandit(target=2.0, width=0.5)


# --- step_size_sweep ---------------------------------------------------------------------


def test_sweep_runs_every_step_size_as_vanilla_ascent_does():
    alphas = (0.1, 0.5, 2.5)
    sweep = step_size_sweep(objective, gradient, torch.zeros(2), alphas, 30, target=-0.01)
    for a, run in zip(alphas, sweep.runs):
        alone = vanilla_ascent(objective, gradient, torch.zeros(2), a, 30, target=-0.01)
        assert torch.equal(run.thetas, alone.thetas) and run.reached == alone.reached
    assert sweep.run(0.5) is sweep.runs[1]
    assert sweep.reached == [r.reached for r in sweep.runs]
    assert torch.equal(sweep.final, torch.stack([r.values[-1] for r in sweep.runs]))


def test_settled_needs_every_one_of_the_last_iterates_at_the_level():
    # on J = -|θ - c|²/2 the step factor is 1 - α: α = 0.5 converges, α = 2 oscillates for ever
    # (θ - c flips sign, same distance), α = 2.5 diverges
    sweep = step_size_sweep(objective, gradient, torch.zeros(2), (0.5, 2.0, 2.5), 40)
    assert sweep.settled(-1e-6, 5) == [True, False, False]
    assert float(sweep.run(2.0).values[-1]) == pytest.approx(float(objective(torch.zeros(2))), rel=1e-12)
    assert sweep.settled(-100.0, 41) == [False, False, False]  # more iterates asked than exist


def test_sweep_rejects_bad_grids():
    with pytest.raises(ValueError):
        step_size_sweep(objective, gradient, torch.zeros(2), (), 5)
    with pytest.raises(ValueError):
        step_size_sweep(objective, gradient, torch.zeros(2), (0.1, 0.1), 5)
    with pytest.raises(ValueError):
        step_size_sweep(objective, gradient, torch.zeros(2), (0.1, -1.0), 5)


# --- plateau_escape ----------------------------------------------------------------------


def test_plateau_measurements_follow_the_path():
    result = plateau_escape(
        objective, gradient, torch.zeros(2), 0.05, 500, target=-0.01, plateau=-1.0, band=0.5
    )
    path = vanilla_ascent(objective, gradient, torch.zeros(2), 0.05, 500, target=-0.01)
    assert torch.equal(result.path.thetas, path.thetas) and result.reached == path.reached
    count = sum(1 for v in path.values.tolist() if abs(v + 1.0) < 0.5)  # by hand
    assert result.on_plateau == count and result.share == count / path.reached
    mid = path.reached // 2
    assert result.grad_start == pytest.approx(math.sqrt(5.0), rel=1e-12)  # ‖θ0 - c‖
    assert result.grad_mid == pytest.approx(float(gradient(path.thetas[mid]).norm()), rel=1e-12)
    assert result.rise == pytest.approx(float(path.values[-1] - path.values[mid]), rel=1e-12)


def test_plateau_escape_without_escape_reports_none():
    stuck = plateau_escape(
        objective,
        lambda th: torch.zeros_like(th),
        torch.zeros(2),
        1.0,
        20,
        target=0.0,
        plateau=-2.5,
        band=0.1,
    )
    assert stuck.reached is None and stuck.share == 21 / 20  # J = -2.5 at all 21 iterates
    assert stuck.grad_start == stuck.grad_mid == stuck.grad_end == 0.0 and stuck.rise == 0.0


# --- REINFORCE runs on the bandit --------------------------------------------------------


@pytest.mark.parametrize("parameterization", ["log_sigma", "sigma"])
def test_one_run_takes_the_library_reinforce_step(parameterization):
    """With one run the batched loop draws the actions reinforce_gradient draws, and its closed-form
    scores agree with the library's autograd scores."""
    policy = GaussianPolicy(parameterization)
    theta0 = policy.params(1.0, 0.6)
    runs = reinforce_bandit_runs(BANDIT, policy, theta0, 0.7, 1, 50, 1, seed=3, target=2.0)
    reference = theta0 + 0.7 * BANDIT.reinforce_gradient(policy, theta0, 50, torch.Generator().manual_seed(3))
    assert torch.allclose(runs.thetas[1, 0], reference, rtol=1e-12, atol=1e-14)
    for k in range(2):
        assert float(runs.values[k, 0]) == pytest.approx(
            float(BANDIT.expected_reward(policy, runs.thetas[k, 0]))
        )


def test_runs_are_unbiased_steps_of_the_exact_gradient():
    policy = GaussianPolicy("log_sigma")
    theta0 = policy.params(1.5, 0.5)
    runs = reinforce_bandit_runs(BANDIT, policy, theta0, 1.0, 1, 20, 4000, seed=0, target=2.0)
    steps = runs.thetas[1] - theta0
    mean, stderr = steps.mean(0), steps.std(0) / math.sqrt(steps.shape[0])
    assert torch.all((mean - BANDIT.exact_gradient(policy, theta0)).abs() < 4 * stderr)


def test_first_hits_and_early_stopping():
    policy = GaussianPolicy("log_sigma")
    theta0 = policy.params(1.0, 0.3)
    full = reinforce_bandit_runs(BANDIT, policy, theta0, 1.0, 30, 100, 8, seed=1, target=0.5)
    hits = full.values >= 0.5
    for r in range(8):
        expected = int(torch.nonzero(hits[:, r])[0]) if hits[:, r].any() else -1
        assert int(full.first[r]) == expected
    stopped = reinforce_bandit_runs(
        BANDIT, policy, theta0, 1.0, 30, 100, 8, seed=1, target=0.5, stop_early=True
    )
    assert torch.equal(stopped.first, full.first)
    n = stopped.thetas.shape[0]
    assert n == int(full.first.max()) + 1 and torch.equal(stopped.thetas, full.thetas[:n])
    assert full.recovered == 8 and full.fraction == 1.0 and full.fraction_by(0) == 0.0
    at_target = reinforce_bandit_runs(BANDIT, policy, theta0, 1.0, 5, 10, 3, seed=0, target=0.1)
    assert at_target.first.tolist() == [0, 0, 0]  # J(θ0) = 0.197 is already above 0.1


def test_reinforce_runs_reject_bad_arguments():
    policy = GaussianPolicy("log_sigma")
    theta0 = policy.params(1.0, 0.3)
    with pytest.raises(TypeError):
        reinforce_bandit_runs(BANDIT, GaussianPolicy, theta0, 1.0, 5, 10, 3, seed=0, target=0.5)
    for bad in ({"alpha": 0.0}, {"n_samples": 0}, {"n_runs": 0}, {"seed": -1}):
        args = {"alpha": 1.0, "n_samples": 10, "n_runs": 3, "seed": 0} | bad
        with pytest.raises(ValueError):
            reinforce_bandit_runs(BANDIT, policy, theta0, n_iter=5, target=0.5, **args)


def test_stderr_of_a_difference_by_hand():
    # Agresti-Caffo: p1 = 11/22 = 0.5, p2 = 1/22; se² = 0.25/22 + (1/22)(21/22)/22
    expected = math.sqrt(0.25 / 22 + (1 / 22) * (21 / 22) / 22)
    assert _stderr_of_difference(10, 20, 0, 20) == pytest.approx(expected, rel=1e-14)
    assert _stderr_of_difference(0, 20, 0, 20) > 0


def test_poor_update_recovery_compares_two_independent_groups():
    policy = GaussianPolicy("log_sigma")
    theta0 = policy.params(1.0, 0.3)
    result = poor_update_recovery(BANDIT, policy, theta0, 10.0, 1.0, 50, 100, 10, seed=4)
    step = vanilla_ascent(
        lambda th: BANDIT.expected_reward(policy, th),
        lambda th: BANDIT.exact_gradient(policy, th),
        theta0,
        10.0,
        1,
    )
    assert torch.allclose(result.landing, step.thetas[1], rtol=1e-14)
    assert result.j_landing == pytest.approx(float(step.values[1]), rel=1e-12)
    alone = reinforce_bandit_runs(BANDIT, policy, result.landing, 1.0, 50, 100, 10, seed=5, target=0.5)
    assert torch.equal(result.after.first, alone.first)  # the second group uses seed + 1
    assert result.difference() == result.without.fraction - result.after.fraction
    assert result.difference(0) == 0.0
    x1, x2 = result.without.recovered, result.after.recovered
    assert result.stderr() == _stderr_of_difference(x1, 10, x2, 10)
