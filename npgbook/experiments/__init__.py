"""The book's experiments: the computations behind the chapters' figures and tables.

* :mod:`npgbook.experiments.ascent` -- vanilla and natural gradient ascent loops on exact
  objectives (§1-§5);
* :mod:`npgbook.experiments.baseline` -- chapter 1's REINFORCE baseline: exact per-sample variance,
  the best constant baseline, paired batch comparisons (§1);
* :mod:`npgbook.experiments.trust_region` -- Euclidean and KL-constrained steps solved with scipy
  (§2, §5);
* :mod:`npgbook.experiments.taylor` -- Lagrangian relaxation and the Taylor models of :math:`J` and
  the KL (§4);
* :mod:`npgbook.experiments.brittleness` -- singular sampled Fisher matrices, damping, undamped CG (§6);
* :mod:`npgbook.experiments.cost` -- what building and inverting :math:`F` costs, dense, by CG and
  by K-FAC (§4, §6);
* :mod:`npgbook.experiments.variants` -- NPG against Adam and the damping variants on CartPole, and
  how Adam's step responds to curvature (§6);
* :mod:`npgbook.experiments.kl_fisher` -- chapter 3's KL and Fisher experiments: rays, sampled KL,
  coordinates with F = I (§3);
* :mod:`npgbook.experiments.lagrangian` -- chapter 4's penalty, sampled-Fisher, definiteness,
  locality and cost experiments (§4);
* :mod:`npgbook.experiments.exact_natural` -- chapter 5's natural step on exact problems: budget,
  realized KL, invariance, plateaus and peaks (§5-§6);
* :mod:`npgbook.experiments.algorithm1` -- section 5.9's look inside one update of Algorithm 1 on
  frozen batches of trained CartPole policies: damping and CG iterations (§5);
* :mod:`npgbook.experiments.gaussian_control` -- section 5.10's Gaussian policy on Pendulum-v1:
  sigma, realized KL and the change of the mean action, update by update (§5).

Each builds on the core library and on :mod:`npgbook.problems`; nothing in the core imports them.
"""

from . import (
    algorithm1,
    ascent,
    baseline,
    brittleness,
    cost,
    exact_natural,
    gaussian_control,
    kl_fisher,
    lagrangian,
    taylor,
    trust_region,
    variants,
)

__all__ = [
    "algorithm1",
    "ascent",
    "baseline",
    "brittleness",
    "cost",
    "exact_natural",
    "gaussian_control",
    "kl_fisher",
    "lagrangian",
    "taylor",
    "trust_region",
    "variants",
]
