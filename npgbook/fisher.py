r"""The Fisher information matrix, three independent ways, and Fisher-vector products.

For a policy :math:`\pi_\theta` and states :math:`s_1..s_N` the (state-averaged) Fisher
information matrix is

.. math::

    F(\theta) = \frac1N \sum_{i} \mathbb{E}_{a \sim \pi_\theta(\cdot\mid s_i)}
        \left[\nabla_\theta \log \pi_\theta(a\mid s_i)\,
              \nabla_\theta \log \pi_\theta(a\mid s_i)^\top\right]
    = \nabla^2_{\Delta\theta}\, \bar D_{\mathrm{KL}}(\pi_\theta \,\|\, \pi_{\theta+\Delta\theta})
      \big|_{\Delta\theta = 0}.

The module computes it

* in closed form (:func:`fisher_gaussian`, :func:`fisher_categorical`);
* as the Hessian of the KL at :math:`\Delta\theta = 0` (:func:`fisher_kl_hessian`);
* as the expected outer product of scores (:func:`fisher_score_outer`), summed exactly
  over a finite action set or estimated from samples of a continuous one;

and applies it to a vector without forming it (:func:`fisher_vector_product`), which is
what conjugate gradient needs on a network with many parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import grad, hessian, jacrev, vmap

from ._checks import (
    DTYPE,
    as_tensor,
    require_finite,
    require_int,
    require_positive,
    require_vector,
    to_tensor,
)
from .divergences import _policy_kl
from .policies import GaussianPolicy, MLPGaussianPolicy, Parameterization, Policy, sample_actions

FisherOperator = Callable[[Tensor], Tensor]


def fisher_gaussian(mu: float, sigma: float, parameterization: Parameterization = "sigma") -> Tensor:
    r"""Closed-form Fisher matrix of :math:`\mathcal{N}(\mu, \sigma^2)`.

    :math:`\operatorname{diag}(1/\sigma^2,\ 2/\sigma^2)` in :math:`(\mu, \sigma)` and
    :math:`\operatorname{diag}(1/\sigma^2,\ 2)` in :math:`(\mu, \log\sigma)`; the second
    follows from the first by the chain rule :math:`d\sigma/d\log\sigma = \sigma`.
    ``mu`` does not enter; it is taken so that the signature names the point.
    """
    GaussianPolicy(parameterization).params(mu, sigma)  # validates mu, sigma > 0
    s2 = float(sigma) ** 2
    second = 2.0 / s2 if parameterization == "sigma" else 2.0
    return torch.diag(torch.tensor([1.0 / s2, second], dtype=DTYPE))


def fisher_categorical(logits: Tensor) -> Tensor:
    r"""Closed-form Fisher matrix of a softmax over logits: :math:`\operatorname{diag}(p) - p p^\top`.

    It is singular (the all-ones vector is in its null space) because adding a constant
    to every logit leaves the distribution unchanged.
    """
    logits = require_finite("logits", require_vector("logits", as_tensor("logits", logits)))
    p = torch.softmax(logits.to(DTYPE), dim=0)
    return torch.diag(p) - torch.outer(p, p)


def fisher_kl_hessian(policy: Policy, theta: Tensor, obs: Tensor | None = None) -> Tensor:
    r""":math:`\nabla^2_{\Delta\theta} \bar D_{\mathrm{KL}}(\pi_\theta\|\pi_{\theta+\Delta\theta})` at :math:`\Delta\theta=0`.

    Computed by :func:`torch.func.hessian` (forward-over-reverse autodiff) of the
    closed-form KL. Cost: :math:`n` Jacobian-vector products, and :math:`n^2` memory.
    """
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)

    def kl_of_step(delta: Tensor) -> Tensor:
        return _policy_kl(policy, theta, theta + delta, obs)

    return hessian(kl_of_step)(torch.zeros_like(theta))


def score_vectors(policy: Policy, theta: Tensor, actions: Tensor, obs: Tensor | None = None) -> Tensor:
    r"""Per-sample scores :math:`\nabla_\theta \log\pi_\theta(a_i\mid s_i)`, shape ``(batch, n_params)``.

    Uses :func:`torch.func.vmap` over :func:`torch.func.grad`: one backward pass per
    sample, vectorized. ``actions`` has shape ``(batch,)``; ``obs`` (if the policy
    needs it) ``(batch, obs_dim)``.
    """
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    actions = to_tensor("actions", actions)
    event_ndim = 1 if isinstance(policy, MLPGaussianPolicy) else 0  # an action vector per sample
    if actions.ndim != 1 + event_ndim or (obs is not None and actions.shape[0] != obs.shape[0]):
        shape = "(batch,)" if event_ndim == 0 else "(batch, act_dim)"
        raise ValueError(f"actions must have shape {shape} matching obs, got {tuple(actions.shape)}")

    def log_prob(th: Tensor, s: Tensor | None, a: Tensor) -> Tensor:
        s_batch = None if s is None else s.unsqueeze(0)
        return policy._distribution(th, s_batch).log_prob(a).sum()

    return vmap(grad(log_prob), in_dims=(None, None if obs is None else 0, 0))(theta, obs, actions)


def fisher_score_outer(
    policy: Policy,
    theta: Tensor,
    obs: Tensor | None = None,
    *,
    n_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fisher matrix as the expected outer product of scores :math:`\mathbb{E}[s s^\top]`.

    For a discrete policy the expectation over actions is an exact sum
    :math:`\sum_a \pi_\theta(a\mid s)\, \nabla\log\pi_\theta(a\mid s) \nabla\log\pi_\theta(a\mid s)^\top`
    (``n_samples`` must be ``None``). For a continuous policy it is a Monte Carlo average
    over ``n_samples`` actions drawn per state from ``generator``.
    """
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    if policy.discrete:
        if n_samples is not None:
            raise ValueError("n_samples must be None for a discrete policy (the sum is exact)")

        def all_log_probs(th: Tensor, s: Tensor | None) -> Tensor:
            s_batch = None if s is None else s.unsqueeze(0)
            return policy._distribution(th, s_batch).logits.reshape(-1)  # log π(a|s), all a

        if obs is None:
            scores = jacrev(all_log_probs)(theta, None).unsqueeze(0)  # (1, K, n)
        else:
            scores = vmap(jacrev(all_log_probs), in_dims=(None, 0))(theta, obs)  # (B, K, n)
        probs = torch.exp(
            policy._distribution(theta, obs).logits.reshape(scores.shape[0], -1)
        )
        return torch.einsum("bk,bki,bkj->ij", probs, scores, scores) / scores.shape[0]
    if n_samples is None or generator is None:
        raise ValueError("n_samples and generator are required for a continuous policy")
    n = require_int("n_samples", n_samples)
    actions = sample_actions(policy._distribution(theta, obs), n, generator)  # (n, *batch)
    if obs is not None:
        obs = obs.repeat(n, 1)
    batch_ndim = 0 if obs is None else 1
    flat = actions.reshape(-1, *actions.shape[1 + batch_ndim :])  # (n * batch, *event_shape)
    scores = score_vectors(policy, theta, flat, obs)
    return scores.T @ scores / scores.shape[0]


