"""npgbook.experiments.cost: parameter counts, dense-matrix sizes, power-law fits, peak memory, cost measurements."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import npgbook as nb
from npgbook.experiments import cost


@given(st.integers(1, 8), st.integers(2, 5), st.lists(st.integers(1, 40), max_size=3))
def test_parameter_count_matches_the_network(obs_dim, n_actions, hidden):
    policy = nb.MLPCategoricalPolicy(obs_dim, n_actions, tuple(hidden))
    assert cost.mlp_n_params(obs_dim, n_actions, hidden) == policy.n_params


@pytest.mark.parametrize("target", [100, 1_000, 123_456, 10**6])
def test_mlp_with_n_params_picks_the_closest_width(target):
    policy = cost.mlp_with_n_params(target)
    best = min(range(1, 2000), key=lambda h: abs(h * h + 8 * h + 2 - target))  # CartPole shape, two layers
    assert policy.hidden == (best, best)
    assert policy.n_params == best * best + 8 * best + 2


def test_the_notes_ten_billion_entries():
    assert cost.dense_fisher_bytes(100_000, torch.float64) == 8 * 10**10
    assert cost.dense_fisher_bytes(100_000, torch.float32) == 4 * 10**10
    assert cost.dense_fisher_bytes(3) == 72


@pytest.mark.parametrize("bad", [0, -5, 1.5, "10"])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="n_params"):
        cost.dense_fisher_bytes(bad)
    with pytest.raises(ValueError, match="n_params"):
        cost.mlp_with_n_params(bad)


@given(st.floats(-3, 4), st.floats(1e-6, 1e3))
def test_power_law_fit_recovers_exponent_and_prefactor(exponent, prefactor):
    n = np.array([10.0, 100.0, 3000.0, 1e5])
    fit = cost.fit_power_law(n, prefactor * n**exponent)
    assert fit.exponent == pytest.approx(exponent, abs=1e-9)
    assert fit.prefactor == pytest.approx(prefactor, rel=1e-8)
    assert fit(1e6) == pytest.approx(prefactor * 1e6**exponent, rel=1e-7)


def test_power_law_fit_rejects_bad_data():
    with pytest.raises(ValueError):
        cost.fit_power_law([1, 2], [1, -1])
    with pytest.raises(ValueError):
        cost.fit_power_law([5, 5], [1, 2])
    with pytest.raises(ValueError):
        cost.fit_power_law([1, 2, 3], [1, 2])


@pytest.mark.skipif(not cost.peak_memory_supported(), reason="needs Linux /proc/self/clear_refs")
def test_peak_memory_sees_a_large_temporary():
    def allocate():
        big = torch.ones(50 * 2**20 // 8, dtype=torch.float64)  # 50 MiB, touched
        return float(big[-1])

    value, peak = cost.peak_memory(allocate)
    assert value == 1.0
    assert 45 * 2**20 < peak < 200 * 2**20


@pytest.mark.parametrize("method", cost.METHODS)
def test_measurements_are_positive_and_labelled(method):
    policy = nb.MLPCategoricalPolicy(4, 2, (6, 6))
    theta = policy.initial_params(0)
    obs = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    grad = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(1))
    m = cost.measure_natural_gradient_cost(policy, theta, obs, grad, method, repeats=1)
    assert m.method == method and m.n_params == policy.n_params and m.n_states == 16
    assert m.seconds_build > 0 and m.seconds_solve > 0 and m.seconds == m.seconds_build + m.seconds_solve
    if cost.peak_memory_supported():
        assert m.peak_bytes is not None and m.peak_bytes >= 0


def test_measurement_rejects_bad_arguments():
    policy = nb.MLPCategoricalPolicy(4, 2, (3,))
    theta = policy.initial_params(0)
    obs = torch.zeros(4, 4)
    grad = torch.ones(policy.n_params)
    with pytest.raises(ValueError, match="method"):
        cost.measure_natural_gradient_cost(policy, theta, obs, grad, "svd")
    with pytest.raises(ValueError, match="damping"):
        cost.measure_natural_gradient_cost(policy, theta, obs, grad, "cg", damping=0.0)
    with pytest.raises(ValueError, match="grad"):
        cost.measure_natural_gradient_cost(policy, theta, obs, torch.ones(3), "cg")
    with pytest.raises(ValueError, match="cg_iters"):
        cost.measure_natural_gradient_cost(policy, theta, obs, grad, "cg", cg_iters=0)
