import math

import pytest
import torch

from npgbook import (
    CategoricalPolicy,
    GaussianPolicy,
    MLPCategoricalPolicy,
    fisher_categorical,
    fisher_from_sample_hessians,
    fisher_from_samples,
    fisher_gaussian,
    score_vectors,
)
from npgbook.experiments.cost import measure_fisher_cost, saved_graph_bytes


def test_single_sample_is_the_outer_product_of_the_hand_written_score():
    """Softmax score: e_a − p; Gaussian (μ, σ) score: ((x−μ)/σ², ((x−μ)² − σ²)/σ³)."""
    logits = torch.tensor([0.2, -1.0, 0.7])
    p = torch.softmax(logits, 0)
    for a in range(3):
        score = torch.eye(3)[a] - p
        got = fisher_from_samples(CategoricalPolicy(3), logits, torch.tensor([a]))
        assert torch.allclose(got, torch.outer(score, score), atol=1e-14)
    mu, sigma, x = 0.3, 0.7, 1.1
    score = torch.tensor([(x - mu) / sigma**2, ((x - mu) ** 2 - sigma**2) / sigma**3])
    got = fisher_from_samples(GaussianPolicy("sigma"), torch.tensor([mu, sigma]), torch.tensor([x]))
    assert torch.allclose(got, torch.outer(score, score), rtol=1e-12)


def test_actions_in_exact_proportion_give_the_exact_fisher():
    """With p = (1/2, 1/4, 1/4), the multiset {0, 0, 1, 2} is an exact sample: F̂ = diag(p) − ppᵀ."""
    logits = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    got = fisher_from_samples(CategoricalPolicy(3), logits, torch.tensor([0, 0, 1, 2]))
    assert torch.allclose(got, fisher_categorical(logits), atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_fisher_converges_and_stays_psd(seed):
    gen = torch.Generator().manual_seed(seed)
    policy = GaussianPolicy("log_sigma")
    theta = policy.params(0.5, 0.8)
    actions = 0.5 + 0.8 * torch.randn(200_000, generator=gen)
    est = fisher_from_samples(policy, theta, actions)
    assert torch.allclose(est, fisher_gaussian(0.5, 0.8, "log_sigma"), atol=0.05)
    few = fisher_from_samples(policy, theta, actions[:1])
    eig = torch.linalg.eigvalsh(few)
    assert eig.min() > -1e-12 and int((eig > 1e-10).sum()) == 1  # rank one from one sample


def test_saved_graph_bytes_counts_each_storage_once():
    x = torch.randn(1000, requires_grad=True)
    _, n_bytes = saved_graph_bytes(lambda: (x * x).sum())  # mul saves x twice: one storage
    assert n_bytes == 1000 * 8
    _, n_bytes = saved_graph_bytes(lambda: torch.exp(x).sum())  # exp saves its 1000-entry result
    assert n_bytes == 1000 * 8
    _, n_bytes = saved_graph_bytes(lambda: x.detach().sum())
    assert n_bytes == 0


def test_measure_fisher_cost_on_a_small_network():
    policy = MLPCategoricalPolicy(4, 2, hidden=(5,))
    theta = policy.initial_params(seed=0, last_layer_scale=1.0)
    obs = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    cost = measure_fisher_cost(policy, theta, obs, torch.Generator().manual_seed(1), repeats=1)
    assert cost.n_params == policy.n_params and cost.n_states == 16
    assert cost.max_gap < 1e-12
    assert cost.bytes_dense == 8 * policy.n_params**2
    assert 0 < cost.bytes_fvp
    for seconds in (cost.seconds_hessian, cost.seconds_score_outer, cost.seconds_sampled_scores,
                    cost.seconds_fvp_setup, cost.seconds_fvp, cost.seconds_batch_gradient):
        assert math.isfinite(seconds) and seconds > 0


def test_measure_fisher_cost_rejects_bad_input():
    policy = MLPCategoricalPolicy(4, 2, hidden=(3,))
    theta = policy.initial_params(seed=0)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="repeats"):
        measure_fisher_cost(policy, theta, torch.zeros(4, 4), gen, repeats=0)
    with pytest.raises(ValueError, match="obs"):
        measure_fisher_cost(policy, theta, None, gen)
    with pytest.raises(ValueError, match="obs"):
        measure_fisher_cost(CategoricalPolicy(3), torch.zeros(3), None, gen)
    with pytest.raises(ValueError, match="theta"):
        measure_fisher_cost(policy, theta[:-1], torch.zeros(4, 4), gen)


def test_fisher_from_samples_rejects_mismatched_actions():
    policy = MLPCategoricalPolicy(4, 2, hidden=(3,))
    with pytest.raises(ValueError, match="actions"):
        fisher_from_samples(policy, policy.initial_params(seed=0), torch.tensor([0, 1, 0]), torch.zeros(2, 4))


def test_sample_hessian_form_by_hand_and_in_expectation():
    """−∇² log N(a; μ, σ) in (μ, σ) is [[1, 2z], [2z, 3z² − 1]] / σ² with z = (a − μ)/σ."""
    mu, sigma = 0.3, 0.7
    policy = GaussianPolicy("sigma")
    for a in (0.3, 0.5, 2.0):
        z = (a - mu) / sigma
        ref = torch.tensor([[1.0, 2 * z], [2 * z, 3 * z * z - 1.0]]) / sigma**2
        got = fisher_from_sample_hessians(policy, torch.tensor([mu, sigma]), torch.tensor([a]))
        assert torch.allclose(got, ref, rtol=1e-10, atol=1e-12)
    # one action at the mean: a negative eigenvalue (the outer-product form never has one)
    assert torch.linalg.eigvalsh(fisher_from_sample_hessians(policy, torch.tensor([mu, sigma]), torch.tensor([mu])))[0] < 0
    # the categorical's −∇² log π does not depend on the action: it is F exactly
    logits = torch.tensor([0.1, -0.4, 1.2])
    got = fisher_from_sample_hessians(CategoricalPolicy(3), logits, torch.tensor([2]))
    assert torch.allclose(got, fisher_categorical(logits), atol=1e-14)


def test_sample_hessian_form_on_a_network_matches_differences_of_scores():
    """−∂/∂θ of the mean score (npgbook.score_vectors), by central differences."""
    policy = MLPCategoricalPolicy(3, 2, hidden=(4,))
    theta = policy.initial_params(seed=1, last_layer_scale=1.0)
    obs = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    actions = torch.tensor([0, 1, 1, 0, 1])
    h = 1e-5
    mean_score = lambda th: score_vectors(policy, th, actions, obs).mean(0)
    ref = torch.stack([-(mean_score(theta + h * e) - mean_score(theta - h * e)) / (2 * h) for e in torch.eye(policy.n_params)])
    got = fisher_from_sample_hessians(policy, theta, actions, obs)
    assert torch.allclose(got, got.T, atol=1e-12)
    assert torch.allclose(got, ref, atol=1e-7)
    with pytest.raises(ValueError, match="actions"):
        fisher_from_sample_hessians(policy, theta, actions[:3], obs)
