r"""Section 5.10: Algorithm 1 with the note's Gaussian policy on Pendulum-v1, update by update.

The policy is :class:`~npgbook.policies.MLPGaussianPolicy`,
:math:`\pi_\theta(\cdot\mid s) = \mathcal N(\mu_w(s), \sigma^2)` with a state-independent
:math:`\sigma = e^{\ell}`. Its Fisher matrix splits into a block for the mean network,
:math:`\mathbb E_s[J^\top J]/\sigma^2` with :math:`J = \partial\mu_w(s)/\partial w`, and
:math:`2` for :math:`\ell`. For two such policies with one :math:`\sigma` each the KL divergence
splits the same way,

.. math::

    D_{KL}(\pi_k\|\pi_{k+1}) = \underbrace{\mathbb E_s\frac{(\mu_{k+1}(s)-\mu_k(s))^2}{2\sigma_{k+1}^2}}_{\text{mean part}}
    + \underbrace{\ell_{k+1}-\ell_k + \frac{\sigma_k^2}{2\sigma_{k+1}^2} - \frac12}_{\text{spread part}},

so an update that spends a KL budget :math:`\delta` can move the mean action by at most
:math:`\operatorname{rms}\Delta\mu \le \sigma_{k+1}\sqrt{2\delta}`: the narrower the policy, the
smaller the change of the mean per unit of KL ("cautious at steep slopes").

* :func:`probe_states` -- a fixed grid of Pendulum states on which the mean action is read;
* :func:`run_seed` -- train one seed with :class:`~npgbook.rl.Trainer` and record, for every
  update, :math:`\sigma` before and after, the realized KL on the batch, the rms change of
  the mean action on the batch states and on the probe states (all means read through the same,
  frozen, observation normalization);
* :func:`gaussian_kl_parts` -- the two parts of the KL above, in closed form;
* :func:`log_slope` -- the least-squares slope of :math:`\log y` on :math:`\log x`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .._checks import require_int
from ..rl import TrainConfig, Trainer

#: Section 5.10's run: gamma 0.9 as in the RL Zoo's Pendulum-v1 settings, 2,048 steps an update.
PENDULUM_CONFIG = TrainConfig(
    algo="npg", env_id="Pendulum-v1", gamma=0.9, total_steps=60_000, num_envs=8, steps_per_env=256
)


def probe_states(n_angles: int = 16, speeds: Sequence[float] = (-4.0, -2.0, 0.0, 2.0, 4.0)) -> np.ndarray:
    r"""Pendulum observations :math:`(\cos\phi, \sin\phi, \dot\phi)` on a grid of angles and speeds.

    Returns:
        array of shape ``(n_angles * len(speeds), 3)``, float64.
    """
    n_angles = require_int("n_angles", n_angles)
    phi = np.linspace(-math.pi, math.pi, n_angles, endpoint=False)
    speeds_a = np.asarray(speeds, dtype=np.float64)
    if speeds_a.ndim != 1 or speeds_a.size == 0:
        raise ValueError(f"speeds must be a non-empty 1-D sequence, got {speeds!r}")
    p, v = np.meshgrid(phi, speeds_a, indexing="ij")
    return np.stack([np.cos(p).ravel(), np.sin(p).ravel(), v.ravel()], axis=1)


def gaussian_kl_parts(
    mean_old: np.ndarray, mean_new: np.ndarray, log_std_old: np.ndarray, log_std_new: np.ndarray
) -> tuple[float, float]:
    r"""The mean part and the spread part of the KL between two Gaussian policies.

    The KL is :math:`D_{KL}(\mathcal N(\mu_k,\sigma_k^2)\|\mathcal N(\mu_{k+1},\sigma_{k+1}^2))`.

    Averaged over the rows (states) of ``mean_old``/``mean_new`` (shape ``(M, m)``) and summed
    over the ``m`` action dimensions; ``log_std_*`` have shape ``(m,)``. Their sum is the KL.
    """
    mo, mn = np.asarray(mean_old, np.float64), np.asarray(mean_new, np.float64)
    lo, ln = np.asarray(log_std_old, np.float64), np.asarray(log_std_new, np.float64)
    if mo.shape != mn.shape or mo.ndim != 2 or lo.shape != (mo.shape[1],) or ln.shape != lo.shape:
        raise ValueError("means must be (M, m) of one shape and log stds (m,)")
    var_new = np.exp(2.0 * ln)
    mean_part = float(np.mean(np.sum((mn - mo) ** 2 / (2.0 * var_new), axis=1)))
    spread_part = float(np.sum(ln - lo + np.exp(2.0 * lo) / (2.0 * var_new) - 0.5))
    return mean_part, spread_part


@dataclass
class SeedRun:
    """One seed's run, one entry per update (iteration) unless said otherwise.

    Attributes:
        seed: the run's seed.
        env_steps: environment steps after the update's batch.
        last20: mean return of the last 20 finished episodes.
        kl: realized KL on the batch states (0 if the update was skipped).
        sigma_before, sigma_after: :math:`\\sigma` before and after the update.
        mean_shift: rms change of the mean action on the probe states.
        batch_shift: rms change of the mean action on the update's batch states (the states the
            KL is measured on), with the normalizer statistics the update saw.
        kl_mean, kl_spread: the two parts of the KL on the probe states.
        accepted: whether the update changed the parameters.
        returns, end_steps: every finished episode's return and the step it ended at.
        seconds: wall time of the run.
    """

    seed: int
    env_steps: list[int] = field(default_factory=list)
    last20: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    sigma_before: list[float] = field(default_factory=list)
    sigma_after: list[float] = field(default_factory=list)
    mean_shift: list[float] = field(default_factory=list)
    batch_shift: list[float] = field(default_factory=list)
    kl_mean: list[float] = field(default_factory=list)
    kl_spread: list[float] = field(default_factory=list)
    accepted: list[bool] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    end_steps: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-update lists as float64 arrays."""
        names = ("env_steps", "last20", "kl", "sigma_before", "sigma_after", "mean_shift", "batch_shift",
                 "kl_mean", "kl_spread")
        return {n: np.asarray(getattr(self, n), dtype=np.float64) for n in names}


