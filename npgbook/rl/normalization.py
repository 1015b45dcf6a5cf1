r"""Running observation normalization: :math:`\tilde s = \operatorname{clip}((s - m) / \sqrt{v + \epsilon}, \pm c)`.

Continuous-control tasks mix observations of very different scales (Pendulum: :math:`\cos`,
:math:`\sin` in :math:`[-1, 1]` and an angular velocity in :math:`[-8, 8]`); a policy network
learns much faster on standardized inputs, and peers' benchmarks report that it decides success.
The mean :math:`m` and variance :math:`v` are running estimates over every real environment
step seen so far, combined batch by batch with the parallel formula of Chan, Golub and LeVeque:
for counts :math:`n_a, n_b`, means :math:`m_a, m_b` and sums of squared deviations
:math:`M_a, M_b`, with :math:`\Delta = m_b - m_a`,

.. math::

    n = n_a + n_b, \quad m = m_a + \Delta\,\frac{n_b}{n}, \quad
    M = M_a + M_b + \Delta^2 \frac{n_a n_b}{n}, \quad v = M / n .

**Frozen during an update.** The statistics used to act during a batch are the ones the update
sees: the policy :math:`\pi_{\theta_k}` is a function of the *normalized* observation, so changing
:math:`m, v` in the middle of a batch or of an update would change the policy whose KL the step
caps. :class:`~npgbook.rl.Trainer` therefore updates them only after the policy and value updates,
with the raw observations of the finished batch. They are part of the trained policy and are
saved with it (:meth:`RunningNormalizer.state_dict`).
"""

from __future__ import annotations

import numpy as np

from .._checks import require_int, require_positive


class RunningNormalizer:
    """Running mean and variance of vectors of size ``dim``, and the map they define.

    Args:
        dim: the observation size.
        clip: :math:`c`, the bound of the normalized values.
        epsilon: :math:`\\epsilon`, added to the variance (a constant coordinate maps to 0).
    """

    def __init__(self, dim: int, *, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        self.dim = require_int("dim", dim)
        self.clip = require_positive("clip", clip)
        self.epsilon = require_positive("epsilon", epsilon)
        self.count = 0
        self.mean = np.zeros(self.dim)
        self._m2 = np.zeros(self.dim)  # sum of squared deviations from the mean

    @property
    def var(self) -> np.ndarray:
        """The (population) variance of everything seen; 1 before the first update."""
        return self._m2 / self.count if self.count > 0 else np.ones(self.dim)

    def update(self, x: np.ndarray) -> None:
        """Add the rows of ``x`` (shape ``(n, dim)``) to the statistics."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("x must be finite")
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        n_a, n = self.count, self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + delta**2 * (n_a * n_b / n)
        self.count = n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The normalized ``x`` (any shape ending in ``dim``), in ``x``'s floating type."""
        x = np.asarray(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        scale = np.sqrt(self.var + self.epsilon)
        return np.clip((x - self.mean) / scale, -self.clip, self.clip).astype(dtype, copy=False)

    def state_dict(self) -> dict[str, object]:
        """Everything needed to rebuild the map: ``{"count", "mean", "m2", "clip", "epsilon"}``."""
        return {
            "count": self.count,
            "mean": self.mean.tolist(),
            "m2": self._m2.tolist(),
            "clip": self.clip,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, object]) -> RunningNormalizer:
        """The normalizer that :meth:`state_dict` described."""
        mean = np.asarray(state["mean"], dtype=np.float64)
        out = cls(mean.shape[0], clip=float(state["clip"]), epsilon=float(state["epsilon"]))  # type: ignore[arg-type]
        out.count = int(state["count"])  # type: ignore[call-overload]
        out.mean = mean
        out._m2 = np.asarray(state["m2"], dtype=np.float64)
        return out