def fisher_mlp_gaussian(policy: MLPGaussianPolicy, theta: Tensor, obs: Tensor) -> Tensor:
    r"""The exact Fisher matrix of a :class:`~npgbook.policies.MLPGaussianPolicy`, in closed form.

    For :math:`\pi = \mathcal N(\mu_w(s), \operatorname{diag}(e^{2\ell}))` the Fisher matrix of one
    state in the output coordinates :math:`(\mu, \ell)` is :math:`\operatorname{diag}(e^{-2\ell})`
    for the mean and :math:`2I` for the log standard deviations, with no cross terms; by the chain
    rule, over the states :math:`s_1..s_M`,

    .. math::

        F = \begin{pmatrix} \frac1M\sum_i J_i^\top \operatorname{diag}(e^{-2\ell}) J_i & 0 \\
        0 & 2 I_m \end{pmatrix}, \qquad J_i = \partial\mu_w(s_i)/\partial w .

    The Jacobians come from :func:`torch.func.jacrev` of the mean network alone (no KL, no
    sampling), so this is a reference the KL Hessian and the score outer product can be checked
    against.
    """
    if not isinstance(policy, MLPGaussianPolicy):
        raise TypeError(f"policy must be an MLPGaussianPolicy, got {type(policy).__name__}")
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    assert obs is not None
    k = policy.n_net_params

    def mean(w: Tensor) -> Tensor:
        return policy._mean_log_std(torch.cat([w, theta[k:]]), obs)[0]

    jac = jacrev(mean)(theta[:k])  # (M, m, k)
    precision = torch.exp(-2.0 * theta[k:])
    fisher = torch.zeros(policy.n_params, policy.n_params, dtype=theta.dtype)
    fisher[:k, :k] = torch.einsum("bmi,m,bmj->ij", jac, precision, jac) / obs.shape[0]
    fisher[k:, k:] = 2.0 * torch.eye(policy.act_dim, dtype=theta.dtype)
    return fisher


