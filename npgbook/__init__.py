"""npgbook: the library behind the executable book on natural policy gradients.

One module per idea of the lecture note (van Heeswijk, 2022), in the order the book meets them:

* :mod:`npgbook.policies` -- policy families with flat parameter vectors;
* :mod:`npgbook.bandit` -- a Gaussian-bump bandit with closed-form :math:`J` and exact gradient (§1-§2);
* :mod:`npgbook.ascent` -- vanilla and natural gradient ascent loops on exact objectives (§1-§5);
* :mod:`npgbook.trust_region` -- Euclidean and KL-constrained steps solved with scipy (§2, §5);
* :mod:`npgbook.mdp` -- exact finite MDPs, tabular softmax policies, Kakade's Fisher matrix (§2, §5);
* :mod:`npgbook.divergences` -- KL divergence, closed form and Monte Carlo (§3);
* :mod:`npgbook.fisher` -- the Fisher matrix three ways, Fisher-vector products (§3-§4);
* :mod:`npgbook.metric` -- the Fisher matrix as a metric: KL balls, changes of coordinates (§3);
* :mod:`npgbook.taylor` -- Lagrangian relaxation and the Taylor models of :math:`J` and the KL (§4);
* :mod:`npgbook.fisher_cost` -- sampled Fisher estimators and what building :math:`F` costs (§4);
* :mod:`npgbook.solvers` -- conjugate gradient on matrix-free operators (§5-§6);
* :mod:`npgbook.natural` -- the natural-gradient step :math:`\\sqrt{2\\epsilon/g^\\top F^{-1}g}\\,F^{-1}g` (§5);
* :mod:`npgbook.rl` -- Algorithm 1 (NPG), TRPO and REINFORCE on gymnasium environments (§5);
* :mod:`npgbook.brittleness`, :mod:`npgbook.cost`, :mod:`npgbook.kfac`, :mod:`npgbook.variants` --
  the problems of §6: singular Fisher matrices and damping, the cost of :math:`F^{-1}g`, K-FAC, Adam;
* :mod:`npgbook.claims` -- the note's checkable claims, each with the check that decides it (§7);
* :mod:`npgbook.envs`, :mod:`npgbook.plots` -- CartPole observations and figure style.
"""

from . import (
    ascent,
    bandit,
    brittleness,
    claims,
    cost,
    envs,
    fisher_cost,
    kfac,
    mdp,
    metric,
    plots,
    rl,
    taylor,
    trust_region,
    variants,
)
from .divergences import MonteCarloEstimate, kl_divergence, kl_monte_carlo, policy_kl
from .fisher import (
    fisher_categorical,
    fisher_gaussian,
    fisher_kl_hessian,
    fisher_score_outer,
    fisher_vector_product,
    score_vectors,
)
from .natural import NaturalStep, natural_gradient, natural_step
from .policies import (
    CategoricalPolicy,
    GaussianPolicy,
    MLPCategoricalPolicy,
    Policy,
    sample_actions,
)
from .solvers import CGResult, NotPositiveDefiniteError, conjugate_gradient

__version__ = "0.1.0"

__all__ = [
    "CGResult",
    "CategoricalPolicy",
    "GaussianPolicy",
    "MLPCategoricalPolicy",
    "MonteCarloEstimate",
    "NaturalStep",
    "NotPositiveDefiniteError",
    "Policy",
    "__version__",
    "ascent",
    "bandit",
    "brittleness",
    "claims",
    "conjugate_gradient",
    "cost",
    "envs",
    "fisher_categorical",
    "fisher_cost",
    "fisher_gaussian",
    "fisher_kl_hessian",
    "fisher_score_outer",
    "fisher_vector_product",
    "kfac",
    "kl_divergence",
    "kl_monte_carlo",
    "mdp",
    "metric",
    "natural_gradient",
    "natural_step",
    "plots",
    "policy_kl",
    "rl",
    "sample_actions",
    "score_vectors",
    "taylor",
    "trust_region",
    "variants",
]
