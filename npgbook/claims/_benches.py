"""Test benches shared by the claims of several chapters (the setups the chapters use)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from ..experiments.ascent import PlateauEscape, plateau_escape
from ..fisher import (
    fisher_gaussian,
)
from ..policies import GaussianPolicy, MLPCategoricalPolicy
from ..problems import envs
from ..problems import mdp as finite_mdp
from ..problems.bandit import GaussianBandit
from ._registry import _float64

# ----------------------------------------------------------------------------------------
# Shared test benches (the ones the chapters use), built once.

_BANDIT = GaussianBandit(target=2.0, width=0.5)


def _bandit_fns(policy: GaussianPolicy) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    return (lambda th: _BANDIT.expected_reward(policy, th)), (lambda th: _BANDIT.exact_gradient(policy, th))


def _bandit_fisher(policy: GaussianPolicy, parameterization: str) -> Callable[[Tensor], Tensor]:
    return lambda th: fisher_gaussian(*[float(x) for x in policy.mean_std(th)], parameterization)  # type: ignore[arg-type]


def _two_state() -> tuple[finite_mdp.FiniteMDP, finite_mdp.TabularSoftmaxPolicy]:
    return finite_mdp.two_state_mdp(stay_rewards=(1.0, 2.0), gamma=0.9), finite_mdp.TabularSoftmaxPolicy(2, 2)


def _plateau_start(tabular: finite_mdp.TabularSoftmaxPolicy, gap: float = 1.75) -> Tensor:
    return tabular.params([[0.0, -gap], [-gap, 0.0]])


def _matvec(matrix: Tensor) -> Callable[[Tensor], Tensor]:
    """The operator v ↦ M v (a singular Fisher matrix is solved by conjugate gradient on its range)."""
    return lambda v: matrix @ v


def _plateau_gradient(
    mdp: finite_mdp.FiniteMDP, tabular: finite_mdp.TabularSoftmaxPolicy, theta: Tensor
) -> Tensor:
    """The exact gradient of the two-state MDP's return (the book's setup for the plateau checks)."""
    return mdp.exact_gradient(tabular, theta)


@functools.cache
def _plateau_run(
    gradient: Callable[..., Tensor] = _plateau_gradient,
    alpha: float = 1.0,
    n_iter: int = 10_000,
    gap: float = 1.75,
) -> PlateauEscape:
    """Chapter 2's plateau run (:func:`~npgbook.experiments.ascent.plateau_escape`): vanilla ascent
    on the two-state MDP from the logit gap ``gap`` until 0.9 J*, with the plateau J = 10 ± 0.1."""
    with _float64():
        mdp, tabular = _two_state()
        return plateau_escape(
            lambda th: mdp.expected_return(tabular, th),
            lambda th: gradient(mdp, tabular, th),
            _plateau_start(tabular, gap),
            alpha,
            n_iter,
            target=0.9 * mdp.optimal_return(),
            plateau=10.0,
            band=0.1,
        )


def _plateau_vanilla(
    gradient: Callable[..., Tensor] = _plateau_gradient,
    alpha: float = 1.0,
    n_iter: int = 10_000,
    gap: float = 1.75,
) -> tuple[int | None, float]:
    """Vanilla ascent (α = 1) on chapter 2's two-state plateau: iterations to 0.9 J* (``None`` if the
    10,000 iterations never reach it), and the share of the updates spent with J within 0.1 of 10."""
    run = _plateau_run(gradient, alpha, n_iter, gap)
    return run.reached, run.share


@functools.cache
def _cartpole_obs(n: int = 256) -> Tensor:
    return envs.cartpole_observations(n, seed=0)


def _mlp_bench(
    hidden: tuple[int, ...] = (16,), n_obs: int = 256, seed: int = 2
) -> tuple[MLPCategoricalPolicy, Tensor, Tensor, Tensor]:
    """An MLP policy on CartPole states and the gradient of a random advantage table."""
    obs = _cartpole_obs(n_obs)
    mlp = MLPCategoricalPolicy(4, 2, hidden)
    theta = mlp.initial_params(seed=0, last_layer_scale=1.0)
    adv = torch.randn(obs.shape[0], 2, generator=torch.Generator().manual_seed(seed))
    grad = torch.func.grad(lambda th: (mlp.distribution(th, obs).probs * adv).sum(1).mean())(theta)
    return mlp, theta, obs, grad


