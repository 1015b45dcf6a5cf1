"""npgbook.experiments.brittleness against numpy/scipy, closed forms and a conjugate gradient written here."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.sparse.linalg import cg as scipy_cg

import npgbook as nb
from npgbook.experiments import brittleness as br

NAN = float("nan")
seeds = st.integers(0, 2**31 - 1)


def rng(seed):
    return np.random.default_rng(seed)


def random_spd(n, seed, cond=100.0):
    """A symmetric positive definite matrix with eigenvalues from 1 to ``cond`` (numpy)."""
    q, _ = np.linalg.qr(rng(seed).standard_normal((n, n)))
    return (q * np.logspace(0, math.log10(cond), n)) @ q.T


def random_psd(n, rank, seed):
    """A symmetric positive semidefinite matrix of the given rank (numpy)."""
    b = rng(seed).standard_normal((n, rank))
    return b @ b.T


def t(array):
    return torch.as_tensor(np.asarray(array, dtype=np.float64))


def f_cosine(d, r, f):
    """The metric cosine, written out in numpy."""
    return float(d @ f @ r) / math.sqrt(float(d @ f @ d) * float(r @ f @ r))


# ---------------------------------------------------------------- metric_cosine


@given(st.integers(1, 8), seeds)
def test_metric_cosine_matches_numpy_and_is_one_with_itself(n, seed):
    f = random_spd(n, seed)
    d, r = rng(seed + 1).standard_normal((2, n))
    assume(np.abs(d).max() > 1e-3 and np.abs(r).max() > 1e-3)
    assert br.metric_cosine(t(d), t(r), t(f)) == pytest.approx(f_cosine(d, r, f), rel=1e-10, abs=1e-12)
    assert br.metric_cosine(t(d), t(d), t(f)) == pytest.approx(1.0, abs=1e-12)
    assert br.metric_cosine(t(d), t(-d), t(f)) == pytest.approx(-1.0, abs=1e-12)
    assert -1.0 - 1e-12 <= br.metric_cosine(t(d), t(r), t(f)) <= 1.0 + 1e-12  # Cauchy-Schwarz in F


@given(st.integers(2, 8), seeds)
def test_metric_cosine_of_f_orthogonal_vectors_is_zero(n, seed):
    f = random_spd(n, seed)
    d, r = rng(seed + 1).standard_normal((2, n))
    r_perp = r - (d @ f @ r) / (d @ f @ d) * d  # Gram-Schmidt in the inner product of F
    assume(math.sqrt(r_perp @ f @ r_perp) > 1e-3)
    assert br.metric_cosine(t(d), t(r_perp), t(f)) == pytest.approx(0.0, abs=1e-10)


@given(st.integers(1, 6), seeds, st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_metric_cosine_is_invariant_under_positive_scaling(n, seed, a, b):
    f = random_spd(n, seed)
    d, r = rng(seed + 1).standard_normal((2, n))
    base = br.metric_cosine(t(d), t(r), t(f))
    assert br.metric_cosine(t(a * d), t(b * r), t(f)) == pytest.approx(base, rel=1e-10, abs=1e-12)
    assert br.metric_cosine(t(d), t(r), t(a * f)) == pytest.approx(base, rel=1e-10, abs=1e-12)
    assert br.metric_cosine(t(-a * d), t(r), t(f)) == pytest.approx(-base, rel=1e-10, abs=1e-12)


@given(st.integers(1, 6), seeds)
def test_metric_cosine_does_not_depend_on_the_parameterization(n, seed):
    """theta = J phi: directions map as d_phi = J^-1 d, the metric as J^T F J; the cosine stays."""
    f = random_spd(n, seed)
    d, r = rng(seed + 1).standard_normal((2, n))
    jac = random_spd(n, seed + 2, cond=10.0) + rng(seed + 3).standard_normal((n, n)) * 0.1
    d_phi, r_phi = np.linalg.solve(jac, d), np.linalg.solve(jac, r)
    assert br.metric_cosine(t(d_phi), t(r_phi), t(jac.T @ f @ jac)) == pytest.approx(
        f_cosine(d, r, f), rel=1e-8, abs=1e-10
    )


@given(st.integers(1, 6), seeds)
def test_metric_cosine_with_the_natural_gradient_is_the_share_of_first_order_improvement(n, seed):
    """cos_F(d, F^-1 g) = g^T d / (|d|_F sqrt(g^T F^-1 g)), with F^-1 g by scipy."""
    f = random_spd(n, seed)
    g, d = rng(seed + 1).standard_normal((2, n))
    natural = scipy.linalg.solve(f, g, assume_a="pos")
    expected = (g @ d) / math.sqrt((d @ f @ d) * (g @ natural))
    assert br.metric_cosine(t(d), t(natural), t(f)) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_metric_cosine_operator_equals_dense_and_ignores_null_directions():
    f = np.diag([2.0, 0.5, 0.0])  # the third coordinate does not change the policy
    d, r = np.array([1.0, 2.0, 100.0]), np.array([1.0, 2.0, -7.0])
    assert br.metric_cosine(t(d), t(r), t(f)) == pytest.approx(1.0, abs=1e-12)
    assert br.metric_cosine(t(d), t(r), lambda v: t(f) @ v) == pytest.approx(1.0, abs=1e-12)
    # a dense metric of another dtype is applied in the dtype of the directions
    assert br.metric_cosine(t(d), t([1.0, 0.0, 0.0]), t(f).float()) == pytest.approx(f_cosine(d, [1, 0, 0], f))


def test_metric_cosine_bad_inputs():
    f, v = torch.eye(3), torch.ones(3)
    with pytest.raises(ValueError, match="direction"):
        br.metric_cosine(torch.tensor([0.0, 0.0, 1.0]), v, torch.diag(torch.tensor([1.0, 1.0, 0.0])))
    with pytest.raises(ValueError, match="reference"):
        br.metric_cosine(v, torch.zeros(3), f)
    with pytest.raises(ValueError, match="direction"):
        br.metric_cosine(torch.tensor([1.0, NAN, 0.0]), v, f)
    with pytest.raises(ValueError, match="direction"):
        br.metric_cosine(torch.ones(3, 1), v, f)
    with pytest.raises(ValueError, match="reference"):
        br.metric_cosine(v, torch.ones(2), f)
    with pytest.raises(ValueError, match="reference"):
        br.metric_cosine(v, torch.tensor([1.0, math.inf, 0.0]), f)
    with pytest.raises(ValueError, match="fisher"):
        br.metric_cosine(v, v, torch.eye(2))
    with pytest.raises(ValueError, match="fisher"):
        br.metric_cosine(v, v, torch.ones(3))
    with pytest.raises(ValueError, match="fisher"):
        br.metric_cosine(v, v, torch.full((3, 3), NAN))
    with pytest.raises(ValueError, match="fisher"):
        br.metric_cosine(v, v, lambda x: x * NAN)
    with pytest.raises(ValueError, match="fisher"):
        br.metric_cosine(v, v, lambda x: x[:2])
    with pytest.raises(ValueError, match="fisher"):
        br.metric_cosine(v, v, lambda x: x.sum())


# ---------------------------------------------------------------- sampled_fisher_rank


@given(st.integers(1, 12), st.integers(1, 12), seeds)
def test_sampled_fisher_rank_of_random_scores_is_min_of_batch_and_dimension(n_samples, n_params, seed):
    scores = rng(seed).standard_normal((n_samples, n_params))
    fisher = scores.T @ scores / n_samples
    rank = br.sampled_fisher_rank(t(scores))
    assert rank == min(n_samples, n_params) == np.linalg.matrix_rank(fisher, hermitian=True)


@given(st.integers(2, 20), st.integers(1, 10), seeds)
def test_sampled_fisher_rank_of_low_rank_scores(n_samples, inner, seed):
    """Scores confined to an ``inner``-dimensional subspace of R^30: rank min(N, inner)."""
    gen = rng(seed)
    scores = gen.standard_normal((n_samples, inner)) @ gen.standard_normal((inner, 30))
    assert br.sampled_fisher_rank(t(scores)) == min(n_samples, inner)
    assert br.sampled_fisher_rank(t(scores)) == np.linalg.matrix_rank(scores.T @ scores / n_samples)


def test_sampled_fisher_rank_threshold_is_relative_to_the_largest_eigenvalue():
    # F = S^T S / N with S = diag(s) has eigenvalues s_i^2 / N: here 1/3, 1e-4/3, 1e-12/3
    scores = t(np.diag([1.0, 1e-2, 1e-6]))
    assert br.sampled_fisher_rank(scores) == 3
    assert br.sampled_fisher_rank(scores, rtol=1e-8) == 2
    assert br.sampled_fisher_rank(scores, rtol=1e-3) == 1
    assert br.sampled_fisher_rank(1e-50 * scores, rtol=1e-8) == 2  # scale-free
    assert br.sampled_fisher_rank(torch.zeros(4, 6)) == 0
    assert br.sampled_fisher_rank(torch.ones(5, 3)) == 1  # identical scores: rank one


def test_sampled_fisher_rank_bad_inputs():
    with pytest.raises(ValueError, match="scores"):
        br.sampled_fisher_rank(torch.ones(4))
    with pytest.raises(ValueError, match="scores"):
        br.sampled_fisher_rank(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="scores"):
        br.sampled_fisher_rank(torch.ones(0, 3))
    with pytest.raises(ValueError, match="scores"):
        br.sampled_fisher_rank(torch.ones(3, 0))
    with pytest.raises(ValueError, match="scores"):
        br.sampled_fisher_rank(torch.tensor([[1.0, NAN]]))
    for bad in (0.0, -1e-3, NAN, math.inf, "x"):
        with pytest.raises(ValueError, match="rtol"):
            br.sampled_fisher_rank(torch.ones(2, 3), rtol=bad)


# ---------------------------------------------------------------- fisher_spectrum


def test_fisher_spectrum_of_a_diagonal_matrix():
    diag = np.array([0.5, 0.0, 4.0, 2.0, 0.0])
    g = np.array([1.0, 3.0, -2.0, 1.0, 5.0])
    spec = br.fisher_spectrum(t(np.diag(diag)), t(g))
    np.testing.assert_array_equal(spec.eigenvalues, [4.0, 2.0, 0.5, 0.0, 0.0])
    assert spec.rank == 3
    # the pseudo-inverse ignores the zero eigenvalues: g_i / lambda_i on the support, 0 elsewhere
    np.testing.assert_allclose(spec.natural_gradient.numpy(), [2.0, 0.0, -0.5, 0.5, 0.0], atol=1e-15)
    small = br.fisher_spectrum(t(np.diag(diag)), t(g), rtol=0.2)  # drops 0.5 < 0.2 * 4
    assert small.rank == 2
    np.testing.assert_allclose(small.natural_gradient.numpy(), [0.0, 0.0, -0.5, 0.5, 0.0], atol=1e-15)


@given(st.integers(1, 10), seeds)
def test_fisher_spectrum_of_a_positive_definite_matrix_matches_scipy(n, seed):
    f = random_spd(n, seed, cond=1e4)
    g = rng(seed + 1).standard_normal(n)
    spec = br.fisher_spectrum(t(f), t(g))
    np.testing.assert_allclose(spec.eigenvalues, scipy.linalg.eigh(f, eigvals_only=True)[::-1], rtol=1e-10)
    assert spec.rank == n == np.linalg.matrix_rank(f, hermitian=True)
    np.testing.assert_allclose(
        spec.natural_gradient.numpy(), scipy.linalg.solve(f, g, assume_a="pos"), rtol=1e-7, atol=1e-10
    )


@given(st.integers(2, 10), st.integers(1, 9), seeds)
def test_fisher_spectrum_of_a_singular_matrix_is_the_pseudo_inverse(n, rank, seed):
    assume(rank < n)
    f = random_psd(n, rank, seed)
    g = rng(seed + 1).standard_normal(n)
    spec = br.fisher_spectrum(t(f), t(g))
    assert spec.rank == rank == np.linalg.matrix_rank(f, hermitian=True)
    assert spec.eigenvalues.shape == (n,) and np.all(np.diff(spec.eigenvalues) <= 0)
    pinv = scipy.linalg.pinvh(f, rtol=n * np.finfo(float).eps)
    scale = np.linalg.norm(pinv @ g)
    np.testing.assert_allclose(spec.natural_gradient.numpy(), pinv @ g, atol=1e-8 * scale)
    # the result solves F x = g for the part of g in the range of F, and has no null-space part
    range_g = f @ pinv @ g
    np.testing.assert_allclose(f @ spec.natural_gradient.numpy(), range_g, atol=1e-8 * np.linalg.norm(g))


def test_fisher_spectrum_of_zero_matrix():
    spec = br.fisher_spectrum(torch.zeros(3, 3), torch.ones(3))
    assert spec.rank == 0 and torch.equal(spec.natural_gradient, torch.zeros(3))
    np.testing.assert_array_equal(spec.eigenvalues, np.zeros(3))


def test_fisher_spectrum_bad_inputs():
    with pytest.raises(ValueError, match="fisher"):
        br.fisher_spectrum(torch.ones(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match="fisher"):
        br.fisher_spectrum(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="fisher"):
        br.fisher_spectrum(torch.zeros(0, 0), torch.zeros(0))
    with pytest.raises(ValueError, match="fisher"):
        br.fisher_spectrum(torch.tensor([[1.0, NAN], [NAN, 1.0]]), torch.ones(2))
    with pytest.raises(ValueError, match="fisher"):  # eigh would read one triangle only
        br.fisher_spectrum(torch.tensor([[1.0, 5.0], [0.0, 1.0]]), torch.ones(2))
    with pytest.raises(ValueError, match="grad"):
        br.fisher_spectrum(torch.eye(2), torch.ones(3))
    with pytest.raises(ValueError, match="grad"):
        br.fisher_spectrum(torch.eye(2), torch.tensor([1.0, NAN]))
    with pytest.raises(ValueError, match="rtol"):
        br.fisher_spectrum(torch.eye(2), torch.ones(2), rtol=-1.0)


# ---------------------------------------------------------------- cg_trace


def reference_cg(a, b, k_max):
    """Textbook CG in numpy from x_0 = 0: the iterates x_1..x_k_max, or the breakdown iteration."""
    x, r = np.zeros_like(b), b.copy()
    p, rr = r.copy(), r @ r
    iterates = []
    for k in range(1, k_max + 1):
        ap = a @ p
        curvature = p @ ap
        if curvature <= 0:
            return iterates, k
        alpha = rr / curvature
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + rr_new / rr * p
        rr = rr_new
        iterates.append(x.copy())
    return iterates, None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cg_trace_matches_a_textbook_cg_and_scipy(seed):
    """Iterate by iterate. CG amplifies rounding differences as it goes (the search directions lose
    their conjugacy), so the matrix is kept moderately conditioned."""
    n = 30
    a = random_spd(n, seed, cond=100.0)
    b = rng(seed + 1).standard_normal(n)
    checkpoints = [1, 2, 5, 9, 17]
    trace = br.cg_trace(lambda v: t(a) @ v, t(b), checkpoints)
    assert trace.broke_down is None
    np.testing.assert_array_equal(trace.iterations, checkpoints)
    iterates, broke = reference_cg(a, b, max(checkpoints))
    assert broke is None
    scipy_iterates = []
    scipy_cg(a, b, maxiter=max(checkpoints), rtol=0.0, atol=0.0, callback=lambda xk: scipy_iterates.append(xk.copy()))
    for i, k in enumerate(checkpoints):
        for x in (iterates[k - 1], scipy_iterates[k - 1]):
            assert trace.solution_norm[i] == pytest.approx(np.linalg.norm(x), rel=1e-9)
            assert trace.residual[i] == pytest.approx(np.linalg.norm(b - a @ x) / np.linalg.norm(b), rel=1e-7)


@given(st.integers(1, 12), seeds)
def test_cg_trace_solves_a_positive_definite_system_in_n_iterations(n, seed):
    a = random_spd(n, seed, cond=10.0)
    b = rng(seed + 1).standard_normal(n)
    trace = br.cg_trace(lambda v: t(a) @ v, t(b), [n])
    assert trace.residual[0] < 1e-9
    assert trace.solution_norm[0] == pytest.approx(np.linalg.norm(np.linalg.solve(a, b)), rel=1e-8)


@pytest.mark.parametrize("seed", [0, 1])
def test_cg_trace_on_a_singular_system_keeps_the_null_space_residual(seed):
    """A x lies in the range of A, so the residual never drops below |P_null b| / |b|."""
    n, rank = 20, 8
    a = random_psd(n, rank, seed)
    b = rng(seed + 1).standard_normal(n)
    u = scipy.linalg.eigh(a)[1][:, -rank:]  # orthonormal basis of the range
    floor = np.linalg.norm(b - u @ (u.T @ b)) / np.linalg.norm(b)
    trace = br.cg_trace(lambda v: t(a) @ v, t(b), [1, 4, 8])
    assert np.all(trace.residual >= floor * (1 - 1e-10))
    assert np.all(np.diff(trace.solution_norm) > 0)  # CG iterates grow in length from x_0 = 0


def test_cg_trace_reports_breakdown_at_the_textbook_iteration():
    a = np.diag([3.0, 2.0, -1.0])
    b = np.ones(3)
    _, broke = reference_cg(a, b, 3)
    assert broke == 2  # worked out by hand: p_1^T A p_1 = 0.421875 + 2.53125 - 11.390625 < 0
    trace = br.cg_trace(lambda v: t(a) @ v, t(b), [1, 2, 3])
    assert trace.broke_down == 2
    np.testing.assert_array_equal(trace.iterations, [1])
    assert trace.solution_norm[0] == pytest.approx(0.75 * math.sqrt(3))  # x_1 = (b^T b / b^T A b) b
    first = br.cg_trace(lambda v: torch.tensor([1.0, -1.0]) * v, torch.ones(2), [1, 2])
    assert first.broke_down == 1 and first.iterations.size == 0 and first.residual.size == 0


def test_cg_trace_bad_inputs():
    def ident(v):
        return v

    with pytest.raises(ValueError, match="b"):
        br.cg_trace(ident, torch.zeros(3), [1])
    with pytest.raises(ValueError, match="b"):
        br.cg_trace(ident, torch.tensor([1.0, NAN]), [1])
    with pytest.raises(ValueError, match="b"):
        br.cg_trace(ident, torch.ones(2, 2), [1])
    for bad in ([], [2, 2], [3, 1], [0, 1], [1.5], [True], 3):
        with pytest.raises(ValueError, match="iterations"):
            br.cg_trace(ident, torch.ones(3), bad)
    with pytest.raises(ValueError, match="matvec"):
        br.cg_trace(lambda v: v * NAN, torch.ones(3), [1])
    with pytest.raises(ValueError, match="matvec"):
        br.cg_trace(lambda v: v[:2], torch.ones(3), [1])


# ---------------------------------------------------------------- Gaussian closed forms


def gaussian_kl(mu0, s0, mu1, s1):
    """KL(N(mu0, s0^2) || N(mu1, s1^2)) in closed form."""
    return math.log(s1 / s0) + (s0**2 + (mu0 - mu1) ** 2) / (2 * s1**2) - 0.5


def gaussian_fisher(sigma, parameterization):
    return np.diag([1 / sigma**2, 2 / sigma**2 if parameterization == "sigma" else 2.0])


def to_mean_std(theta, parameterization):
    return theta[0], (theta[1] if parameterization == "sigma" else math.exp(theta[1]))


# ---------------------------------------------------------------- damping_sweep


def gaussian_setup(mu=0.3, sigma=0.7, parameterization="log_sigma"):
    policy = nb.GaussianPolicy(parameterization)
    theta = policy.params(mu, sigma)
    f = gaussian_fisher(sigma, parameterization)
    return policy, theta, f


@pytest.mark.parametrize("parameterization", ["sigma", "log_sigma"])
@pytest.mark.parametrize("lam", [0.0, 0.1, 3.0])
def test_damping_sweep_on_a_gaussian_matches_the_closed_form(parameterization, lam):
    policy, theta, f = gaussian_setup(parameterization=parameterization)
    g = np.array([0.8, -0.5])
    epsilon = 0.01
    natural = np.linalg.solve(f, g)
    sweep = br.damping_sweep(
        policy, theta, None, t(g), t(f), [lam],
        epsilon=epsilon, max_iter=2, reference=t(natural), reference_fisher=t(f),
    )
    direction = np.linalg.solve(f + lam * np.eye(2), g)
    step = math.sqrt(2 * epsilon / (g @ direction)) * direction
    mu0, s0 = to_mean_std(theta.numpy(), parameterization)
    mu1, s1 = to_mean_std(theta.numpy() + step, parameterization)
    assert not sweep.failed[0]
    np.testing.assert_array_equal(sweep.dampings, [lam])
    assert sweep.kl_ratio[0] == pytest.approx(gaussian_kl(mu0, s0, mu1, s1) / epsilon, rel=1e-9)
    assert sweep.cosine[0] == pytest.approx(f_cosine(direction, natural, f), abs=1e-12)
    assert sweep.residual[0] < 1e-12  # two CG iterations solve a 2x2 system
    if lam == 0.0:
        assert sweep.cosine[0] == pytest.approx(1.0, abs=1e-12)


def test_damping_sweep_at_large_damping_approaches_the_gradient_direction():
    """(F + lam I)^-1 g -> g / lam: the cosine tends to that of the vanilla gradient."""
    policy, theta, f = gaussian_setup(sigma=0.2)  # F = diag(25, 2): far from a multiple of I
    g = np.array([1.0, 1.0])
    natural = np.linalg.solve(f, g)
    sweep = br.damping_sweep(
        policy, theta, None, t(g), t(f), [0.0, 1.0, 1e3, 1e8],
        epsilon=1e-4, max_iter=2, reference=t(natural), reference_fisher=t(f),
    )
    vanilla = f_cosine(g, natural, f)
    assert vanilla < 0.8
    assert sweep.cosine[0] == pytest.approx(1.0, abs=1e-12)
    assert abs(sweep.cosine[-1] - vanilla) < 1e-6
    assert np.all(np.diff(sweep.cosine) < 0)  # bias grows with damping
    # the step is scaled in the damped metric, so its KL under F shrinks below the budget
    assert np.all(np.diff(sweep.kl_ratio) < 0) and sweep.kl_ratio[-1] < 1e-6


def test_damping_sweep_with_one_cg_iteration_has_the_closed_form_residual():
    """One CG iteration from 0 gives x_1 = (g^T g / g^T A g) g, A = F + lam I."""
    policy, theta, f = gaussian_setup(sigma=0.2)
    g, lam = np.array([1.0, -2.0]), 0.5
    a = f + lam * np.eye(2)
    x1 = (g @ g) / (g @ a @ g) * g
    sweep = br.damping_sweep(
        policy, theta, None, t(g), t(f), [lam],
        epsilon=1e-3, max_iter=1, reference=t(np.linalg.solve(f, g)), reference_fisher=t(f),
    )
    assert sweep.residual[0] == pytest.approx(np.linalg.norm(g - a @ x1) / np.linalg.norm(g), rel=1e-10)
    assert sweep.cosine[0] == pytest.approx(f_cosine(g, np.linalg.solve(f, g), f), abs=1e-12)


def test_damping_sweep_marks_cg_breakdown_on_a_singular_matrix():
    policy, theta, f = gaussian_setup()
    g = np.array([1.0, 1.0])
    sweep = br.damping_sweep(
        policy, theta, None, t(g), torch.zeros(2, 2), [0.0, 1.0],
        epsilon=0.01, max_iter=2, reference=t(np.linalg.solve(f, g)), reference_fisher=t(f),
    )
    np.testing.assert_array_equal(sweep.failed, [True, False])
    assert sweep.cosine[0] == -math.inf and sweep.kl_ratio[0] == math.inf and sweep.residual[0] == math.inf
    assert sweep.cosine[1] == pytest.approx(f_cosine(g, np.linalg.solve(f, g), f), abs=1e-12)


def mlp_bench(seed=0, n_states=5):
    """A small MLP policy, its policy gradient and exact Fisher matrix, both by torch.func here."""
    policy = nb.MLPCategoricalPolicy(4, 2, (3,))
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = torch.randn(n_states, 4, generator=torch.Generator().manual_seed(seed))

    def log_probs(th):
        return torch.log_softmax(policy.logits(th, obs), dim=1)  # (N, K)

    jac = torch.func.jacrev(log_probs)(theta)  # (N, K, n)
    probs = log_probs(theta).exp().detach()
    fisher = torch.einsum("sk,ski,skj->ij", probs, jac, jac) / n_states
    advantages = torch.linspace(-1.0, 1.0, n_states)
    grad = jac[:, 0, :].T @ advantages / n_states  # the gradient estimate if action 0 was taken everywhere
    return policy, theta, obs, fisher, grad, probs


def test_damping_sweep_on_an_mlp_matches_a_kl_computed_here():
    policy, theta, obs, fisher, grad, probs = mlp_bench()
    assert int(torch.linalg.matrix_rank(fisher)) < policy.n_params  # five states: singular
    reference = torch.linalg.pinv(fisher, hermitian=True) @ grad
    lams, epsilon = [1e-3, 1e-1, 10.0], 0.02
    sweep = br.damping_sweep(
        policy, theta, obs, grad, fisher, lams,
        epsilon=epsilon, max_iter=policy.n_params, reference=reference, reference_fisher=fisher,
    )
    assert not sweep.failed.any()
    for i, lam in enumerate(lams):
        direction = torch.linalg.solve(fisher + lam * torch.eye(policy.n_params), grad)
        step = math.sqrt(2 * epsilon / float(grad @ direction)) * direction
        new = torch.softmax(policy.logits(theta + step, obs), dim=1).detach()
        kl = float((probs * (probs / new).log()).sum(1).mean())
        assert sweep.kl_ratio[i] == pytest.approx(kl / epsilon, rel=1e-6)
        assert sweep.cosine[i] == pytest.approx(f_cosine(direction.numpy(), reference.numpy(), fisher.numpy()), abs=1e-6)
        assert sweep.residual[i] < 1e-6
    # operator form of the same matrices gives the same sweep
    again = br.damping_sweep(
        policy, theta, obs, grad, lambda v: fisher @ v, lams,
        epsilon=epsilon, max_iter=policy.n_params, reference=reference, reference_fisher=lambda v: fisher @ v,
    )
    np.testing.assert_allclose(again.kl_ratio, sweep.kl_ratio, rtol=1e-12)


def test_damping_sweep_bad_inputs():
    policy, theta, f = gaussian_setup()
    g, ref = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 2.0])
    good = {
        "policy": policy, "theta": theta, "obs": None, "grad": g, "fisher": t(f), "dampings": [0.0, 1.0],
        "epsilon": 0.01, "max_iter": 2, "reference": ref, "reference_fisher": t(f),
    }
    br.damping_sweep(**good)
    cases = [
        ("theta", torch.tensor([0.0, 0.0, 0.0])),
        ("grad", torch.ones(3)),
        ("grad", torch.zeros(2)),
        ("grad", torch.tensor([1.0, NAN])),
        ("grad", torch.ones(2, 1)),
        ("fisher", torch.eye(3)),
        ("fisher", torch.full((2, 2), NAN)),
        ("fisher", lambda v: v * NAN),
        ("fisher", lambda v: v[:1]),
        ("dampings", []),
        ("dampings", [-1.0]),
        ("dampings", [NAN]),
        ("dampings", [math.inf]),
        ("dampings", 0.1),
        ("epsilon", 0.0),
        ("epsilon", -1.0),
        ("epsilon", NAN),
        ("max_iter", 0),
        ("max_iter", 1.5),
        ("reference", torch.ones(3)),
        ("reference", torch.tensor([NAN, 1.0])),
        ("reference", torch.zeros(2)),
        ("reference_fisher", torch.eye(3)),
        ("reference_fisher", torch.full((2, 2), math.inf)),
    ]
    for name, value in cases:
        with pytest.raises(ValueError, match=name):
            br.damping_sweep(**{**good, name: value})
    mlp = nb.MLPCategoricalPolicy(4, 2, ())
    n, ones = mlp.n_params, torch.ones(mlp.n_params)
    mlp_case = {**good, "policy": mlp, "theta": torch.zeros(n), "grad": ones, "fisher": torch.eye(n),
                "reference": ones, "reference_fisher": torch.eye(n)}
    with pytest.raises(ValueError, match="obs"):
        br.damping_sweep(**{**mlp_case, "obs": torch.ones(3, 5)})


# ---------------------------------------------------------------- natural_step_kl


@given(
    st.sampled_from(["sigma", "log_sigma"]),
    st.floats(-2.0, 2.0),
    st.floats(0.2, 3.0),
    st.floats(-1.0, 1.0),
    st.floats(-1.0, 1.0),
    st.lists(st.floats(1e-6, 0.05), min_size=1, max_size=4),
)
def test_natural_step_kl_matches_the_gaussian_closed_form(parameterization, mu, sigma, d_mu, d_second, budgets):
    assume(abs(d_mu) + abs(d_second) > 1e-2)
    policy = nb.GaussianPolicy(parameterization)
    theta = policy.params(mu, sigma)
    f = gaussian_fisher(sigma, parameterization)
    d = np.array([d_mu, d_second])
    unit = 0.5 * d @ f @ d
    out = br.natural_step_kl(policy, theta, None, t(d), t(f), budgets)
    assert out.shape == (len(budgets),)
    for eps, kl in zip(budgets, out):
        # 1/2 step^T F step = eps with F = diag(1/s^2, 2/s^2) keeps |d sigma| <= sigma sqrt(eps) < sigma
        mu1, s1 = to_mean_std(theta.numpy() + math.sqrt(eps / unit) * d, parameterization)
        assert kl == pytest.approx(gaussian_kl(mu, sigma, mu1, s1), rel=1e-9, abs=1e-15)


def test_natural_step_kl_agrees_with_the_budget_only_for_small_budgets():
    policy, theta, f = gaussian_setup(parameterization="sigma", sigma=1.0)
    d = np.array([0.0, -1.0])
    budgets = [1e-8, 1e-4, 0.25]
    out = br.natural_step_kl(policy, theta, None, t(d), t(f), budgets)
    ratios = out / np.array(budgets)
    assert abs(ratios[0] - 1) < 1e-3 and abs(ratios[1] - 1) < 2e-2
    # closed form: the step is d sigma = -sqrt(eps), so at eps = 0.25, sigma' = 0.5
    assert out[2] == pytest.approx(math.log(0.5) + 1 / (2 * 0.25) - 0.5, rel=1e-12)


def test_natural_step_kl_raises_when_the_step_leaves_the_parameter_space():
    """In (mu, sigma) the step d sigma = -sqrt(eps) reaches sigma = 0 at eps = 1."""
    policy, theta, f = gaussian_setup(parameterization="sigma", sigma=1.0)
    for eps in (1.0, 4.0):
        with pytest.raises(ValueError, match="sigma"):
            br.natural_step_kl(policy, theta, None, torch.tensor([0.0, -1.0]), t(f), [eps])
    policy, theta, f = gaussian_setup(parameterization="log_sigma", sigma=1.0)
    kl = br.natural_step_kl(policy, theta, None, torch.tensor([0.0, -1.0]), t(f), [1.0])[0]
    assert kl == pytest.approx(math.log(math.exp(-1.0)) + 1 / (2 * math.exp(-2.0)) - 0.5, rel=1e-12)


def test_natural_step_kl_on_an_mlp_matches_a_kl_computed_here_and_operator_form():
    policy, theta, obs, fisher, grad, probs = mlp_bench(seed=1, n_states=20)
    direction = torch.linalg.solve(fisher + 0.01 * torch.eye(policy.n_params), grad)
    budgets = [1e-4, 1e-2, 1.0]
    out = br.natural_step_kl(policy, theta, obs, direction, fisher, budgets)
    unit = 0.5 * float(direction @ fisher @ direction)
    for eps, kl in zip(budgets, out):
        new = torch.softmax(policy.logits(theta + math.sqrt(eps / unit) * direction, obs), dim=1).detach()
        assert kl == pytest.approx(float((probs * (probs / new).log()).sum(1).mean()), rel=1e-8)
    np.testing.assert_allclose(br.natural_step_kl(policy, theta, obs, direction, lambda v: fisher @ v, budgets), out)
    assert br.natural_step_kl(policy, theta, obs, direction, fisher, []).shape == (0,)


def test_natural_step_kl_bad_inputs():
    policy, theta, f = gaussian_setup()
    d = torch.tensor([1.0, 0.5])
    with pytest.raises(ValueError, match="direction"):
        br.natural_step_kl(policy, theta, None, torch.zeros(2), t(f), [0.1])
    with pytest.raises(ValueError, match="direction"):  # zero length in the metric
        br.natural_step_kl(policy, theta, None, torch.tensor([0.0, 1.0]), torch.diag(torch.tensor([1.0, 0.0])), [0.1])
    with pytest.raises(ValueError, match="direction"):
        br.natural_step_kl(policy, theta, None, torch.ones(3), t(f), [0.1])
    with pytest.raises(ValueError, match="direction"):
        br.natural_step_kl(policy, theta, None, torch.tensor([NAN, 1.0]), t(f), [0.1])
    with pytest.raises(ValueError, match="theta"):
        br.natural_step_kl(policy, torch.ones(3), None, d, t(f), [0.1])
    with pytest.raises(ValueError, match="fisher"):
        br.natural_step_kl(policy, theta, None, d, torch.eye(3), [0.1])
    with pytest.raises(ValueError, match="fisher"):
        br.natural_step_kl(policy, theta, None, d, torch.full((2, 2), NAN), [0.1])
    with pytest.raises(ValueError, match="fisher"):
        br.natural_step_kl(policy, theta, None, d, lambda v: v * NAN, [0.1])
    with pytest.raises(ValueError, match="fisher"):
        br.natural_step_kl(policy, theta, None, d, lambda v: v[:1], [0.1])
    for bad in ([0.0], [-0.1], [NAN], [0.1, math.inf], ["a"], 0.1):
        with pytest.raises(ValueError, match="epsilons"):
            br.natural_step_kl(policy, theta, None, d, t(f), bad)


def test_definiteness_on_range_matches_the_full_check_when_f_is_nonsingular():
    # the Gaussian's exact F (closed form) is positive definite: its range is everything, so the
    # range check must reproduce estimate_definiteness's eigenvalue ratios draw for draw
    policy = nb.GaussianPolicy("sigma")
    theta = policy.params(1.0, 0.5)
    full = br.estimate_definiteness(policy, theta, None, (2, 64), draws=3)
    on_range = br.definiteness_on_range(
        policy, theta, None, (2, 64), draws=3,
        exact_fisher=lambda s: nb.fisher_gaussian(1.0, 0.5, "sigma"),
    )
    assert on_range.range_dim.tolist() == [2, 2]
    np.testing.assert_allclose(on_range.outer_min_ratio, full.outer_min_ratio, rtol=1e-10)
    np.testing.assert_allclose(on_range.hessian_min_ratio, full.hessian_min_ratio, rtol=1e-10)
    with pytest.raises(ValueError, match="exact_fisher"):
        br.definiteness_on_range(policy, theta, None, (2,))
