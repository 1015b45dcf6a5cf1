"""Counterfactual tests of chapter 3's claims: each verdict with the book's inputs, and a
broken implementation or altered input under which it changes."""

from __future__ import annotations

import math

import torch

from npgbook import claims, policy_kl
from npgbook.divergences import MonteCarloEstimate
from npgbook.experiments import kl_fisher
from npgbook.policies import sample_actions

NOTE_PAIRS = (((0.0, 0.3), (1.0, 0.3)), ((0.0, 3.0), (1.0, 3.0)))


def test_counterfactual_kl_not_symmetric():
    assert claims.run("kl_not_symmetric").outcome == "holds"
    # the note's own pairs share a width: the KL is then symmetric in the means
    assert claims.run("kl_not_symmetric", pairs=NOTE_PAIRS).outcome == "does not hold as stated"
    # a symmetrized "KL" finds no asymmetry on the book's pair either
    from npgbook import kl_divergence

    def symmetrized(p, q):
        return 0.5 * (kl_divergence(p, q) + kl_divergence(q, p))

    assert claims.run("kl_not_symmetric", kl=symmetrized).outcome == "does not hold as stated"


def _kl_plus_entropy_change(policy, theta, theta_new, obs=None):
    """A broken divergence: the KL plus the entropy lost, asymmetric already at first order."""
    old, new = policy.distribution(theta, obs), policy.distribution(theta_new, obs)
    return policy_kl(policy, theta, theta_new, obs) + (old.entropy() - new.entropy()).mean()


def test_counterfactual_kl_symmetric_for_small_steps():
    assert claims.run("kl_symmetric_for_small_steps").outcome == "holds"
    broken = claims.run("kl_symmetric_for_small_steps", divergence=_kl_plus_entropy_change)
    assert broken.outcome == "does not hold as stated"
    # large steps: the KL is not symmetric there (relative asymmetry well above 1%)
    large = claims.run("kl_symmetric_for_small_steps", lengths=(0.3, 0.4, 0.5))
    assert large.outcome == "does not hold as stated"


def test_counterfactual_kl_hessian_is_fisher():
    assert claims.run("kl_hessian_is_fisher").outcome == "holds"

    def twice(policy, theta, obs=None):
        return 2 * kl_fisher.independent_fisher(policy, theta, obs)

    assert claims.run("kl_hessian_is_fisher", fisher=twice).outcome == "does not hold as stated"

    def hessian_of_wrong_kl(policy, theta, obs=None):  # the Hessian of KL + entropy change
        theta = theta.detach()
        return torch.autograd.functional.hessian(
            lambda d: _kl_plus_entropy_change(policy, theta, theta + d, obs), torch.zeros_like(theta)
        )

    wrong = claims.run("kl_hessian_is_fisher", hessian=hessian_of_wrong_kl)
    assert wrong.outcome == "does not hold as stated"


def test_counterfactual_kl_quadratic_model():
    assert claims.run("kl_quadratic_model").outcome == "holds"

    def identity(policy, theta, obs=None):
        return torch.eye(policy.n_params)

    def twice(policy, theta, obs=None):
        return 2 * kl_fisher.independent_fisher(policy, theta, obs)

    # a wrong F leaves an O(t²) error: slope 2, not 3
    assert claims.run("kl_quadratic_model", fisher=identity).outcome == "does not hold as stated"
    assert claims.run("kl_quadratic_model", fisher=twice).outcome == "does not hold as stated"


def _sigma_entry_wrong(mu, sigma, parameterization="sigma"):
    """A classic slip: diag(1/σ², 1/σ²) instead of diag(1/σ², 2/σ²)."""
    return torch.diag(torch.tensor([1.0 / sigma**2, 1.0 / sigma**2]))


def test_counterfactual_identity_fisher_vanilla():
    assert claims.run("identity_fisher_vanilla").outcome == "holds"
    # (μ, log σ) instead of (μ, √2 log σ): F' = diag(1, 2) ≠ I at σ = 1
    assert claims.run("identity_fisher_vanilla", log_scale=1.0).outcome == "does not hold as stated"
    # a wrong Fisher matrix: the mapped natural direction misses the vanilla gradient, and
    # whitening with it does not give F' = I
    wrong = claims.run("identity_fisher_vanilla", fisher=_sigma_entry_wrong)
    assert wrong.outcome == "does not hold as stated"
    # a wrong Jacobian (F^{-1} in place of F^{-1/2})
    inverse = claims.run("identity_fisher_vanilla", jacobian=torch.linalg.inv)
    assert inverse.outcome == "does not hold as stated"


def test_counterfactual_identity_fisher_euclidean():
    assert claims.run("identity_fisher_euclidean").outcome == "holds approximately"
    # the original (μ, σ) coordinates at σ = 0.3, where F = diag(11.1, 22.2) ≠ I
    plain = claims.run("identity_fisher_euclidean", jacobian=lambda f: torch.eye(2))
    assert plain.outcome == "does not hold as stated"
    assert claims.run("identity_fisher_euclidean", fisher=_sigma_entry_wrong).outcome == (
        "does not hold as stated"
    )
    # steps along μ alone: there the KL is exactly ½‖Δθ'‖²
    along_mean = claims.run("identity_fisher_euclidean", directions=torch.tensor([[1.0, 0.0]]))
    assert along_mean.outcome == "holds"


def _actions_from_new_policy(policy, theta, theta_new, obs, n_samples, generator):
    """A biased estimator: the same log-ratio, but with actions drawn from the new policy."""
    index = torch.randint(obs.shape[0], (n_samples,), generator=generator)
    states = obs[index]
    new = policy.distribution(theta_new, states)
    actions = sample_actions(new, 1, generator)[0]
    log_ratio = policy.distribution(theta, states).log_prob(actions) - new.log_prob(actions)
    return MonteCarloEstimate(
        float(log_ratio.mean()), float(log_ratio.std()) / math.sqrt(n_samples), n_samples
    )


def _squared_log_ratio(policy, theta, theta_new, obs, n_samples, generator):
    """Another biased estimator: ½(log ratio)², unbiased only to second order."""
    index = torch.randint(obs.shape[0], (n_samples,), generator=generator)
    states = obs[index]
    old = policy.distribution(theta, states)
    actions = sample_actions(old, 1, generator)[0]
    half_sq = 0.5 * (old.log_prob(actions) - policy.distribution(theta_new, states).log_prob(actions)) ** 2
    return MonteCarloEstimate(float(half_sq.mean()), float(half_sq.std()) / math.sqrt(n_samples), n_samples)


def test_counterfactual_kl_from_samples():
    assert claims.run("kl_from_samples").outcome == "does not hold as stated"
    # sampling the actions from the wrong policy: no unbiased 1/√N estimate, the claim "holds"
    assert claims.run("kl_from_samples", estimator=_actions_from_new_policy).outcome == "holds"
    # ½(log ratio)²: close to the KL for small steps but biased, which 100 seeds detect
    assert claims.run("kl_from_samples", estimator=_squared_log_ratio).outcome == "holds"
