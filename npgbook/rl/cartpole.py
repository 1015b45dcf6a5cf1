r"""Gymnasium's numpy-vectorized CartPole with a leaner ``step``: the same numbers, fewer numpy calls.

:class:`FastCartPoleVectorEnv` is ``gymnasium.envs.classic_control.cartpole.CartPoleVectorEnv``
(its spaces, ``reset``, seeding, rendering and ``NEXT_STEP`` autoreset) with ``step`` rewritten to
do the identical floating-point operations in place on one preallocated state array. It skips
the per-call action-space check (the sampler's actions are in range by construction) and the
reset of finished copies when no copy finished (a random draw of size 0 leaves the generator as
it was). The tests check that its observations, rewards and flags are *bitwise* those of the
gymnasium class on the same seed. Per call on 8 copies it costs about half as much.

The Euler step, with force :math:`F = \pm 10`, is gymnasium's:

.. math::

    a_\theta = \frac{g\sin\theta - \cos\theta\,\tau_F}{l\,(4/3 - m_p\cos^2\theta / m)}, \quad
    \tau_F = \frac{F + m_p l\,\dot\theta^2\sin\theta}{m}, \quad
    a_x = \tau_F - \frac{m_p l\, a_\theta \cos\theta}{m},

then :math:`x \mathrel{+}= 0.02\,\dot x`, :math:`\dot x \mathrel{+}= 0.02\,a_x`,
:math:`\theta \mathrel{+}= 0.02\,\dot\theta`, :math:`\dot\theta \mathrel{+}= 0.02\,a_\theta`;
terminated when :math:`|x| > 2.4` or :math:`|\theta| > 12^\circ`, truncated at 500 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv


class FastCartPoleVectorEnv(CartPoleVectorEnv):
    """``CartPoleVectorEnv`` with the same results per step at fewer numpy calls (see the module)."""

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        state = self.state
        assert state is not None, "Call reset before using step method."
        x, x_dot, theta, theta_dot = state  # views: updated in place below
        force = np.sign(action - 0.5) * self.force_mag
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        if self.kinematics_integrator == "euler":
            x += self.tau * x_dot
            x_dot += self.tau * xacc
            theta += self.tau * theta_dot
            theta_dot += self.tau * thetaacc
        else:  # semi-implicit euler
            x_dot += self.tau * xacc
            x += self.tau * x_dot
            theta_dot += self.tau * thetaacc
            theta += self.tau * theta_dot
        terminated = (np.abs(x) > self.x_threshold) | (np.abs(theta) > self.theta_threshold_radians)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        if self._sutton_barto_reward:
            reward = -terminated.astype(np.float32)
        else:
            reward = np.ones(self.num_envs, dtype=np.float32)
        prev = self.prev_done
        if prev.any():  # the copies that ended on the last call start anew (NEXT_STEP autoreset)
            state[:, prev] = self.np_random.uniform(low=self.low, high=self.high, size=(4, int(prev.sum())))
            self.steps[prev] = 0
            reward[prev] = 0.0
            terminated[prev] = False
            truncated[prev] = False
        self.prev_done = terminated | truncated
        return state.T.astype(np.float32), reward, terminated, truncated, {}
