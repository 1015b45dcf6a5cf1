r"""Kronecker-factored approximate curvature (K-FAC) of the Fisher matrix of an MLP policy.

For a layer :math:`z = W h + b` of :class:`~npgbook.policies.MLPCategoricalPolicy` write
:math:`\bar W = [W \mid b]` (shape ``out x (in + 1)``) and :math:`\bar h = (h, 1)` for its
input with a bias entry. The score of that layer is an outer product,

.. math::

    \nabla_{\bar W} \log\pi_\theta(a\mid s) = \delta\, \bar h^\top, \qquad
    \delta = \frac{\partial \log\pi_\theta(a\mid s)}{\partial z},

so, with :math:`\bar W` flattened row by row, the layer's block of the Fisher matrix is

.. math::

    F_{\ell\ell} = \frac1N\sum_i \mathbb{E}_{a\sim\pi_\theta(\cdot\mid s_i)}
        \big[\delta\delta^\top \otimes \bar h_i \bar h_i^\top\big]
    \;\approx\; G_\ell \otimes A_\ell, \qquad
    A_\ell = \frac1N\sum_i \bar h_i \bar h_i^\top, \quad
    G_\ell = \frac1N\sum_i \mathbb{E}_{a}\big[\delta\delta^\top\big]

(Martens & Grosse, 2015; used for policies by ACKTR, Wu et al., 2017). K-FAC keeps only
these diagonal blocks and replaces each by the Kronecker product of two small matrices.

**What is exact and what is approximate.** Given the state, the layer input
:math:`\bar h` is deterministic and only :math:`\delta` depends on the action, so for a
*single* state every diagonal block is exact: :math:`F_{\ell\ell} = G_\ell \otimes A_\ell`.
Two approximations enter otherwise:

1. the cross-layer blocks :math:`F_{\ell m}` (:math:`\ell \ne m`) are dropped;
2. averaging over states, the mean of a product :math:`\frac1N\sum_i G_i\otimes A_i` is
   replaced by the product of means :math:`\big(\frac1N\sum_i G_i\big)\otimes
   \big(\frac1N\sum_i A_i\big)`, which is exact only if :math:`G_i` does not vary with the
   state (e.g. a linear softmax policy whose probabilities are the same in every state).

So K-FAC is exact for a linear softmax policy (no hidden layer, hence no cross-layer
blocks) on a single state, or on many states if its action probabilities do not depend
on the state. With ``n_samples`` set, :math:`G_\ell` is instead estimated from actions
sampled from the policy (an unbiased estimate of the exact-expectation factor).

Storing the factors costs :math:`\sum_\ell (\text{in}_\ell+1)^2 + \text{out}_\ell^2` numbers
instead of :math:`n^2`, and :math:`(G\otimes A + \lambda I)^{-1} v` is computed exactly from
the eigendecompositions :math:`A = U_A \operatorname{diag}(a) U_A^\top`,
:math:`G = U_G \operatorname{diag}(g) U_G^\top`:
:math:`(G\otimes A+\lambda I)^{-1}\operatorname{vec}(V) =
\operatorname{vec}\!\big(U_G\,[(U_G^\top V U_A) \oslash (g a^\top + \lambda)]\,U_A^\top\big)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._checks import as_tensor, require_finite, require_int, require_positive, require_vector
from .natural import NaturalStep
from .policies import MLPCategoricalPolicy, sample_actions
from .solvers import NotPositiveDefiniteError


@dataclass(frozen=True)
class KFACLayer:
    r"""The two Kronecker factors of one layer and where its parameters sit in :math:`\theta`.

    Attributes:
        A: :math:`\frac1N\sum_i \bar h_i\bar h_i^\top`, shape ``(in + 1, in + 1)`` (input with bias entry).
        G: :math:`\frac1N\sum_i\mathbb{E}_a[\delta\delta^\top]`, shape ``(out, out)``
            (pre-activation gradients).
        offset: index in :math:`\theta` of the layer's first parameter (its weight
            :math:`W` row by row, followed by its bias :math:`b`).
    """

    A: Tensor
    G: Tensor
    offset: int
    _eig: tuple[Tensor, Tensor, Tensor, Tensor] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        a_val, a_vec = torch.linalg.eigh(self.A)
        g_val, g_vec = torch.linalg.eigh(self.G)
        object.__setattr__(self, "_eig", (a_val.clamp_min(0.0), a_vec, g_val.clamp_min(0.0), g_vec))

    @property
    def in_features(self) -> int:
        """Width of the layer input (without the bias entry)."""
        return self.A.shape[0] - 1

    @property
    def out_features(self) -> int:
        """Width of the layer output."""
        return self.G.shape[0]

    @property
    def size(self) -> int:
        """Number of parameters of the layer, ``out * (in + 1)``."""
        return self.out_features * (self.in_features + 1)

    def to_matrix(self, v: Tensor) -> Tensor:
        r"""The layer's slice of a flat vector as :math:`\bar V = [V_W \mid v_b]`, shape ``(out, in + 1)``."""
        out, inp = self.out_features, self.in_features
        piece = v[self.offset : self.offset + self.size]
        weight = piece[: out * inp].reshape(out, inp)
        bias = piece[out * inp :].reshape(out, 1)
        return torch.cat([weight, bias], dim=1)

    def from_matrix(self, m: Tensor) -> Tensor:
        """Inverse of :meth:`to_matrix`: weight row by row, then bias."""
        return torch.cat([m[:, :-1].reshape(-1), m[:, -1]])

    def permutation(self) -> Tensor:
        r"""Indices ``p`` with ``theta[p]`` = the layer's parameters in the row-major order of :math:`\bar W`."""
        return self.to_matrix(torch.arange(self.offset + self.size)).reshape(-1)


