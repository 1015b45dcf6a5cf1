r"""Tanh MLPs on a flat parameter vector, differentiated by hand: the fast layer under the training loop.

The policy and the value baseline are small tanh networks evaluated thousands of times per run on a
few hundred rows. There, autograd's graph building and ``torch.tanh`` (several times slower here
than numpy's on the same float32 buffer) cost more than the arithmetic. :class:`TanhMLP` writes the
three passes the training loop needs as plain matrix products:

* **forward**, :math:`h_0 = x`, :math:`h_l = \tanh(h_{l-1} W_l^\top + b_l)`, output
  :math:`y = h_L W_{L+1}^\top + b_{L+1}`, keeping every :math:`h_l`;
* **backward** (vector-Jacobian product), :math:`u \mapsto J^\top u` with
  :math:`J = \partial y / \partial\theta`: :math:`\nabla_{W_l} = \delta_l^\top h_{l-1}`,
  :math:`\nabla_{b_l} = \mathbf 1^\top\delta_l`, :math:`\delta_{l-1} = (\delta_l W_l) \odot
  (1 - h_{l-1}^2)`;
* **forward-mode** (Jacobian-vector product), :math:`v \mapsto J v`:
  :math:`\dot h_l = (h_{l-1}\dot W_l^\top + \dot b_l + \dot h_{l-1} W_l^\top) \odot (1-h_l^2)`.

:func:`fisher_operator` uses the last two for the Fisher-vector product of a categorical MLP policy,
and :class:`~npgbook.rl.value.ValueFunction` uses forward and backward for its regression. Both are
checked against autograd in the tests. The flat layout is that of
:class:`~npgbook.policies.MLPCategoricalPolicy` (``weight`` of shape ``(out, in)`` then ``bias``,
layer by layer), so a policy's :math:`\theta` is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .._checks import require_positive
from ..fisher import fisher_vector_product
from ..policies import MLPCategoricalPolicy, MLPGaussianPolicy, Policy


def tanh_(x: Tensor) -> Tensor:
    """``tanh`` in place; through numpy for a CPU tensor outside autograd (the same values to rounding)."""
    if x.device.type == "cpu" and not x.requires_grad and x.is_contiguous():
        a = x.numpy()
        np.tanh(a, out=a)
        return x
    return x.tanh_()


class TanhMLP:
    r"""The tanh network with layer widths ``sizes = (d, h_1, ..., h_L, out)``, parameters passed flat.

    Args:
        sizes: input size, hidden widths, output size.
    """

    def __init__(self, sizes: tuple[int, ...]) -> None:
        if len(sizes) < 2:
            raise ValueError(f"sizes must list the input and output sizes at least, got {sizes}")
        self.sizes = tuple(int(s) for s in sizes)
        self.shapes = [(o, i) for i, o in zip(self.sizes[:-1], self.sizes[1:])]
        self.n_params = sum(o * i + o for o, i in self.shapes)

    def layers(self, theta: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(W_1, b_1), ..., (W_{L+1}, b_{L+1})]`` as views into the flat vector ``theta``."""
        out, k = [], 0
        for o, i in self.shapes:
            w = theta[k : k + o * i].view(o, i)
            k += o * i
            out.append((w, theta[k : k + o]))
            k += o
        return out

    def forward(self, theta: Tensor, x: Tensor, layers: list[tuple[Tensor, Tensor]] | None = None) -> list[Tensor]:
        """The activations ``[h_0 = x, h_1, ..., h_L, y]``; ``y`` is the (linear) output.

        ``layers`` is ``self.layers(theta)`` if the caller keeps it (the views stay valid while
        ``theta`` is updated in place).
        """
        acts = [x]
        layers = self.layers(theta) if layers is None else layers
        for w, b in layers[:-1]:
            acts.append(tanh_(torch.addmm(b, acts[-1], w.T)))
        w, b = layers[-1]
        acts.append(torch.addmm(b, acts[-1], w.T))
        return acts

    def backward(
        self,
        theta: Tensor,
        acts: list[Tensor],
        grad_out: Tensor,
        out: Tensor | None = None,
        slopes: list[Tensor] | None = None,
        layers: list[tuple[Tensor, Tensor]] | None = None,
        out_layers: list[tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        r""":math:`J^\top u` for ``u = grad_out`` of the output's shape, summed over rows, as a flat vector.

        ``out`` receives the result if given; ``slopes`` as in :meth:`jvp`; ``layers`` and
        ``out_layers`` are ``self.layers`` of ``theta`` and ``out``, if the caller keeps them.
        """
        grad = torch.empty_like(theta) if out is None else out
        layers = self.layers(theta) if layers is None else layers
        grads = self.layers(grad) if out_layers is None else out_layers
        delta = grad_out
        for k in range(len(layers) - 1, -1, -1):
            gw, gb = grads[k]
            torch.mm(delta.T, acts[k], out=gw)
            torch.sum(delta, 0, out=gb)
            if k > 0:
                h = acts[k]
                delta = torch.mm(delta, layers[k][0]).mul_(1.0 - h * h if slopes is None else slopes[k - 1])
        return grad

    def jvp(
        self,
        theta: Tensor,
        acts: list[Tensor],
        v: Tensor,
        slopes: list[Tensor] | None = None,
        layers: list[tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        r""":math:`J v`, the change of the output along the parameter direction ``v`` (shape of ``y``).

        ``slopes`` are the :math:`1 - h_l^2` of the hidden layers, if already computed;
        ``layers`` as in :meth:`forward`.
        """
        layers = self.layers(theta) if layers is None else layers
        tangent = self.layers(v)
        if slopes is None:
            slopes = [1.0 - h * h for h in acts[1:-1]]
        dh = None
        for k, ((w, _), (dw, db)) in enumerate(zip(layers, tangent)):
            dz = torch.addmm(db, acts[k], dw.T)
            if dh is not None:
                dz.addmm_(dh, w.T)
            dh = dz.mul_(slopes[k]) if k < len(slopes) else dz
        assert dh is not None
        return dh


def fisher_operator(
    policy: Policy, theta: Tensor, obs: Tensor | None = None, *, damping: float = 0.0
) -> Callable[[Tensor], Tensor]:
    r""":math:`v \mapsto (\hat H + \lambda I) v`, the sampled KL Hessian of :func:`npgbook.fisher_vector_product`.

    For a :class:`~npgbook.policies.MLPCategoricalPolicy` it is computed in Gauss-Newton form,
    which for the KL at :math:`\theta' = \theta` is the Hessian exactly (the gradient of the KL in
    the logits, :math:`p' - p`, vanishes there, so the curvature of the network drops out):

    .. math::

        \hat H v = \frac1M \sum_i J_i^\top \big(\operatorname{diag}(p_i) - p_i p_i^\top\big) J_i v,

    with :math:`J_i` the Jacobian of the logits of state :math:`s_i` and :math:`p_i` its action
    probabilities: one forward-mode and one backward pass through all :math:`M` states per product,
    no autograd graph. For a :class:`~npgbook.policies.MLPGaussianPolicy` the same form has the
    output Fisher matrix :math:`\operatorname{diag}(e^{-2\ell})` for the mean and :math:`2I` for
    the log standard deviations :math:`\ell` (see :func:`npgbook.fisher_mlp_gaussian`). Other
    policies get :func:`npgbook.fisher_vector_product` (double backprop).

    Args:
        policy, theta, obs: the policy, the point :math:`\theta` and the states ``(M, obs_dim)``.
        damping: :math:`\lambda \ge 0`.
    """
    if isinstance(policy, MLPGaussianPolicy):
        return _gaussian_fisher_operator(policy, theta, obs, damping)
    if not isinstance(policy, MLPCategoricalPolicy):
        return fisher_vector_product(policy, theta, obs, damping=damping)
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    assert obs is not None
    damping = require_positive("damping", damping, allow_zero=True)
    net = TanhMLP((policy.obs_dim, *policy.hidden, policy.n_actions))
    layers = net.layers(theta)
    with torch.no_grad():
        acts = net.forward(theta, obs, layers)
        p = torch.softmax(acts[-1], dim=-1) / obs.shape[0]  # the 1/M of the mean folded in
    slopes = [1.0 - h * h for h in acts[1:-1]]
    out = torch.empty_like(theta)
    out_layers = net.layers(out)

    def fvp(v: Tensor) -> Tensor:
        v = torch.as_tensor(v, dtype=theta.dtype)
        if v.shape != theta.shape or not bool(torch.isfinite(v).all()):
            raise ValueError(f"v must be a finite vector of length {theta.shape[0]}, got shape {tuple(v.shape)}")
        with torch.no_grad():
            dl = net.jvp(theta, acts, v, slopes, layers)
            u = p * dl
            u.sub_(p * (u.sum(-1, keepdim=True) * obs.shape[0]))  # (diag p - p p^T) dl, per row, / M
            return net.backward(theta, acts, u, out, slopes, layers, out_layers).clone().add_(v, alpha=damping)

    return fvp


def _gaussian_fisher_operator(
    policy: MLPGaussianPolicy, theta: Tensor, obs: Tensor | None, damping: float
) -> Callable[[Tensor], Tensor]:
    r""":math:`v = (v_w, v_\ell) \mapsto \big(\frac1M\sum_i J_i^\top \operatorname{diag}(e^{-2\ell}) J_i v_w,\ 2 v_\ell\big) + \lambda v`."""
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    assert obs is not None
    damping = require_positive("damping", damping, allow_zero=True)
    k = policy.n_net_params
    net = TanhMLP((policy.obs_dim, *policy.hidden, policy.act_dim))
    weights = theta[:k]
    layers = net.layers(weights)
    with torch.no_grad():
        acts = net.forward(weights, obs, layers)
        precision = torch.exp(-2.0 * theta[k:]) / obs.shape[0]  # the 1/M of the mean folded in
    slopes = [1.0 - h * h for h in acts[1:-1]]
    out = torch.empty_like(theta)
    out_layers = net.layers(out[:k])

    def fvp(v: Tensor) -> Tensor:
        v = torch.as_tensor(v, dtype=theta.dtype)
        if v.shape != theta.shape or not bool(torch.isfinite(v).all()):
            raise ValueError(f"v must be a finite vector of length {theta.shape[0]}, got shape {tuple(v.shape)}")
        with torch.no_grad():
            u = net.jvp(weights, acts, v[:k], slopes, layers).mul_(precision)
            net.backward(weights, acts, u, out[:k], slopes, layers, out_layers)
            out[k:] = 2.0 * v[k:]
            return out.clone().add_(v, alpha=damping)

    return fvp
