r"""The policy families of the book, each a pure function of a flat parameter vector.

Every policy maps a flat parameter vector :math:`\theta \in \mathbb{R}^n` (and, for the
MLP, a batch of observations) to a :class:`torch.distributions.Distribution`.
Keeping :math:`\theta` flat lets the KL, the Fisher matrix, conjugate gradient and the
natural step all treat a two-parameter Gaussian and a neural network alike. The MLP
evaluates its network with :func:`torch.func.functional_call`, so that
``distribution(theta, obs)`` is differentiable in ``theta`` with no module state.

The families:

* :class:`GaussianPolicy` -- a 1-D Gaussian :math:`\mathcal{N}(\mu, \sigma^2)` with
  :math:`\theta = (\mu, \sigma)` or :math:`\theta = (\mu, \log\sigma)`;
* :class:`CategoricalPolicy` -- a softmax over logits :math:`\theta \in \mathbb{R}^K`;
* :class:`MLPCategoricalPolicy` -- logits computed by a tanh MLP from a vector
  observation, e.g. CartPole's four numbers;
* :class:`MLPGaussianPolicy` -- a diagonal Gaussian on a continuous action vector, its mean a
  tanh MLP of the observation, its log standard deviation a free parameter vector.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from ._checks import DTYPE, as_tensor, require_finite, require_int, require_vector, to_tensor

Parameterization = Literal["sigma", "log_sigma"]


class Policy(ABC):
    r"""A stochastic policy :math:`\pi_\theta(a \mid s)` with a flat parameter vector.

    Subclasses implement :meth:`_distribution`, the unchecked map
    :math:`(\theta, s) \mapsto \pi_\theta(\cdot \mid s)` that the package differentiates
    (also under :mod:`torch.func` transforms, where data-dependent checks are not
    allowed). The public :meth:`distribution` validates its inputs first.

    Attributes:
        n_params: the length :math:`n` of :math:`\theta`.
        discrete: whether the action space is finite (then :attr:`n_actions` is set).
        stateless: whether the policy ignores observations (a bandit policy).
    """

    n_params: int
    discrete: bool
    stateless: bool
    n_actions: int | None = None

    # -- checked public interface -------------------------------------------------
    def check_theta(self, theta: Tensor, name: str = "theta") -> Tensor:
        """Return ``theta`` as a float64 vector of length :attr:`n_params`, or raise ``ValueError``."""
        theta = as_tensor(name, theta)
        require_vector(name, theta, self.n_params)
        require_finite(name, theta)
        return theta

    def check_obs(self, obs: Tensor | None, name: str = "obs") -> Tensor | None:
        """Validate observations: ``None`` for stateless policies, a finite batch otherwise."""
        if self.stateless:
            if obs is not None:
                raise ValueError(f"{name} must be None for the stateless {type(self).__name__}")
            return None
        if obs is None:
            raise ValueError(f"{name} is required by {type(self).__name__}")
        obs = as_tensor(name, obs).to(self.dtype)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(
                f"{name} must have shape (batch, {self.obs_dim}), got {tuple(obs.shape)}"
            )
        require_finite(name, obs)
        return obs

    def distribution(self, theta: Tensor, obs: Tensor | None = None) -> Distribution:
        r""":math:`\pi_\theta(\cdot \mid s)` for each observation (one distribution if stateless)."""
        return self._distribution(self.check_theta(theta), self.check_obs(obs))

    def log_prob(self, theta: Tensor, actions: Tensor, obs: Tensor | None = None) -> Tensor:
        r""":math:`\log \pi_\theta(a \mid s)` for a batch of actions (and observations)."""
        dist = self.distribution(theta, obs)
        actions = to_tensor("actions", actions)
        return dist.log_prob(actions)

    # -- to implement ---------------------------------------------------------------
    dtype: torch.dtype = DTYPE
    obs_dim: int = 0

    @abstractmethod
    def _distribution(self, theta: Tensor, obs: Tensor | None) -> Distribution:
        """The distribution for an already validated ``theta`` and ``obs``."""


class GaussianPolicy(Policy):
    r"""A 1-D Gaussian policy :math:`\mathcal{N}(\mu, \sigma^2)` on a continuous action.

    Args:
        parameterization: ``"sigma"`` for :math:`\theta = (\mu, \sigma)`, which needs
            :math:`\sigma > 0`, or ``"log_sigma"`` for :math:`\theta = (\mu, \log \sigma)`,
            which is unconstrained. Both describe the same family of distributions; their
            Fisher matrices are :math:`\operatorname{diag}(1/\sigma^2, 2/\sigma^2)` and
            :math:`\operatorname{diag}(1/\sigma^2, 2)`.
    """

    n_params = 2
    discrete = False
    stateless = True

    def __init__(self, parameterization: Parameterization = "sigma") -> None:
        if parameterization not in ("sigma", "log_sigma"):
            raise ValueError(
                f"parameterization must be 'sigma' or 'log_sigma', got {parameterization!r}"
            )
        self.parameterization: Parameterization = parameterization

    def __repr__(self) -> str:
        return f"GaussianPolicy(parameterization={self.parameterization!r})"

    def params(self, mu: float, sigma: float) -> Tensor:
        r"""The flat :math:`\theta` of :math:`\mathcal{N}(\mu, \sigma^2)` in this parameterization."""
        mu_t = require_finite("mu", as_tensor("mu", mu))
        sigma_t = require_finite("sigma", as_tensor("sigma", sigma))
        if mu_t.ndim != 0 or sigma_t.ndim != 0:
            raise ValueError("mu and sigma must be scalars")
        if sigma_t <= 0:
            raise ValueError(f"sigma must be > 0, got {float(sigma_t)}")
        second = sigma_t if self.parameterization == "sigma" else torch.log(sigma_t)
        return torch.stack([mu_t, second]).to(DTYPE)

    def mean_std(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        r"""Return :math:`(\mu, \sigma)` from :math:`\theta` (checked)."""
        return self._mean_std(self.check_theta(theta))

    def check_theta(self, theta: Tensor, name: str = "theta") -> Tensor:
        theta = super().check_theta(theta, name)
        if self.parameterization == "sigma" and theta[1] <= 0:
            raise ValueError(f"{name}[1] is sigma and must be > 0, got {float(theta[1])}")
        return theta

    def _mean_std(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        sigma = theta[1] if self.parameterization == "sigma" else torch.exp(theta[1])
        return theta[0], sigma

    def _distribution(self, theta: Tensor, obs: Tensor | None) -> Distribution:
        mu, sigma = self._mean_std(theta)
        return Normal(mu, sigma, validate_args=False)


class CategoricalPolicy(Policy):
    r"""A softmax policy over ``n_actions`` actions: :math:`\pi_\theta(a) \propto e^{\theta_a}`.

    Args:
        n_actions: the number :math:`K \ge 2` of actions; :math:`\theta \in \mathbb{R}^K`
            are the logits.
    """

    discrete = True
    stateless = True

    def __init__(self, n_actions: int) -> None:
        self.n_actions = require_int("n_actions", n_actions, minimum=2)
        self.n_params = self.n_actions

    def __repr__(self) -> str:
        return f"CategoricalPolicy(n_actions={self.n_actions})"

    def _distribution(self, theta: Tensor, obs: Tensor | None) -> Distribution:
        return Categorical(logits=theta, validate_args=False)


class _MLPPolicy(Policy):
    """A tanh MLP of the observation held as a template module, its weights passed flat.

    Shared by :class:`MLPCategoricalPolicy` and :class:`MLPGaussianPolicy`: the network
    maps ``obs_dim`` inputs to ``out_dim`` outputs, and :attr:`n_net_params` of the flat
    :math:`\theta` are its weights (``weight`` of shape ``(out, in)`` then ``bias``, layer by
    layer); a subclass may append further parameters after them.
    """

    stateless = False

    def _build(self, obs_dim: int, out_dim: int, hidden: tuple[int, ...], dtype: torch.dtype) -> None:
        self.obs_dim = require_int("obs_dim", obs_dim)
        self.hidden = tuple(require_int("hidden", h) for h in hidden)
        self.dtype = dtype
        layers: list[nn.Module] = []
        width = self.obs_dim
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers).to(dtype)
        for p in self.net.parameters():  # the template holds no trainable state
            p.requires_grad_(False)
        self._names = [name for name, _ in self.net.named_parameters()]
        self._shapes = [p.shape for p in self.net.parameters()]
        self._sizes = [p.numel() for p in self.net.parameters()]
        self.n_net_params = sum(self._sizes)

    def check_theta(self, theta: Tensor, name: str = "theta") -> Tensor:
        return super().check_theta(theta, name).to(self.dtype)

    def _initial_net_params(self, seed: int, last_layer_scale: float) -> Tensor:
        generator = torch.Generator().manual_seed(int(seed))
        chunks = []
        linear_layers = [m for m in self.net if isinstance(m, nn.Linear)]
        for i, layer in enumerate(linear_layers):
            gain = last_layer_scale if i == len(linear_layers) - 1 else math.sqrt(2.0)
            weight = torch.empty(layer.weight.shape, dtype=self.dtype)
            _orthogonal_(weight, gain, generator)
            chunks += [weight.reshape(-1), torch.zeros(layer.bias.shape, dtype=self.dtype)]
        return torch.cat(chunks)

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Split the network's part of the flat vector into the named weight tensors."""
        pieces = torch.split(theta[: self.n_net_params], self._sizes)
        return {n: p.reshape(s) for n, p, s in zip(self._names, pieces, self._shapes)}

    def _net(self, theta: Tensor, obs: Tensor) -> Tensor:
        return torch.func.functional_call(self.net, self.unflatten(theta), (obs,))


