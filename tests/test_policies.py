import math

import pytest
import torch
from torch import nn

from npgbook import CategoricalPolicy, GaussianPolicy, MLPCategoricalPolicy, sample_actions


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
def test_gaussian_params_round_trip(param):
    policy = GaussianPolicy(param)
    mu, sigma = policy.mean_std(policy.params(0.4, 1.7))
    assert math.isclose(float(mu), 0.4) and math.isclose(float(sigma), 1.7)
    dist = policy.distribution(policy.params(0.4, 1.7))
    assert math.isclose(float(dist.stddev), 1.7)


def test_mlp_functional_call_matches_module_forward():
    policy = MLPCategoricalPolicy(4, 2, hidden=(8, 5))
    theta = policy.initial_params(seed=3, last_layer_scale=1.0)
    # Reference: load the flat vector into an ordinary nn.Module by hand, layer by layer.
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 2))
    net = net.double()
    offset = 0
    for p in net.parameters():
        p.data.copy_(theta[offset : offset + p.numel()].reshape(p.shape))
        offset += p.numel()
    assert offset == policy.n_params == 4 * 8 + 8 + 8 * 5 + 5 + 5 * 2 + 2
    obs = torch.randn(7, 4)
    expected = torch.log_softmax(net(obs), dim=-1)
    assert torch.allclose(policy.distribution(theta, obs).logits, expected, atol=1e-12)


def test_mlp_initialization_is_orthogonal_and_seeded():
    policy = MLPCategoricalPolicy(4, 2, hidden=(16,))
    theta = policy.initial_params(seed=0)
    w0 = policy.unflatten(theta)["0.weight"]  # 16 x 4: orthonormal columns times sqrt(2)
    assert torch.allclose(w0.T @ w0, 2.0 * torch.eye(4), atol=1e-12)
    assert torch.equal(theta, policy.initial_params(seed=0))
    assert not torch.equal(theta, policy.initial_params(seed=1))


def test_sample_actions_uses_generator():
    dist = CategoricalPolicy(3).distribution(torch.tensor([0.0, 1.0, 2.0]))
    a = sample_actions(dist, 1000, torch.Generator().manual_seed(1))
    b = sample_actions(dist, 1000, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (1000,)
    freq = torch.bincount(a, minlength=3) / 1000.0
    assert torch.allclose(freq, dist.probs, atol=0.05)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: GaussianPolicy("sigma").params(0.0, -1.0), "sigma"),
        (lambda: GaussianPolicy("sigma").params(0.0, 0.0), "sigma"),
        (lambda: GaussianPolicy("sigma").distribution(torch.tensor([0.0, -0.5])), "theta"),
        (lambda: GaussianPolicy("log_sigma").distribution(torch.tensor([0.0, float("nan")])), "theta"),
        (lambda: GaussianPolicy("sigma").distribution(torch.zeros(3)), "theta"),
        (lambda: GaussianPolicy("tau"), "parameterization"),
        (lambda: GaussianPolicy().distribution(torch.tensor([0.0, 1.0]), torch.zeros(1, 1)), "obs"),
        (lambda: CategoricalPolicy(1), "n_actions"),
        (lambda: CategoricalPolicy(3).distribution(torch.zeros(2, 3)), "theta"),
        (lambda: MLPCategoricalPolicy(4, 2, (8,)).distribution(torch.zeros(58)), "obs"),
        (lambda: MLPCategoricalPolicy(4, 2, (8,)).distribution(torch.zeros(58), torch.zeros(3, 5)), "obs"),
        (
            lambda: MLPCategoricalPolicy(4, 2, (8,)).distribution(
                torch.zeros(58), torch.full((3, 4), float("inf"))
            ),
            "obs",
        ),
        (lambda: MLPCategoricalPolicy(4, 2, (0,)), "hidden"),
    ],
)
def test_bad_inputs_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
