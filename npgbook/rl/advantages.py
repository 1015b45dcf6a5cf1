r"""Advantage estimates :math:`\hat A_t` (Algorithm 1, line 2): GAE(:math:`\lambda`) with a value baseline.

Generalized advantage estimation (Schulman et al., 2016) averages the :math:`n`-step
advantage estimates with weights :math:`(1-\lambda)\lambda^{n-1}`:

.. math::

    \delta_t = r_t + \gamma\, (1 - \text{term}_t)\, V(s_{t+1}) - V(s_t), \qquad
    \hat A_t = \delta_t + \gamma\lambda\, (1 - \text{done}_t)\, \hat A_{t+1},

where :math:`\text{done}_t = \text{term}_t \lor \text{trunc}_t`. The two ways an episode
can end are treated differently:

* **terminated** (the pole fell): the state after :math:`s_t` has value 0, so nothing is
  bootstrapped;
* **truncated** (the 500-step time limit): the episode would have continued, so the
  value of the last observation :math:`V(s_{t+1})` stands in for the missing future.

Either way the recursion stops at the episode's end. :math:`\lambda = 0` gives the
one-step TD error, :math:`\lambda = 1` the Monte Carlo return minus the baseline
(bootstrapped at a truncation). The value targets are :math:`\hat A_t + V(s_t)`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._checks import require_positive


def _check_unit_interval(name: str, value: float) -> float:
    value = require_positive(name, value, allow_zero=True)
    if value > 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def gae(
    rewards: Tensor,
    values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    valid: Tensor | None = None,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    r"""GAE(:math:`\lambda`) advantages and value targets for time-major data.

    Args:
        rewards: :math:`r_t`, shape ``(T, N)``.
        values: :math:`V(s_t)` for ``t = 0..T``, shape ``(T + 1, N)``; ``values[t + 1]``
            is the value of the observation returned by step ``t`` -- at a truncated step,
            the episode's last observation.
        terminated, truncated: booleans, shape ``(T, N)``.
        valid: ``False`` marks autoreset slots that are not environment steps (see
            :mod:`npgbook.rl.rollout`); they get advantage 0. Default: all valid.
        gamma: discount :math:`\gamma \in [0, 1]`.
        lam: :math:`\lambda \in [0, 1]`.

    Returns:
        ``(advantages, returns)``, both of shape ``(T, N)`` and the dtype of ``values``;
        ``returns = advantages + values[:-1]`` (0 on invalid slots).
    """
    gamma = _check_unit_interval("gamma", gamma)
    lam = _check_unit_interval("lam", lam)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must have shape (T, N), got {tuple(rewards.shape)}")
    T, N = rewards.shape
    if values.shape != (T + 1, N):
        raise ValueError(f"values must have shape {(T + 1, N)}, got {tuple(values.shape)}")
    for name, tensor in (("terminated", terminated), ("truncated", truncated)):
        if tensor.shape != (T, N):
            raise ValueError(f"{name} must have shape {(T, N)}, got {tuple(tensor.shape)}")
    if valid is None:
        valid = torch.ones((T, N), dtype=torch.bool)
    elif valid.shape != (T, N):
        raise ValueError(f"valid must have shape {(T, N)}, got {tuple(valid.shape)}")
    r = rewards.detach().cpu().numpy().astype(np.float64)
    v = values.detach().cpu().numpy().astype(np.float64)
    if not (np.isfinite(r).all() and np.isfinite(v).all()):
        raise ValueError("rewards and values must be finite")
    term = terminated.cpu().numpy().astype(bool)
    cont = ~(term | truncated.cpu().numpy().astype(bool))  # the episode goes on after step t
    ok = valid.cpu().numpy().astype(bool)
    delta = r + gamma * np.where(term, 0.0, v[1:]) - v[:-1]
    adv = np.zeros((T, N))
    running = np.zeros(N)
    for t in range(T - 1, -1, -1):
        running = np.where(ok[t], delta[t] + gamma * lam * np.where(cont[t], running, 0.0), 0.0)
        adv[t] = running
    returns = np.where(ok, adv + v[:-1], 0.0)
    out = values.dtype
    return torch.from_numpy(adv).to(out), torch.from_numpy(returns).to(out)


def normalize_advantages(advantages: Tensor, *, rtol: float = 1e-6) -> Tensor:
    r"""Center and scale advantages to mean 0 and standard deviation 1.

    Centering is the usual baseline trick; scaling only changes the length of
    :math:`\hat g` (which the natural step divides out anyway). When the advantages are
    all equal -- their spread is below ``rtol`` times their size, so what is left after
    centering is rounding noise -- the result is all zeros rather than noise divided by
    a tiny standard deviation: the gradient is then exactly 0 and no update is made.
    """
    if advantages.ndim != 1 or advantages.shape[0] == 0:
        raise ValueError(f"advantages must be a non-empty 1-D tensor, got shape {tuple(advantages.shape)}")
    if not bool(torch.isfinite(advantages).all()):
        raise ValueError("advantages must be finite")
    mean = advantages.mean()
    centered = advantages - mean
    std = centered.pow(2).mean().sqrt()
    scale = float(advantages.abs().max())
    if float(std) <= rtol * max(scale, 1e-30) or float(std) == 0.0:
        return torch.zeros_like(advantages)
    return centered / std
