r"""A finite MDP solved exactly, and the tabular softmax policy that lives on it.

A finite Markov decision process has states :math:`s \in \{0..S-1\}`, actions
:math:`a \in \{0..A-1\}`, transition probabilities :math:`P(s' \mid s, a)`, expected rewards
:math:`R(s, a)`, a discount :math:`\gamma \in [0, 1)` and an initial distribution
:math:`\rho_0`. For a policy :math:`\pi_\theta` everything the policy gradient needs is a
linear solve away:

.. math::

    V_\theta = (I - \gamma P_\pi)^{-1} r_\pi, \qquad
    Q_\theta(s, a) = R(s, a) + \gamma \sum_{s'} P(s'\mid s,a) V_\theta(s'), \qquad
    J(\theta) = \rho_0^\top V_\theta,

with :math:`P_\pi(s, s') = \sum_a \pi_\theta(a\mid s) P(s'\mid s,a)` and
:math:`r_\pi(s) = \sum_a \pi_\theta(a\mid s) R(s,a)`. The solve is differentiable in torch,
so :math:`\nabla_\theta J` is exact (by automatic differentiation, no sampling).

The normalized discounted state-visitation distribution

.. math::

    d_\theta(s) = (1-\gamma) \sum_{t\ge0} \gamma^t \Pr(s_t = s)
    = (1-\gamma)\, \big[\rho_0^\top (I - \gamma P_\pi)^{-1}\big]_s

weights the states in the policy-gradient theorem,
:math:`\nabla J = \frac{1}{1-\gamma} \sum_s d_\theta(s) \sum_a \pi_\theta(a\mid s)\,
\nabla\log\pi_\theta(a\mid s)\, A_\theta(s, a)` (Sutton et al., 2000), and in Kakade's
Fisher matrix (Kakade, 2001)

.. math::

    F(\theta) = \sum_s d_\theta(s)\, F_s(\theta), \qquad
    F_s(\theta) = \mathbb{E}_{a\sim\pi_\theta(\cdot\mid s)}
        [\nabla\log\pi_\theta(a\mid s) \nabla\log\pi_\theta(a\mid s)^\top],

which is also the Hessian at :math:`\theta'=\theta` of the visitation-weighted KL
:math:`\sum_s d_\theta(s) D_{\mathrm{KL}}(\pi_\theta(\cdot\mid s)\,\|\,\pi_{\theta'}(\cdot\mid s))`.

A policy acts on this MDP through the :class:`~npgbook.policies.Policy` interface with
one-hot observations: row :math:`s` of :meth:`FiniteMDP.states` is the observation of state
:math:`s`. :class:`TabularSoftmaxPolicy` gives every state its own logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution

from .._checks import DTYPE, as_tensor, require_finite, require_int
from ..divergences import kl_divergence
from ..fisher import fisher_score_outer
from ..policies import Policy


class TabularSoftmaxPolicy(Policy):
    r"""One softmax per state: :math:`\pi_\theta(a\mid s) \propto \exp\theta_{s,a}`.

    :math:`\theta \in \mathbb{R}^{S\cdot A}` holds the logits row by row (state-major), so
    ``theta.reshape(n_states, n_actions)[s]`` are the logits of state :math:`s`.
    Observations are one-hot rows (see :meth:`FiniteMDP.states`); the logits of a batch are
    ``obs @ theta.reshape(S, A)``.

    Args:
        n_states: the number :math:`S \ge 1` of states (the observation length).
        n_actions: the number :math:`A \ge 2` of actions.
    """

    discrete = True
    stateless = False

    def __init__(self, n_states: int, n_actions: int) -> None:
        self.n_states = require_int("n_states", n_states)
        self.n_actions = require_int("n_actions", n_actions, minimum=2)
        self.obs_dim = self.n_states
        self.n_params = self.n_states * self.n_actions

    def __repr__(self) -> str:
        return f"TabularSoftmaxPolicy(n_states={self.n_states}, n_actions={self.n_actions})"

    def params(self, logits: Tensor | Sequence[Sequence[float]]) -> Tensor:
        r"""The flat :math:`\theta` from a table of logits of shape ``(n_states, n_actions)``."""
        table = require_finite("logits", as_tensor("logits", logits).to(DTYPE))
        if table.shape != (self.n_states, self.n_actions):
            raise ValueError(
                f"logits must have shape ({self.n_states}, {self.n_actions}), got {tuple(table.shape)}"
            )
        return table.reshape(-1).clone()

    def check_obs(self, obs: Tensor | None, name: str = "obs") -> Tensor | None:
        """Observations must be one-hot rows of length :attr:`n_states`."""
        obs = super().check_obs(obs, name)
        assert obs is not None
        one_hot = ((obs == 0) | (obs == 1)).all() and bool((obs.sum(1) == 1).all())
        if not one_hot:
            raise ValueError(f"{name} must hold one-hot rows (the observation of a state)")
        return obs

    def _distribution(self, theta: Tensor, obs: Tensor | None) -> Distribution:
        assert obs is not None
        logits = obs @ theta.reshape(self.n_states, self.n_actions)
        return Categorical(logits=logits, validate_args=False)


class FiniteMDP:
    r"""A finite discounted MDP with exact policy evaluation.

    Args:
        transitions: :math:`P[s, a, s'] = P(s'\mid s, a)`, shape ``(S, A, S)``; each
            ``transitions[s, a]`` must be a probability vector.
        rewards: :math:`R[s, a]`, the expected reward of action :math:`a` in state
            :math:`s`, shape ``(S, A)``.
        gamma: the discount :math:`\gamma \in [0, 1)`.
        initial: the initial-state distribution :math:`\rho_0`, shape ``(S,)``.
    """

    def __init__(self, transitions: Tensor, rewards: Tensor, gamma: float, initial: Tensor) -> None:
        p = require_finite("transitions", as_tensor("transitions", transitions).to(DTYPE))
        if p.ndim != 3 or p.shape[0] != p.shape[2]:
            raise ValueError(f"transitions must have shape (S, A, S), got {tuple(p.shape)}")
        if bool((p < 0).any()) or not torch.allclose(p.sum(2), torch.ones_like(p[..., 0]), atol=1e-10):
            raise ValueError("transitions[s, a] must be probability vectors (non-negative, sum 1)")
        n_states, n_actions = p.shape[0], p.shape[1]
        if n_actions < 2:
            raise ValueError(f"transitions must allow at least 2 actions, got {n_actions}")
        r = require_finite("rewards", as_tensor("rewards", rewards).to(DTYPE))
        if r.shape != (n_states, n_actions):
            raise ValueError(f"rewards must have shape ({n_states}, {n_actions}), got {tuple(r.shape)}")
        try:
            gamma_f = float(gamma)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"gamma must be a real number, got {gamma!r}") from exc
        if not 0.0 <= gamma_f < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {gamma_f}")
        rho = require_finite("initial", as_tensor("initial", initial).to(DTYPE))
        if rho.shape != (n_states,) or bool((rho < 0).any()) or abs(float(rho.sum()) - 1.0) > 1e-10:
            raise ValueError(f"initial must be a probability vector of length {n_states}")
        self.transitions, self.rewards, self.gamma, self.initial = p, r, gamma_f, rho
        self.n_states, self.n_actions = n_states, n_actions

    def __repr__(self) -> str:
        return f"FiniteMDP(n_states={self.n_states}, n_actions={self.n_actions}, gamma={self.gamma})"

    # -- the policy on this MDP ----------------------------------------------------------
    def states(self) -> Tensor:
        """The one-hot observations of all states, shape ``(S, S)``: row ``s`` is state ``s``."""
        return torch.eye(self.n_states, dtype=DTYPE)

    def _check_policy(self, policy: Policy) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
        if not policy.discrete or policy.stateless or policy.obs_dim != self.n_states:
            raise ValueError(
                f"policy must be a discrete policy on one-hot observations of length {self.n_states}"
            )
        if policy.n_actions != self.n_actions:
            raise ValueError(f"policy must have {self.n_actions} actions, got {policy.n_actions}")

    def policy_table(self, policy: Policy, theta: Tensor) -> Tensor:
        r""":math:`\pi_\theta(a\mid s)` as a table of shape ``(S, A)``; differentiable in ``theta``."""
        self._check_policy(policy)
        return policy._distribution(policy.check_theta(theta), self.states()).probs

    # -- exact evaluation -----------------------------------------------------------------
    def _solve(self, pi: Tensor) -> tuple[Tensor, Tensor]:
        """Return :math:`(I - \\gamma P_\\pi)` and :math:`r_\\pi` for a policy table."""
        p_pi = torch.einsum("sa,sat->st", pi, self.transitions)
        r_pi = (pi * self.rewards).sum(1)
        return torch.eye(self.n_states, dtype=DTYPE) - self.gamma * p_pi, r_pi

    def state_values(self, policy: Policy, theta: Tensor) -> Tensor:
        r""":math:`V_\theta = (I-\gamma P_\pi)^{-1} r_\pi`, by a linear solve; differentiable."""
        system, r_pi = self._solve(self.policy_table(policy, theta))
        return torch.linalg.solve(system, r_pi)

    def action_values(self, policy: Policy, theta: Tensor) -> Tensor:
        r""":math:`Q_\theta(s,a) = R(s,a) + \gamma \sum_{s'} P(s'\mid s,a) V_\theta(s')`, shape ``(S, A)``."""
        return self.rewards + self.gamma * self.transitions @ self.state_values(policy, theta)

    def advantages(self, policy: Policy, theta: Tensor) -> Tensor:
        r""":math:`A_\theta(s,a) = Q_\theta(s,a) - V_\theta(s)`, shape ``(S, A)``."""
        return self.action_values(policy, theta) - self.state_values(policy, theta).unsqueeze(1)

    def expected_return(self, policy: Policy, theta: Tensor) -> Tensor:
        r""":math:`J(\theta) = \rho_0^\top V_\theta = \mathbb{E}[\sum_t \gamma^t r_t]`; differentiable."""
        return self.initial @ self.state_values(policy, theta)

    def exact_gradient(self, policy: Policy, theta: Tensor) -> Tensor:
        r""":math:`\nabla_\theta J(\theta)`, by automatic differentiation through the linear solve."""
        self._check_policy(policy)
        theta = policy.check_theta(theta).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.expected_return(policy, theta), theta)
        return grad

    def state_visitation(self, policy: Policy, theta: Tensor) -> Tensor:
        r""":math:`d_\theta = (1-\gamma)\,\rho_0^\top (I-\gamma P_\pi)^{-1}`, a probability vector over states."""
        system, _ = self._solve(self.policy_table(policy, theta))
        return (1.0 - self.gamma) * torch.linalg.solve(system.T, self.initial)

    def fisher(self, policy: Policy, theta: Tensor) -> Tensor:
        r"""Kakade's Fisher matrix :math:`\sum_s d_\theta(s) F_s(\theta)` (exact; no sampling).

        Each :math:`F_s` is the exact score outer product of
        :func:`npgbook.fisher.fisher_score_outer` at the one-hot observation of :math:`s`.
        """
        self._check_policy(policy)
        theta = policy.check_theta(theta).detach()
        weights = self.state_visitation(policy, theta).detach()
        obs = self.states()
        return sum(
            (w * fisher_score_outer(policy, theta, obs[s : s + 1]) for s, w in enumerate(weights)),
            torch.zeros(theta.shape[0], theta.shape[0], dtype=DTYPE),
        )

    def visitation_kl(self, policy: Policy, theta: Tensor, theta_new: Tensor) -> Tensor:
        r""":math:`\sum_s d_\theta(s)\, D_{\mathrm{KL}}(\pi_\theta(\cdot\mid s)\,\|\,\pi_{\theta_{new}}(\cdot\mid s))`.

        The states are weighted by the visitation of the *old* policy :math:`\theta`, the
        policy that collected the data; differentiable in ``theta_new``. Its Hessian in
        ``theta_new`` at ``theta`` is :meth:`fisher`.
        """
        self._check_policy(policy)
        theta = policy.check_theta(theta, "theta").detach()
        theta_new = policy.check_theta(theta_new, "theta_new")
        obs = self.states()
        per_state = kl_divergence(policy._distribution(theta, obs), policy._distribution(theta_new, obs))
        return self.state_visitation(policy, theta) @ per_state

    def optimal_values(self, tol: float = 1e-12, max_iter: int = 100_000) -> Tensor:
        r""":math:`V^*` by value iteration :math:`V \leftarrow \max_a [R + \gamma P V]` until the sup-norm change is ≤ ``tol``."""
        values = torch.zeros(self.n_states, dtype=DTYPE)
        for _ in range(require_int("max_iter", max_iter)):
            new = (self.rewards + self.gamma * self.transitions @ values).max(1).values
            if float((new - values).abs().max()) <= tol:
                return new
            values = new
        raise RuntimeError(f"value iteration did not reach tol={tol} in {max_iter} iterations")

    def optimal_return(self) -> float:
        r""":math:`J^* = \rho_0^\top V^*`, the best return any policy can reach."""
        return float(self.initial @ self.optimal_values())


def two_state_mdp(
    stay_rewards: tuple[float, float] = (1.0, 2.0), gamma: float = 0.9, switch_reward: float = 0.0
) -> FiniteMDP:
    r"""Two states, two actions (0 = stay, 1 = switch), deterministic moves, start in state 0.

    Staying in state :math:`i` earns ``stay_rewards[i]``; switching earns ``switch_reward`` and
    moves to the other state. With the defaults the optimal policy switches out of state 0
    once and then stays in state 1 forever, while a policy that mostly stays in state 0
    (and mostly leaves state 1) sees almost nothing of state 1: the setting of Kakade's
    plateau example (Kakade, 2001).
    """
    p = torch.zeros(2, 2, 2, dtype=DTYPE)
    p[0, 0, 0] = p[1, 0, 1] = 1.0  # stay
    p[0, 1, 1] = p[1, 1, 0] = 1.0  # switch
    r = torch.tensor([[stay_rewards[0], switch_reward], [stay_rewards[1], switch_reward]], dtype=DTYPE)
    return FiniteMDP(p, r, gamma, torch.tensor([1.0, 0.0], dtype=DTYPE))
