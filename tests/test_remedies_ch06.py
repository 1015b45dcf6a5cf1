"""New experiment functions of chapter 6 against independent references: hand counts of
operations, numpy's inverse, a hand-written Adam, closed forms of Newton steps, and the rank
bound of sampled Fisher matrices."""

import math

import numpy as np
import pytest
import torch

import npgbook as nb
from npgbook.experiments import brittleness, cost, variants
from npgbook.problems import envs


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ---------------------------------------------------------------- count_flops


def test_count_flops_matmul_and_elementwise_by_hand():
    a, b = torch.randn(5, 3), torch.randn(3, 4)
    assert cost.count_flops(lambda: a @ b)[1].flops == 2 * 5 * 3 * 4
    assert cost.count_flops(lambda: torch.addmm(torch.ones(5, 4), a, b))[1].flops == 2 * 60 + 20
    assert cost.count_flops(lambda: a[0] @ a[1])[1].flops == 2 * 3
    assert cost.count_flops(lambda: torch.randn(7) * 2.0 + 1.0)[1].flops == 14
    assert cost.count_flops(lambda: a.sum())[1].flops == 15
    assert cost.count_flops(lambda: a.t().clone())[1].flops == 0


def test_count_flops_sees_backward_passes_and_names_opaque_routines():
    w = torch.randn(6, 4, requires_grad=True)
    x = torch.randn(10, 6)

    def loss_and_grad():
        (g,) = torch.autograd.grad((x @ w).sum(), w)
        return g

    _, forward = cost.count_flops(lambda: (x @ w).sum())
    _, both = cost.count_flops(loss_and_grad)
    assert both.flops >= forward.flops + 2 * 10 * 6 * 4  # the backward product xᵀ·1
    _, solve = cost.count_flops(lambda: torch.linalg.solve(torch.eye(3) * 2, torch.ones(3)))
    assert solve.uncounted  # LAPACK's work is not counted, but reported


# ---------------------------------------------------------------- inverses


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_gauss_jordan_inverse_matches_numpy(n):
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(n)) + n * torch.eye(n)
    np.testing.assert_allclose(cost.gauss_jordan_inverse(a).numpy(), np.linalg.inv(a.numpy()), atol=1e-12)


def test_gauss_jordan_pivots_and_rejects_singular_matrices():
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # a zero on the diagonal needs a row exchange
    assert torch.equal(cost.gauss_jordan_inverse(swap), swap)
    with pytest.raises(ValueError, match="singular"):
        cost.gauss_jordan_inverse(torch.ones(3, 3))
    with pytest.raises(ValueError, match="square"):
        cost.gauss_jordan_inverse(torch.ones(2, 3))


@pytest.mark.parametrize("n", [8, 32])
def test_gauss_jordan_count_is_six_n_cubed_to_leading_order(n):
    a = cost.well_conditioned_matrix(n)
    _, count = cost.count_flops(lambda: cost.gauss_jordan_inverse(a))
    # per step: 4n² (the rank-one product) + 2n² (its subtraction) + O(n)
    assert 6 * n**3 <= count.flops <= 6 * n**3 + 10 * n**2


def test_inverse_scaling_exponents():
    cubic = cost.inverse_scaling()
    assert abs(cubic.exponent - 3) < 0.05 and cubic.max_residual < 1e-12 and not cubic.uncounted
    diag = cost.inverse_scaling(cost.diagonal_inverse, matrix=lambda n: torch.diag(torch.arange(1.0, n + 1)))
    assert diag.exponent == pytest.approx(1.0) and list(diag.flops) == list(diag.sizes)
    opaque = cost.inverse_scaling(torch.linalg.inv)
    assert opaque.uncounted and opaque.exponent == 0.0


def test_inverse_timing_returns_a_power_law():
    seconds, law = cost.inverse_timing(sizes=(64, 128), repeats=1)
    assert seconds.shape == (2,) and np.all(seconds > 0) and math.isfinite(law.exponent)


# ---------------------------------------------------------------- compare_remedies