class MLPCategoricalPolicy(_MLPPolicy):
    r"""A categorical policy whose logits are a tanh MLP of the observation.

    :math:`\pi_\theta(\cdot \mid s) = \operatorname{softmax}(f_\theta(s))` with
    :math:`f_\theta` a multilayer perceptron with ``hidden`` tanh layers. The network
    is stored once as a template module; its weights are supplied on every call as the
    flat vector :math:`\theta` through :func:`torch.func.functional_call`.

    Args:
        obs_dim: length of an observation vector (4 for CartPole).
        n_actions: number of discrete actions (2 for CartPole).
        hidden: widths of the hidden layers, e.g. ``(64, 64)``; ``()`` gives a linear
            softmax policy.
        dtype: floating type of parameters and observations (float64 for the geometry
            chapters; float32 is faster for training).
    """

    discrete = True

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: tuple[int, ...] = (64, 64),
        dtype: torch.dtype = DTYPE,
    ) -> None:
        self.n_actions = require_int("n_actions", n_actions, minimum=2)
        self._build(obs_dim, self.n_actions, hidden, dtype)
        self.n_params = self.n_net_params

    def __repr__(self) -> str:
        return (
            f"MLPCategoricalPolicy(obs_dim={self.obs_dim}, n_actions={self.n_actions}, "
            f"hidden={self.hidden}, n_params={self.n_params})"
        )

    def initial_params(self, seed: int, last_layer_scale: float = 0.01) -> Tensor:
        r"""Orthogonal initialization (gain :math:`\sqrt 2` hidden, small last layer), zero biases.

        A small last layer starts the policy close to uniform, the usual choice for
        policy-gradient methods.
        """
        return self._initial_net_params(seed, last_layer_scale)

    def logits(self, theta: Tensor, obs: Tensor) -> Tensor:
        """Unnormalized log-probabilities, shape ``(batch, n_actions)``."""
        return self._logits(self.check_theta(theta), self.check_obs(obs))

    def _logits(self, theta: Tensor, obs: Tensor) -> Tensor:
        return self._net(theta, obs)

    def _distribution(self, theta: Tensor, obs: Tensor | None) -> Distribution:
        assert obs is not None
        return Categorical(logits=self._logits(theta, obs), validate_args=False)