@dataclass(frozen=True)
class KFACFisher:
    r"""A block-diagonal Kronecker-factored Fisher matrix :math:`\hat F = \operatorname{diag}_\ell(G_\ell\otimes A_\ell)`.

    Built by :func:`kfac_fisher`. :meth:`matvec` applies :math:`\hat F`, :meth:`solve`
    applies :math:`(\hat F + \lambda I)^{-1}`, :meth:`dense` forms :math:`\hat F` in the
    parameter order of :math:`\theta` (for tests and small examples only).
    """

    layers: tuple[KFACLayer, ...]
    n_params: int

    @property
    def n_stored(self) -> int:
        """How many numbers the factors hold: :math:`\\sum_\\ell (\\text{in}_\\ell+1)^2 + \\text{out}_\\ell^2`."""
        return sum(layer.A.numel() + layer.G.numel() for layer in self.layers)

    def _vector(self, v: Tensor) -> Tensor:
        dtype = self.layers[0].A.dtype
        v = as_tensor("v", v).to(dtype)
        return require_finite("v", require_vector("v", v, self.n_params))

    def matvec(self, v: Tensor) -> Tensor:
        r""":math:`\hat F v`, layer by layer as :math:`\operatorname{vec}(G_\ell \bar V_\ell A_\ell)`."""
        v = self._vector(v)
        return torch.cat([layer.from_matrix(layer.G @ layer.to_matrix(v) @ layer.A) for layer in self.layers])

    def solve(self, v: Tensor, damping: float) -> Tensor:
        r""":math:`(\hat F + \lambda I)^{-1} v`, exactly, from the eigendecompositions of the factors.

        Args:
            v: a vector of length :attr:`n_params`, e.g. the policy gradient :math:`g`.
            damping: :math:`\lambda \ge 0`. With :math:`\lambda = 0` the factors must be
                nonsingular.

        Raises:
            NotPositiveDefiniteError: if :math:`\hat F + \lambda I` is singular (an eigenvalue
                :math:`g_i a_j + \lambda` is 0 up to rounding).
        """
        v = self._vector(v)
        damping = require_positive("damping", damping, allow_zero=True)
        pieces = []
        for layer in self.layers:
            a_val, a_vec, g_val, g_vec = layer._eig
            denominator = torch.outer(g_val, a_val) + damping
            # relative to the largest eigenvalue, anything at rounding level counts as zero
            tiny = denominator.numel() * torch.finfo(denominator.dtype).eps * float(denominator.max())
            if not float(denominator.min()) > tiny:
                raise NotPositiveDefiniteError(
                    "the K-FAC matrix plus damping is singular; use damping > 0"
                )
            rotated = g_vec.T @ layer.to_matrix(v) @ a_vec
            pieces.append(layer.from_matrix(g_vec @ (rotated / denominator) @ a_vec.T))
        return torch.cat(pieces)

    def dense(self) -> Tensor:
        r"""The :math:`n \times n` matrix :math:`\hat F` in the parameter order of :math:`\theta`."""
        dtype = self.layers[0].A.dtype
        out = torch.zeros(self.n_params, self.n_params, dtype=dtype)
        for layer in self.layers:
            index = layer.permutation()
            out[index.unsqueeze(1), index.unsqueeze(0)] = torch.kron(layer.G, layer.A)
        return out


def _linear_layers(policy: MLPCategoricalPolicy, theta: Tensor) -> list[tuple[Tensor, Tensor]]:
    """The (weight, bias) pairs of the policy's linear layers, taken from the flat ``theta``."""
    named = policy.unflatten(theta)
    return [
        (named[f"{i}.weight"], named[f"{i}.bias"])
        for i, module in enumerate(policy.net)
        if isinstance(module, nn.Linear)
    ]