def _probe_mean(trainer: Trainer, theta: torch.Tensor, probe: np.ndarray, normalizer: object) -> np.ndarray:
    obs = probe if normalizer is None else normalizer(probe)  # type: ignore[operator]
    with torch.no_grad():
        mean, _ = trainer.policy.mean_log_std(theta, torch.as_tensor(obs, dtype=theta.dtype))
    return mean.double().numpy()


def _rms(delta: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(delta**2, axis=1)))) if delta.size else float("nan")


def run_seed(config: TrainConfig, seed: int, probe: np.ndarray | None = None) -> SeedRun:
    """Train ``config`` with ``seed`` and record every update (see :class:`SeedRun`)."""
    if getattr(config, "algo", None) is None:
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    probe = probe_states() if probe is None else np.asarray(probe, dtype=np.float64)
    trainer = Trainer(config.replace(seed=require_int("seed", seed, minimum=0)))
    if not hasattr(trainer.policy, "act_dim"):
        trainer.close()
        raise ValueError(f"run_seed needs a continuous-action environment, got {config.env_id!r}")
    out = SeedRun(seed=seed)
    k = trainer.policy.n_net_params
    collect = trainer.sampler.collect
    seen: dict[str, np.ndarray] = {}

    def collect_and_keep(*args: object, **kwargs: object) -> object:
        batch = collect(*args, **kwargs)  # type: ignore[arg-type]
        raw = batch.raw_obs if batch.raw_obs is not None else batch.obs
        seen["states"] = raw[:-1][batch.valid].double().numpy()
        return batch

    trainer.sampler.collect = collect_and_keep  # type: ignore[method-assign]
    try:
        while trainer.sampler.total_steps < config.total_steps:
            frozen = copy.deepcopy(trainer.normalizer)  # the statistics this update sees
            theta_old = trainer.theta.clone()
            record = trainer.iteration()
            theta_new = trainer.theta
            mu_old = _probe_mean(trainer, theta_old, probe, frozen)
            mu_new = _probe_mean(trainer, theta_new, probe, frozen)
            states = seen["states"]
            batch_delta = _probe_mean(trainer, theta_new, states, frozen) - _probe_mean(
                trainer, theta_old, states, frozen
            )
            ls_old = theta_old[k:].double().numpy()
            ls_new = theta_new[k:].double().numpy()
            kl_mean, kl_spread = gaussian_kl_parts(mu_old, mu_new, ls_old, ls_new)
            out.env_steps.append(record.env_steps)
            out.last20.append(float("nan") if record.last20_return is None else record.last20_return)
            out.kl.append(record.kl)
            out.sigma_before.append(float(np.exp(ls_old).mean()))
            out.sigma_after.append(float(np.exp(ls_new).mean()))
            out.mean_shift.append(_rms(mu_new - mu_old))
            out.batch_shift.append(_rms(batch_delta))
            out.kl_mean.append(kl_mean)
            out.kl_spread.append(kl_spread)
            out.accepted.append(record.accepted)
    finally:
        trainer.close()
    out.returns = list(trainer.episodes.returns)
    out.end_steps = list(trainer.episodes.end_steps)
    out.seconds = trainer.history[-1].wall_time if trainer.history else 0.0
    return out


def log_slope(x: np.ndarray, y: np.ndarray) -> float:
    r"""Least-squares slope :math:`b` of :math:`\log y = a + b \log x` (positive ``x``, ``y``)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError("x and y must be 1-D arrays of one length >= 2")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive")
    lx, ly = np.log(x), np.log(y)
    lx = lx - lx.mean()
    return float(np.dot(lx, ly - ly.mean()) / np.dot(lx, lx))