class MLPGaussianPolicy(_MLPPolicy):
    r"""A diagonal Gaussian policy whose mean is a tanh MLP of the observation.

    :math:`\pi_\theta(\cdot \mid s) = \mathcal N\big(\mu_w(s), \operatorname{diag}(e^{2\ell})\big)`
    on :math:`\mathbb R^m`, with :math:`\mu_w` a multilayer perceptron (``hidden`` tanh
    layers, linear output) and a state-independent log standard deviation
    :math:`\ell \in \mathbb R^m`. The flat :math:`\theta = (w, \ell)`: the network's weights,
    then the :math:`m` log standard deviations. Its Fisher matrix in output coordinates is
    :math:`\operatorname{diag}(e^{-2\ell})` for the mean and :math:`2I` for :math:`\ell`, with
    no cross terms, so :math:`F(\theta) = \mathbb E_s[J_\mu^\top \operatorname{diag}(e^{-2\ell})J_\mu] \oplus 2I`
    (:func:`npgbook.fisher_mlp_gaussian`).

    Args:
        obs_dim: length of an observation vector (3 for Pendulum).
        act_dim: dimension :math:`m` of the action (1 for Pendulum).
        hidden: widths of the hidden layers of the mean network.
        dtype: floating type of parameters and observations.
    """

    discrete = False

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (64, 64),
        dtype: torch.dtype = DTYPE,
    ) -> None:
        self.act_dim = require_int("act_dim", act_dim)
        self._build(obs_dim, self.act_dim, hidden, dtype)
        self.n_params = self.n_net_params + self.act_dim

    def __repr__(self) -> str:
        return (
            f"MLPGaussianPolicy(obs_dim={self.obs_dim}, act_dim={self.act_dim}, "
            f"hidden={self.hidden}, n_params={self.n_params})"
        )

    def initial_params(self, seed: int, last_layer_scale: float = 0.01, log_std: float = 0.0) -> Tensor:
        r"""Orthogonal mean network (small last layer: mean near 0) and :math:`\ell = ` ``log_std``."""
        log_std_t = require_finite("log_std", as_tensor("log_std", log_std))
        if log_std_t.ndim != 0:
            raise ValueError(f"log_std must be a scalar, got shape {tuple(log_std_t.shape)}")
        tail = torch.full((self.act_dim,), float(log_std_t), dtype=self.dtype)
        return torch.cat([self._initial_net_params(seed, last_layer_scale), tail])

    def mean_log_std(self, theta: Tensor, obs: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`(\mu_w(s), \ell)`: means of shape ``(batch, act_dim)`` and the log std ``(act_dim,)``."""
        return self._mean_log_std(self.check_theta(theta), self.check_obs(obs))

    def _mean_log_std(self, theta: Tensor, obs: Tensor | None) -> tuple[Tensor, Tensor]:
        assert obs is not None
        return self._net(theta, obs), theta[self.n_net_params :]

    def _distribution(self, theta: Tensor, obs: Tensor | None) -> Distribution:
        mean, log_std = self._mean_log_std(theta, obs)
        base = Normal(mean, torch.exp(log_std).expand_as(mean), validate_args=False)
        return Independent(base, 1, validate_args=False)


def _orthogonal_(weight: Tensor, gain: float, generator: torch.Generator) -> None:
    """Fill a 2-D tensor with a (semi-)orthogonal matrix times ``gain``, from ``generator``."""
    rows, cols = weight.shape
    flat = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=weight.dtype)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r))  # make the decomposition unique
    if rows < cols:
        q = q.T
    weight.copy_(gain * q[:rows, :cols])


def sample_actions(dist: Distribution, n: int, generator: torch.Generator) -> Tensor:
    """Draw ``n`` samples from a Normal (or a diagonal one, ``Independent``) or Categorical, with an explicit generator.

    ``torch.distributions`` samples from the global RNG; an explicit generator keeps
    every random number in the book tied to a seed the reader can see.
    Returns shape ``(n, *dist.batch_shape)``.
    """
    n = require_int("n", n)
    if isinstance(dist, Independent) and isinstance(dist.base_dist, Normal):
        base = dist.base_dist
        noise = torch.randn((n, *base.batch_shape), generator=generator, dtype=base.loc.dtype)
        return base.loc + base.scale * noise  # shape (n, *batch_shape, *event_shape)
    if isinstance(dist, Normal):
        shape = (n, *dist.batch_shape)
        noise = torch.randn(shape, generator=generator, dtype=dist.loc.dtype)
        return dist.loc + dist.scale * noise
    if isinstance(dist, Categorical):
        probs = dist.probs.reshape(-1, dist.probs.shape[-1])
        draws = torch.multinomial(probs, n, replacement=True, generator=generator)
        return draws.T.reshape(n, *dist.batch_shape)
    raise TypeError(f"dist must be a Normal or Categorical, got {type(dist).__name__}")