def kfac_fisher(
    policy: MLPCategoricalPolicy,
    theta: Tensor,
    obs: Tensor,
    *,
    n_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> KFACFisher:
    r"""The K-FAC approximation of the state-averaged Fisher matrix of an MLP policy.

    Runs the network forward on ``obs`` keeping every layer input :math:`\bar h`, and
    propagates :math:`\delta = \partial\log\pi(a\mid s)/\partial z` backward for every
    action :math:`a` at once: at the logits :math:`\delta = e_a - p(s)`, and through a tanh
    layer :math:`\delta_{\ell} = (W_{\ell+1}^\top \delta_{\ell+1}) \odot (1 - \tanh^2 z_\ell)`.

    Args:
        policy: an :class:`~npgbook.policies.MLPCategoricalPolicy` (tanh hidden layers).
        theta: its flat parameters.
        obs: the states :math:`s_1..s_N`, shape ``(N, obs_dim)``.
        n_samples: ``None`` for the exact expectation over actions in :math:`G_\ell`
            (:math:`\sum_a \pi(a\mid s)\,\delta_a\delta_a^\top`); an integer to estimate it from
            that many actions sampled from :math:`\pi_\theta(\cdot\mid s)` per state, as a
            rollout would.
        generator: the random generator for the sampled actions (required with ``n_samples``).

    Raises:
        TypeError: if ``policy`` is not an :class:`~npgbook.policies.MLPCategoricalPolicy`.
        ValueError: for bad ``theta``, ``obs``, ``n_samples`` or a missing ``generator``.
    """
    if not isinstance(policy, MLPCategoricalPolicy):
        raise TypeError(f"policy must be an MLPCategoricalPolicy, got {type(policy).__name__}")
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    assert obs is not None
    if n_samples is not None:
        n_samples = require_int("n_samples", n_samples)
        if generator is None:
            raise ValueError("generator is required when n_samples is given")
    elif generator is not None:
        raise ValueError("generator must be None for the exact expectation (n_samples=None)")

    layers = _linear_layers(policy, theta)
    inputs, preacts = [], []
    h = obs
    with torch.no_grad():
        for i, (weight, bias) in enumerate(layers):
            inputs.append(torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype)], dim=1))
            z = h @ weight.T + bias
            preacts.append(z)
            h = torch.tanh(z) if i < len(layers) - 1 else z
        probs = torch.softmax(h, dim=1)  # (N, K)
        k = probs.shape[1]
        # delta at the logits for every action a: e_a - p, shape (N, K actions, K logits)
        delta = torch.eye(k, dtype=probs.dtype).unsqueeze(0) - probs.unsqueeze(1)
        if n_samples is None:
            weights = probs  # exact expectation over actions
        else:
            draws = sample_actions(policy._distribution(theta, obs), n_samples, generator)  # (S, N)
            counts = torch.nn.functional.one_hot(draws, k).sum(0).to(probs.dtype)  # (N, K)
            weights = counts / n_samples
        deltas = [delta]
        for i in range(len(layers) - 1, 0, -1):
            weight, _ = layers[i]
            delta = (delta @ weight) * (1.0 - torch.tanh(preacts[i - 1]) ** 2).unsqueeze(1)
            deltas.append(delta)
        deltas.reverse()
    n_states = obs.shape[0]
    result, offset = [], 0
    for a_in, d in zip(inputs, deltas):
        factor_a = a_in.T @ a_in / n_states
        factor_g = torch.einsum("na,nai,naj->ij", weights, d, d) / n_states
        layer = KFACLayer(A=factor_a, G=factor_g, offset=offset)
        result.append(layer)
        offset += layer.size
    return KFACFisher(layers=tuple(result), n_params=policy.n_params)


def kfac_natural_step(grad: Tensor, fisher: KFACFisher, epsilon: float, damping: float) -> NaturalStep:
    r"""The KL-capped natural step with the K-FAC matrix: :math:`\sqrt{2\epsilon/g^\top d}\; d`, :math:`d = (\hat F+\lambda I)^{-1}g`.

    As in :func:`npgbook.natural_step`, :math:`\tfrac12\Delta\theta^\top(\hat F+\lambda I)\Delta\theta
    = \epsilon`: the step spends the budget in the *approximate* metric, as ACKTR does.

    Args:
        grad: the policy gradient :math:`g`.
        fisher: the K-FAC matrix from :func:`kfac_fisher`.
        epsilon: the KL budget :math:`\epsilon > 0`.
        damping: :math:`\lambda \ge 0` added to :math:`\hat F`.

    Raises:
        NotPositiveDefiniteError: if :math:`g^\top d` is not positive and finite.
    """
    epsilon = require_positive("epsilon", epsilon)
    direction = fisher.solve(grad, damping)
    grad = fisher._vector(grad)
    if not bool(grad.any()):
        zero = torch.zeros_like(grad)
        return NaturalStep(step=zero, direction=zero, alpha=0.0, quad=0.0, cg=None)
    quad = float(grad @ direction)
    if not (quad > 0.0 and quad < float("inf")):
        raise NotPositiveDefiniteError(f"g^T F^-1 g = {quad:.3e} must be positive and finite")
    alpha = (2.0 * epsilon / quad) ** 0.5
    return NaturalStep(step=alpha * direction, direction=direction, alpha=alpha, quad=quad, cg=None)
