"""The hand-written tanh MLP passes, the Gauss-Newton Fisher operator and the value fit, against autograd and torch.optim."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import npgbook as nb
from npgbook.problems import envs
from npgbook.rl import ValueFunction
from npgbook.rl.mlp import TanhMLP, fisher_operator, tanh_


def reference_net(mlp: TanhMLP, theta: torch.Tensor) -> nn.Sequential:
    """The same network as an nn.Sequential with the weights of ``theta``."""
    layers: list[nn.Module] = []
    for k, (w, b) in enumerate(mlp.layers(theta)):
        lin = nn.Linear(w.shape[1], w.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin] if k == len(mlp.shapes) - 1 else [lin, nn.Tanh()]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("sizes", [(4, 2), (4, 7, 3), (3, 5, 6, 2)])
def test_forward_backward_and_jvp_match_autograd(sizes):
    mlp = TanhMLP(sizes)
    gen = torch.Generator().manual_seed(len(sizes))
    theta = torch.randn(mlp.n_params, generator=gen, dtype=torch.float64)
    x = torch.randn(11, sizes[0], generator=gen, dtype=torch.float64)
    u = torch.randn(11, sizes[-1], generator=gen, dtype=torch.float64)
    v = torch.randn(mlp.n_params, generator=gen, dtype=torch.float64)

    def f(t):  # the same network with torch.tanh, differentiated by torch.func
        h = x
        layers = mlp.layers(t)
        for w, b in layers[:-1]:
            h = torch.tanh(h @ w.T + b)
        w, b = layers[-1]
        return h @ w.T + b

    acts = mlp.forward(theta, x)
    assert torch.allclose(acts[-1], reference_net(mlp, theta)(x), atol=1e-12)
    _, vjp = torch.func.vjp(f, theta)
    assert torch.allclose(mlp.backward(theta, acts, u), vjp(u)[0], atol=1e-12)
    _, jv = torch.func.jvp(f, (theta,), (v,))
    assert torch.allclose(mlp.jvp(theta, acts, v), jv, atol=1e-12)


def test_tanh_in_place_matches_torch():
    x = torch.linspace(-20, 20, 10001, dtype=torch.float32)
    assert torch.allclose(tanh_(x.clone()), torch.tanh(x), rtol=2e-7, atol=1e-7)
    y = torch.linspace(-3, 3, 101, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(tanh_(y.detach().clone()), torch.tanh(y.detach()), rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fisher_operator_is_the_kl_hessian(seed, damping):
    """The Gauss-Newton product equals the double-backprop Fisher-vector product (the KL Hessian)."""
    policy = nb.MLPCategoricalPolicy(4, 3, (16, 8))
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = envs.cartpole_observations(200, seed)
    exact = nb.fisher_vector_product(policy, theta, obs, damping=damping)
    fast = fisher_operator(policy, theta, obs, damping=damping)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(3):
        v = torch.randn(policy.n_params, generator=gen, dtype=torch.float64)
        assert torch.allclose(fast(v), exact(v), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="finite vector"):
        fast(torch.full((policy.n_params,), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="damping"):
        fisher_operator(policy, theta, obs, damping=-1.0)
    linear = nb.CategoricalPolicy(3)  # not an MLP: falls back to double backprop
    assert torch.allclose(fisher_operator(linear, torch.zeros(3))(torch.ones(3)), torch.zeros(3), atol=1e-12)


def test_value_fit_is_adam_on_the_squared_error():
    """Same minibatches, same Adam: the hand-written fit follows nn.Sequential + torch.optim.Adam."""
    obs = torch.from_numpy(np.random.default_rng(0).normal(size=(700, 4)))
    targets = obs[:, 0] * 3 + torch.sin(obs[:, 2]) * 10
    value = ValueFunction(4, (16, 8), lr=3e-3, epochs=3, minibatch_size=128, seed=5, dtype=torch.float64)
    ref = reference_net(value.mlp, value.params.clone())
    opt = torch.optim.Adam(ref.parameters(), lr=3e-3, foreach=False)
    gen_a, gen_b = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for _ in range(2):  # two calls: Adam's state carries over
        before = value.fit(obs, targets, gen_a)
        with torch.no_grad():
            assert math.isclose(before, float((ref(obs)[:, 0] - targets).pow(2).mean()), rel_tol=1e-10)
        for _ in range(3):
            order = torch.randperm(700, generator=gen_b)
            for start in range(0, 700, 128):
                idx = order[start : start + 128]
                loss = (ref(obs[idx])[:, 0] - targets[idx]).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    with torch.no_grad():
        assert torch.allclose(value(obs), ref(obs)[:, 0], atol=1e-9)
    assert value(obs.reshape(7, 100, 4)).shape == (7, 100)
    after = float((value(obs) - targets).pow(2).mean())
    assert after < 0.9 * before
