"""Python numbers reach the package as float64 directly, under torch's own default dtype (float32).

``conftest.py`` sets float64 as the default for the other tests, which would hide a number that
is rounded to float32 on its way in (``torch.as_tensor(0.13)`` is 0.12999999523...). Every test
here runs with torch's factory default, float32, restored for its duration.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import npgbook as nb
from npgbook._checks import as_tensor, to_tensor
from npgbook.experiments import taylor, trust_region
from npgbook.problems import mdp
from npgbook.problems.bandit import GaussianBandit

SIGMA = 0.13  # not representable in float32: 0.13 as float32 is 0.12999999523162842
MU = 0.1


@pytest.fixture(autouse=True)
def torch_factory_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    assert torch.tensor(0.5).dtype == torch.float32  # the trap is set
    yield
    torch.set_default_dtype(previous)


def exactly(tensor: torch.Tensor, *values: float) -> bool:
    return tensor.dtype == torch.float64 and tensor.reshape(-1).tolist() == list(values)


def test_the_trap_exists_without_the_fix():
    """What the package must avoid: torch alone rounds a Python float through float32."""
    assert float(torch.as_tensor(SIGMA).to(torch.float64)) != SIGMA
    assert exactly(as_tensor("x", SIGMA), SIGMA)


def test_as_tensor_keeps_what_it_is_given():
    assert exactly(as_tensor("x", [MU, SIGMA]), MU, SIGMA)
    assert exactly(as_tensor("x", np.array([MU, SIGMA])), MU, SIGMA)
    assert as_tensor("x", np.float32(0.5)).dtype == torch.float32  # an explicit numpy float32 stays
    assert as_tensor("x", torch.tensor([0.5], dtype=torch.float32)).dtype == torch.float32
    assert as_tensor("x", 3).dtype == torch.float64 and as_tensor("x", [True]).dtype == torch.float64
    assert to_tensor("a", [0, 2]).dtype == torch.int64  # actions stay integers
    assert exactly(to_tensor("a", [SIGMA]), SIGMA)
    with pytest.raises(ValueError, match="x"):
        as_tensor("x", "abc")
    with pytest.raises(ValueError, match="x"):
        as_tensor("x", [1 + 2j])


@pytest.mark.parametrize("parameterization", ["sigma", "log_sigma"])
def test_gaussian_params_and_fisher_are_float64(parameterization):
    policy = nb.GaussianPolicy(parameterization)
    theta = policy.params(MU, SIGMA)
    second = SIGMA if parameterization == "sigma" else math.log(SIGMA)
    assert exactly(theta, MU, second)
    fisher = nb.fisher_kl_hessian(policy, theta)
    assert fisher.dtype == torch.float64
    assert math.isclose(float(fisher[0, 0]), 1 / SIGMA**2, rel_tol=1e-13)  # was off by 7e-8
    closed = nb.fisher_gaussian(MU, SIGMA, parameterization)
    assert torch.allclose(fisher, closed, rtol=1e-12, atol=0)


def test_sampled_fisher_and_scores_take_python_actions():
    policy = nb.GaussianPolicy("sigma")
    theta = policy.params(MU, SIGMA)
    scores = nb.score_vectors(policy, theta, [0.37])
    assert scores.dtype == torch.float64
    assert math.isclose(float(scores[0, 0]), (0.37 - MU) / SIGMA**2, rel_tol=1e-13)
    est = nb.fisher_from_samples(policy, theta, [0.37, -0.2])
    assert est.dtype == torch.float64
    assert nb.fisher_from_sample_hessians(policy, theta, [0.37]).dtype == torch.float64


def test_natural_step_and_cg_from_python_lists():
    grad, fisher = [1.0, 0.3], [[2.0, 0.1], [0.1, 0.7]]
    direction, _ = nb.natural_gradient(grad, fisher)
    exact = np.linalg.solve(np.array(fisher), np.array(grad))
    assert direction.dtype == torch.float64 and np.allclose(direction.numpy(), exact, rtol=1e-14)
    step = nb.natural_step(grad, fisher, 0.013)
    assert step.step.dtype == torch.float64
    assert math.isclose(
        0.5 * float(step.step @ torch.tensor(fisher, dtype=torch.float64) @ step.step), 0.013, rel_tol=1e-13
    )
    cg = nb.conjugate_gradient(lambda v: torch.tensor(fisher, dtype=torch.float64) @ v, grad)
    assert cg.x.dtype == torch.float64 and np.allclose(cg.x.numpy(), exact, rtol=1e-12)


def test_categorical_and_tabular_policies():
    logits = [0.1, -0.13, 0.7]
    fisher = nb.fisher_categorical(logits)
    p = np.exp(logits) / np.exp(logits).sum()
    assert fisher.dtype == torch.float64 and np.allclose(
        fisher.numpy(), np.diag(p) - np.outer(p, p), rtol=1e-14
    )
    cat = nb.CategoricalPolicy(3)
    assert torch.allclose(nb.fisher_score_outer(cat, logits), fisher, rtol=1e-13, atol=0)
    tabular = mdp.TabularSoftmaxPolicy(2, 2)
    theta = tabular.params([[0.0, -0.13], [-0.13, 0.0]])
    assert exactly(theta, 0.0, -0.13, -0.13, 0.0)


def test_worked_problems_and_experiments():
    bandit = GaussianBandit(target=2.0, width=0.5)
    policy = nb.GaussianPolicy("sigma")
    j = bandit.expected_reward(policy, [MU, SIGMA])
    spread = 0.5**2 + SIGMA**2  # J = w/√(w²+σ²)·exp(−(μ−c)²/2(w²+σ²))
    closed = 0.5 / math.sqrt(spread) * math.exp(-((MU - 2.0) ** 2) / (2 * spread))
    assert j.dtype == torch.float64 and math.isclose(float(j), closed, rel_tol=1e-13)
    assert exactly(trust_region.euclidean_step([3.0, 4.0], 0.13), 0.13 * 0.6, 0.13 * 0.8)
    assert float(taylor.kl_model([[2.0, 0.0], [0.0, 1.0]], [0.13, 0.0])) == 0.13**2
    ball = nb.metric.kl_ball([[2.0, 0.0], [0.0, 1.0]], 0.013, n_points=8)
    assert ball.dtype == torch.float64
