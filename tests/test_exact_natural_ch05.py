"""Unit tests of npgbook.experiments.exact_natural (chapter 5's experiments), against hand
computations, closed forms and a second implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from npgbook import metric
from npgbook.experiments import exact_natural as en
from npgbook.experiments.taylor import fit_loglog_slope
from npgbook.fisher import fisher_gaussian
from npgbook.policies import GaussianPolicy


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


F = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
G = torch.tensor([1.0, -2.0], dtype=torch.float64)


def test_relaxed_stationarity_by_hand():
    # det F = 1.75, F⁻¹g = [2, -4.5] / 1.75, gᵀF⁻¹g = 11 / 1.75
    best = torch.tensor([2.0, -4.5]) / 1.75 / 2.0
    r = en.relaxed_stationarity(G, F, 2.0, best)
    assert r.residual < 1e-14 and r.slope == pytest.approx(11 / 1.75 / 2)
    assert r.objective == pytest.approx(r.optimum) and r.optimum == pytest.approx(11 / 1.75 / 4)
    note = en.relaxed_stationarity(G, F, 2.0, en.note_intermediate_step(G, F, 2.0))
    assert note.residual == pytest.approx(2.0) and note.objective == pytest.approx(-3 * r.optimum)


def test_random_problem_is_positive_definite_and_reproducible():
    g, f = en.random_problem(0)
    assert g.shape == (6,) and bool((torch.linalg.eigvalsh(f) > 0.09).all())
    assert torch.equal(en.random_problem(0)[1], f) and not torch.equal(en.random_problem(1)[1], f)


def test_budget_spending_of_the_natural_step():
    spent = en.budget_spending(G, F, [1e-3, 0.1, 1.0])
    assert max(spent.model, spent.alpha, spent.multiplier) < 1e-10


def test_reparameterization_agrees_with_change_of_coordinates():
    mu, sigma = 0.5, 0.7
    jac = torch.diag(torch.tensor([1.0, sigma]))
    sig, log = GaussianPolicy("sigma"), GaussianPolicy("log_sigma")
    g_th = en.BANDIT.exact_gradient(sig, sig.params(mu, sigma))
    f_new, g_new = metric.change_of_coordinates(fisher_gaussian(mu, sigma, "sigma"), g_th, jac)
    assert torch.allclose(f_new, fisher_gaussian(mu, sigma, "log_sigma"), atol=1e-12)
    assert torch.allclose(g_new, en.BANDIT.exact_gradient(log, log.params(mu, sigma)), atol=1e-12)
    errors = en.reparameterization_errors([(mu, sigma)], [1e-2, 1e-4, 1e-6])
    assert errors.exact < 1e-12
    eps = sorted(errors.remainder)
    slope = fit_loglog_slope(eps, [errors.remainder[e] for e in eps])
    assert abs(slope - 0.5) < 0.02  # the remainder is second order: O(ε) against a step O(√ε)


def test_step_scan_matches_the_closed_form():
    # θ = (μ, log σ), F = diag(1/σ², 2): Δμ = √(2ε) σ² g_μ / √(σ² g_μ² + g_s² / 2)
    pol = GaussianPolicy("log_sigma")
    for sigma in (0.3, 3.0):
        scan = en.step_scan([-1.0, 0.5, 4.0], sigma, 0.1)
        for m, dmu, length in zip(scan.mus, scan.natural_mu, scan.natural, strict=True):
            g_mu, g_s = en.BANDIT.exact_gradient(pol, pol.params(float(m), sigma)).tolist()
            norm = math.sqrt(sigma**2 * g_mu**2 + g_s**2 / 2)
            assert dmu == pytest.approx(math.sqrt(0.2) * sigma**2 * abs(g_mu) / norm, rel=1e-12)
            expected = math.sqrt(0.2) * math.hypot(sigma**2 * g_mu, g_s / 2) / norm
            assert length == pytest.approx(expected, rel=1e-12)


def test_plateau_iterations_and_a_zero_gradient():
    assert en.plateau_iterations(1.75, 0.1) == 4
    assert en.plateau_iterations(1.75, 0.1, 20, gradient=torch.zeros_like) is None


def test_realized_kl_of_the_gaussian_against_the_closed_form():
    bench = en.kl_benches()["Gaussian (μ, σ)"]
    ratio = en.realized_kl_ratios([1e-2], benches={"g": bench})["g"][0]
    step = 0.1 * en.natural_step(bench.grad, bench.fisher, 1.0).step
    (m0, s0), (m1, s1) = (1.0, 0.3), (1.0 + float(step[0]), 0.3 + float(step[1]))
    kl = math.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5
    assert ratio == pytest.approx(kl / 1e-2, rel=1e-10)
    assert en.kl_benches()["MLP, advantages seed 2"].policy.n_params == 67


def test_peak_approach_progress_and_starts():
    res = en.peak_approach([0.1], [1.0], 10, gradient=torch.zeros_like)
    assert list(res.starts) == ["N(1, 0.3²)", "the tail μ = 6.8"]
    assert all(r.progress == 0 and r.overshoot is None for r in res.natural.values())
    moving = en.peak_approach([0.1], [], 40)
    assert all(r.progress > 0.99 for r in moving.natural.values())


def test_traced_path_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="method"):
        en.traced_path("adam", "sigma", 0.1)
    path = en.traced_path("natural", "log_sigma", 0.1)
    assert np.allclose(path[0], [0.0, 2.0])


def test_plateau_vanilla_iterations_against_a_hand_written_loop():
    # the same update written out with autograd instead of the exact policy-gradient formula
    mdp, tabular = en.two_state()
    target = 0.9 * mdp.optimal_return()
    for gap in (1.0, 1.25):
        theta, k = en.plateau_start(gap).clone(), 0
        while float(mdp.expected_return(tabular, theta)) < target:
            theta = theta + torch.func.grad(lambda th: mdp.expected_return(tabular, th))(theta)
            k += 1
        assert en.plateau_vanilla_iterations(gap) == k
    # a budget too small to get there, and a zero gradient: never
    assert en.plateau_vanilla_iterations(1.75, n_iter=100) is None
    assert en.plateau_vanilla_iterations(1.0, gradient=torch.zeros_like) is None