def test_compare_remedies_on_a_small_policy():
    policy = nb.MLPCategoricalPolicy(4, 2, (6,))
    theta = policy.initial_params(1, last_layer_scale=1.0)
    obs = envs.cartpole_observations(64, seed=0)
    grad = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(0))
    full = cost.compare_remedies(policy, theta, obs, grad, cg_iters=policy.n_params)
    assert full.cg_cosine == pytest.approx(1.0, abs=1e-9)  # n iterations on a damped SPD system
    assert full.vanilla_cosine < full.kfac_cosine <= 1.0
    short = cost.compare_remedies(policy, theta, obs, grad, cg_iters=2)
    assert short.cg_flops < full.cg_flops and short.dense_flops == full.dense_flops
    assert full.dense_stored == policy.n_params**2
    assert full.kfac_stored == 5**2 + 6**2 + 7**2 + 2**2


# ---------------------------------------------------------------- estimate_definiteness


def test_estimate_definiteness_rank_bound_and_psd_outer_product():
    policy = nb.MLPCategoricalPolicy(4, 2, (4,))
    theta = policy.initial_params(0, last_layer_scale=1.0)
    obs = envs.cartpole_observations(64, seed=0)
    r = brittleness.estimate_definiteness(policy, theta, obs, (3, 200), draws=2)
    assert r.outer_rank[0] == 3 and np.all(r.outer_rank <= policy.n_params - 5)  # 5 redundant directions
    assert np.all(r.outer_not_pd == 1) and np.all(r.outer_indefinite == 0)


def test_estimate_definiteness_gaussian_becomes_definite():
    g = nb.GaussianPolicy("sigma")
    r = brittleness.estimate_definiteness(g, g.params(0.0, 1.0), None, (1, 2, 1000), draws=10)
    assert r.outer_not_pd.tolist() == [1.0, 0.0, 0.0]
    assert r.hessian_indefinite[0] > 0 and r.hessian_indefinite[-1] == 0
    # one sample: −∂²log π/∂σ² = (3(a−μ)² − σ²)/σ⁴ < 0 iff |a − μ| < σ/√3, and μ-block is 1/σ²
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(1, generator=gen)
    h = nb.fisher_from_sample_hessians(g, g.params(0.0, 1.0), a)
    assert float(h[1, 1]) == pytest.approx(3 * float(a) ** 2 - 1)


# ---------------------------------------------------------------- curvature_response


def hand_adam(grads, lr=0.05, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma & Ba's Algorithm 1, written out: the steps for a given sequence of gradients."""
    m = v = 0.0
    steps = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        steps.append(-lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
    return steps


def test_adam_step_matches_a_hand_written_adam():
    h = np.array([[10.0, 3.0], [3.0, 1.0]])
    a = np.array([1.0, -1.0])
    x = np.zeros(2)
    grads = []
    for _ in range(21):  # 20 warm-up steps and the step at x_T
        g = h @ (x - a)
        grads.append(g)
        x = x + hand_adam(grads)[-1]
    r = variants.curvature_response()
    np.testing.assert_allclose(r.point, x - hand_adam(grads)[-1], atol=1e-12)
    np.testing.assert_allclose(r.gradient, grads[-1], atol=1e-12)
    for step in r.steps:
        np.testing.assert_allclose(step, hand_adam(grads)[-1], atol=1e-12)
    assert r.response == 0.0


def test_newton_and_diagonal_hessian_steps_follow_the_curvature():
    r = variants.curvature_response(variants.newton_step)
    h = np.array([[10.0, 3.0], [3.0, 1.0]])
    for s, step in zip(r.scales, r.steps):
        np.testing.assert_allclose(step, -np.linalg.solve(s * h, r.gradient), atol=1e-10)
    assert r.response == pytest.approx(1 - 0.25 / 4)
    d = variants.curvature_response(variants.diagonal_hessian_step)
    np.testing.assert_allclose(d.steps[0] / d.steps[-1], [16.0, 16.0], rtol=1e-6)


def test_curvature_response_bad_inputs():
    with pytest.raises(ValueError, match="positive definite"):
        variants.curvature_response(hessian=((1.0, 0.0), (0.0, -1.0)))
    with pytest.raises(ValueError, match="scales"):
        variants.curvature_response(scales=(1.0,))
