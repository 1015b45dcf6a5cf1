"""Counterfactual tests of chapter 4's claims: the verdict with the book's inputs, and a flip.

Each ``test_counterfactual_KEY`` runs the claim's check with the book's inputs, then with a
broken implementation or an altered input, and asserts that the outcome changes.
"""

from __future__ import annotations

import dataclasses

import torch

import npgbook as nb
from npgbook import claims
from npgbook.experiments import lagrangian
from npgbook.problems.bandit import GaussianBandit

BANDIT = GaussianBandit(target=2.0, width=0.5)


def test_counterfactual_penalty_equals_constraint():
    assert claims.run("penalty_equals_constraint").outcome == "holds"
    # the Euclidean step g/λ does not solve the KL-constrained problem (F is diag(4, 2) here)
    vanilla = claims.run("penalty_equals_constraint", maximizer=lambda g, f, lam: g / lam)
    assert vanilla.outcome == "does not hold as stated"
    # a multiplier 0.1% too large: the right step up to 0.1%, so only approximately
    off = claims.run(
        "penalty_equals_constraint",
        multiplier=lambda g, f, eps: 1.001 * nb.experiments.taylor.lambda_for_epsilon(g, f, eps),
    )
    assert off.outcome == "holds approximately"


def _uniform_outer(policy, theta, obs=None):
    """Score outer products averaged with equal weight on every action, instead of with π."""
    k = policy.n_actions
    actions = torch.arange(k) if obs is None else torch.arange(k).repeat(obs.shape[0])
    states = None if obs is None else obs.repeat_interleave(k, dim=0)
    scores = nb.score_vectors(policy, theta, actions, states)
    return scores.T @ scores / scores.shape[0]


def test_counterfactual_fisher_score_outer():
    assert claims.run("fisher_score_outer").outcome == "holds"
    # the outer products must be weighted by the policy's own probabilities
    assert claims.run("fisher_score_outer", outer=_uniform_outer).outcome == "does not hold as stated"
    # "the outer product of policy gradients" read as g gᵀ of the mean score: that is zero
    mean_score = lambda p, th, o=None: torch.zeros(p.n_params, p.n_params)
    assert claims.run("fisher_score_outer", outer=mean_score).outcome == "does not hold as stated"
    # a matrix 1% off (as a large-sample estimate would be): only approximately
    scaled = lambda p, th, o=None: 1.01 * nb.fisher_score_outer(p, th, o)
    assert claims.run("fisher_score_outer", outer=scaled).outcome == "holds approximately"


def _biased(shift):
    """A sampler drawing actions from the policy at θ + shift·(1, −1, 1, …), not from π_θ itself."""

    def sampler(policy, theta, states, n, generator):
        delta = shift * torch.tensor([(-1.0) ** i for i in range(theta.shape[0])])
        return lagrangian.sample_state_actions(policy, theta + delta, states, n, generator)

    return sampler


def test_counterfactual_fisher_from_samples():
    assert claims.run("fisher_from_samples").outcome == "holds"
    # actions not drawn from π: the error stops falling at the bias
    assert claims.run("fisher_from_samples", sampler=_biased(0.3)).outcome == "does not hold as stated"
    # a small bias: still falling, but measurably slower than N^-1/2
    assert claims.run("fisher_from_samples", sampler=_biased(0.05)).outcome == "holds approximately"


class _ConcaveBandit:
    """J(θ) = −|θ|²: its Hessian is negative definite everywhere, never a saddle."""

    def expected_reward(self, policy, theta):
        return self._expected_reward(policy, theta)

    def _expected_reward(self, policy, theta):
        return -(theta**2).sum(0)


def test_counterfactual_fisher_psd_hessian_indefinite():
    assert claims.run("fisher_psd_hessian_indefinite").outcome == "holds"
    # the curvature of −J in place of F (Newton's metric): indefinite over much of the grid
    newton = lambda pol, ths: -lagrangian.objective_hessians(BANDIT, pol, ths)
    assert claims.run("fisher_psd_hessian_indefinite", fisher=newton).outcome == "does not hold as stated"
    # the Hessian-form sample estimate of F, for the Gaussian in (μ, σ): indefinite sample by sample
    gauss = nb.GaussianPolicy("sigma")
    hessian_form = claims.run(
        "fisher_psd_hessian_indefinite",
        families=[("Gaussian (μ, σ)", gauss, gauss.params(1.0, 0.5), None)],
        estimator=nb.fisher_from_sample_hessians,
    )
    assert hessian_form.outcome == "does not hold as stated"
    # an objective whose Hessian is never indefinite: the contrast with J fails
    assert (
        claims.run("fisher_psd_hessian_indefinite", bandit=_ConcaveBandit()).outcome
        == "does not hold as stated"
    )


class _LinearBandit:
    """J(θ) = θ₀: its linear Taylor model is exact for every step."""

    def expected_reward(self, policy, theta):
        return self._expected_reward(policy, theta)

    def _expected_reward(self, policy, theta):
        return theta[0] + 0.0 * theta[1]


def _quadratic_kl(policy, theta, u, lengths):
    """A divergence that equals its quadratic model exactly."""
    f = nb.fisher_kl_hessian(policy, theta)
    return 0.5 * float(u @ f @ u) * lengths**2


def test_counterfactual_local_validity():
    assert claims.run("local_validity").outcome == "holds"
    # models that are exact at every size: the derivation would not be merely local
    exact = claims.run("local_validity", bandit=_LinearBandit(), divergence=_quadratic_kl)
    assert exact.outcome == "does not hold as stated"
    # the wrong curvature (2F): the KL model is off by a factor of two even for tiny steps
    doubled = claims.run("local_validity", fisher=lambda p, th: 2 * nb.fisher_kl_hessian(p, th))
    assert doubled.outcome == "does not hold as stated"


def test_counterfactual_outer_product_cheaper():
    assert claims.run("outer_product_cheaper").outcome == "holds approximately"

    def scores_free(*args, **kwargs):  # as if F̂ came at no cost beyond the policy gradient
        counts = lagrangian.count_fisher_flops(*args, **kwargs)
        return dataclasses.replace(counts, sampled=counts.batch_gradient)

    def equal_cost(*args, **kwargs):  # as if the outer product cost as much as the Hessian
        counts = lagrangian.count_fisher_flops(*args, **kwargs)
        return dataclasses.replace(counts, score_outer=counts.hessian)

    def slightly_cheaper(*args, **kwargs):  # 1.5× fewer operations: not the factor 2 asked for
        counts = lagrangian.count_fisher_flops(*args, **kwargs)
        return dataclasses.replace(counts, score_outer=int(counts.hessian / 1.5))

    assert claims.run("outer_product_cheaper", fisher_flops=scores_free).outcome == "holds"
    assert claims.run("outer_product_cheaper", fisher_flops=equal_cost).outcome == "does not hold as stated"
    assert claims.run("outer_product_cheaper", fisher_flops=slightly_cheaper).outcome == (
        "does not hold as stated"
    )