def fisher_vector_product(
    policy: Policy, theta: Tensor, obs: Tensor | None = None, *, damping: float = 0.0
) -> FisherOperator:
    r"""Return :math:`v \mapsto (F(\theta) + \text{damping}\cdot I)\, v` without forming :math:`F`.

    Double backpropagation: with :math:`g(\theta') = \nabla_{\theta'} \bar D_{\mathrm{KL}}
    (\pi_\theta\|\pi_{\theta'})`, the product is :math:`F v = \nabla_{\theta'}(g^\top v)`
    at :math:`\theta'=\theta`. The first backward pass is done once here; each call costs
    one more backward pass, so memory stays :math:`O(n)`.

    Args:
        policy, theta, obs: the policy, the point :math:`\theta` and the states.
        damping: :math:`\lambda \ge 0` added along the diagonal, which keeps conjugate
            gradient stable when the sampled Fisher is (nearly) singular.
    """
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    damping = require_positive("damping", damping, allow_zero=True)
    theta_new = theta.clone().requires_grad_(True)
    kl = _policy_kl(policy, theta, theta_new, obs)
    (kl_grad,) = torch.autograd.grad(kl, theta_new, create_graph=True)

    def fvp(v: Tensor) -> Tensor:
        v = as_tensor("v", v).to(theta.dtype)
        require_finite("v", require_vector("v", v, theta.shape[0]))
        (product,) = torch.autograd.grad(kl_grad @ v, theta_new, retain_graph=True)
        return product.detach() + damping * v

    return fvp


def fisher_from_samples(policy: Policy, theta: Tensor, actions: Tensor, obs: Tensor | None = None) -> Tensor:
    r"""The sample Fisher matrix :math:`\hat F = \frac1N\sum_{i=1}^N s_i s_i^\top`, :math:`s_i = \nabla_\theta\log\pi_\theta(a_i\mid s_i)`.

    Unbiased for the Fisher matrix when each action is drawn from the policy itself,
    :math:`a_i \sim \pi_\theta(\cdot\mid s_i)`; its error then shrinks like :math:`1/\sqrt N`. It is
    positive semi-definite for every sample (a sum of outer products) and has rank at most
    :math:`N`. The scores come from :func:`npgbook.score_vectors` (``vmap`` over ``grad``).

    Args:
        policy: the policy :math:`\pi_\theta`.
        theta: the parameters at which :math:`F` is estimated.
        actions: the sampled actions, shape ``(N,)``.
        obs: the states the actions were taken in, shape ``(N, obs_dim)``; ``None`` for a
            stateless policy.
    """
    scores = score_vectors(policy, theta, actions, obs)
    return scores.T @ scores / scores.shape[0]


def fisher_from_sample_hessians(policy: Policy, theta: Tensor, actions: Tensor, obs: Tensor | None = None) -> Tensor:
    r"""The other sample estimate, :math:`\hat H = -\frac1N\sum_{i=1}^N \nabla^2_\theta\log\pi_\theta(a_i\mid s_i)`.

    Its expectation is also :math:`F` (the Hessian form of the Fisher matrix, chapter 3), but unlike
    :func:`fisher_from_samples` it is *not* positive semi-definite sample by sample: for a
    Gaussian in :math:`(\mu,\sigma)` one action with :math:`|a-\mu| < \sigma/\sqrt3` already gives a
    negative diagonal entry. Computed as the autograd Hessian
    (:func:`torch.autograd.functional.hessian`) of the mean negative log-likelihood of the batch.

    Args:
        policy, theta, actions, obs: as for :func:`fisher_from_samples`.
    """
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    actions = to_tensor("actions", actions)
    event_ndim = 1 if isinstance(policy, MLPGaussianPolicy) else 0  # an action vector per sample
    if actions.ndim != 1 + event_ndim or (obs is not None and actions.shape[0] != obs.shape[0]):
        shape = "(batch,)" if event_ndim == 0 else "(batch, act_dim)"
        raise ValueError(f"actions must have shape {shape} matching obs, got {tuple(actions.shape)}")
    return torch.autograd.functional.hessian(
        lambda th: -policy._distribution(th, obs).log_prob(actions).mean(), theta, vectorize=True
    )
