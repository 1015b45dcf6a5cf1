r"""The first-order baselines beside Algorithm 1, in the same training loop.

They share everything with NPG and TRPO (network, batch, GAE advantages, value baseline) and
differ only in the update, so a comparison between them isolates the update rule:

* **KL-normalized vanilla step** (``"kl-vpg"``, :func:`kl_vpg_update`): the vanilla direction
  :math:`\hat g`, with the length that spends the KL budget in the quadratic model,
  :math:`\tfrac12\alpha^2\hat g^\top\hat F\hat g = \delta`, i.e.
  :math:`\theta_{k+1} = \theta_k + \sqrt{2\delta/\hat g^\top\hat F\hat g}\;\hat g`. It has NPG's
  step size rule but not its metric: the ablation that asks whether :math:`F^{-1}` helps or only
  the budget :math:`\delta` does. One Fisher-vector product per update.
* **Adam policy gradient with minibatch epochs** (``"adam-vpg"``, :class:`AdamEpochs` without
  clipping): ``policy_epochs`` passes over the batch in shuffled minibatches of
  ``policy_minibatch``, one Adam step on each, ascending the importance-weighted surrogate
  :math:`L(\theta) = \frac1{|B|}\sum_{t\in B} r_t(\theta)\hat A_t`,
  :math:`r_t = \pi_\theta(a_t\mid s_t)/\pi_{\theta_k}(a_t\mid s_t)`, whose gradient at
  :math:`\theta_k` is :math:`\hat g`. This is how first-order methods are used in practice.
* **PPO** (``"ppo"``, :class:`AdamEpochs` with clipping, Schulman et al. 2017): the same loop on
  the clipped surrogate :math:`\frac1{|B|}\sum_t \min\big(r_t\hat A_t,\
  \operatorname{clip}(r_t, 1-\epsilon, 1+\epsilon)\hat A_t\big)`: once a sample's ratio has moved
  past :math:`1\pm\epsilon` in the direction its advantage favours, it stops pulling.

Adam's moments persist across iterations (one optimizer per run), as in the usual PPO code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..policies import Policy
from .algorithms import PolicyData, TrainConfig, UpdateResult, _skip, policy_gradient, seeds_from
from .mlp import fisher_operator

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


def kl_vpg_update(policy: Policy, theta: Tensor, data: PolicyData, config: TrainConfig) -> UpdateResult:
    r"""The vanilla direction scaled to the KL budget: :math:`\theta_k + \sqrt{2\delta/\hat g^\top\hat F\hat g}\,\hat g`.

    :math:`\hat F` is the damped sampled Fisher matrix of NPG (same ``cg_damping``), so with
    :math:`\hat F = I` this is NPG's step exactly.
    """
    grad = policy_gradient(policy, theta, data)
    if not bool(torch.isfinite(grad).all()):
        return _skip(theta, "the policy gradient is not finite")
    grad_norm = float(grad.norm())
    if grad_norm == 0.0:
        return _skip(theta, "the policy gradient is 0 (all advantages equal)", quad=0.0, grad_norm=0.0)
    curvature = float(grad @ fisher_operator(policy, theta, data.obs, damping=config.cg_damping)(grad))
    if not (math.isfinite(curvature) and curvature > 0.0):
        return _skip(theta, f"g^T F g = {curvature:.3e} is not positive and finite", grad_norm=grad_norm)
    new = theta + math.sqrt(2.0 * config.delta / curvature) * grad
    if not bool(torch.isfinite(new).all()):
        return _skip(theta, "the new parameters are not finite", grad_norm=grad_norm)
    return UpdateResult(theta=new.detach(), accepted=True, quad=curvature, grad_norm=grad_norm, step_fraction=1.0)


def surrogate_objective(
    policy: Policy, theta: Tensor, data: PolicyData, clip_range: float | None, index: Tensor | None = None
) -> Tensor:
    r"""The minibatch surrogate to *maximize*: :math:`\frac1{|B|}\sum_{t\in B} r_t\hat A_t`, or PPO's clipped one.

    Args:
        policy, theta, data: the policy at :math:`\theta`, and the batch collected at :math:`\theta_k`.
        clip_range: :math:`\epsilon` of PPO's clipping, or ``None`` for the plain surrogate.
        index: the minibatch :math:`B` (all samples if ``None``).
    """
    obs, actions, adv, old = data.obs, data.actions, data.advantages, data.old_log_probs
    if index is not None:
        obs, actions, adv, old = obs[index], actions[index], adv[index], old[index]
    ratio = torch.exp(policy._distribution(theta, obs).log_prob(actions) - old)
    if clip_range is None:
        return (ratio * adv).mean()
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return torch.minimum(ratio * adv, clipped * adv).mean()


class AdamEpochs:
    r"""Adam ascent on the (clipped) surrogate for ``policy_epochs`` epochs of shuffled minibatches.

    Each minibatch step is Adam on :math:`-L_B(\theta)`:
    :math:`m \leftarrow \beta_1 m + (1-\beta_1)\nabla`, :math:`v \leftarrow \beta_2 v + (1-\beta_2)\nabla^2`,
    :math:`\theta \leftarrow \theta + \eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}`
    with :math:`\nabla = \nabla_\theta L_B` and :math:`\eta` = ``adam_lr``. One instance per run.

    Args:
        config: supplies ``adam_lr``, ``policy_epochs``, ``policy_minibatch``, and ``clip_range``
            when ``clip`` is true; its seed fixes the minibatch order.
        clip: PPO's clipped surrogate (true) or the plain importance-weighted one.
    """

    def __init__(self, config: TrainConfig, *, clip: bool) -> None:
        self.clip_range = config.clip_range if clip else None
        self.generator = torch.Generator().manual_seed(seeds_from(config.seed, 6)[5])
        self._m: Tensor | None = None
        self._v: Tensor | None = None
        self._steps = 0

    def __call__(self, policy: Policy, theta: Tensor, data: PolicyData, config: TrainConfig) -> UpdateResult:
        theta = theta.detach()
        if self._m is None or self._v is None or self._m.shape != theta.shape:
            self._m, self._v = torch.zeros_like(theta), torch.zeros_like(theta)
        m, v = self._m.clone(), self._v.clone()  # committed only if every step is finite
        steps, (b1, b2) = self._steps, ADAM_BETAS
        current = theta.clone()
        first_grad_norm: float | None = None
        n = data.obs.shape[0]
        for _ in range(config.policy_epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, config.policy_minibatch):
                index = order[start : start + config.policy_minibatch]
                point = current.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(surrogate_objective(policy, point, data, self.clip_range, index), point)
                if not bool(torch.isfinite(grad).all()):
                    return _skip(theta, "a minibatch gradient is not finite")
                if first_grad_norm is None:
                    first_grad_norm = float(grad.norm())
                steps += 1
                m.mul_(b1).add_(grad, alpha=1.0 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
                denom = (v / (1.0 - b2**steps)).sqrt_().add_(ADAM_EPS)
                current = current + config.adam_lr * (m / (1.0 - b1**steps)) / denom
        if not bool(torch.isfinite(current).all()):
            return _skip(theta, "the new parameters are not finite")
        self._m, self._v, self._steps = m, v, steps
        return UpdateResult(
            theta=current, accepted=not torch.equal(current, theta), grad_norm=first_grad_norm, step_fraction=1.0
        )
