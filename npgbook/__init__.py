"""npgbook: the library behind the executable book on natural policy gradients.

Modules follow the lecture note (van Heeswijk, 2022):

* :mod:`npgbook.policies` -- policy families with flat parameter vectors;
* :mod:`npgbook.divergences` -- KL divergence, closed form and Monte Carlo (§3);
* :mod:`npgbook.fisher` -- the Fisher matrix three ways, Fisher-vector products (§3-§4);
* :mod:`npgbook.solvers` -- conjugate gradient on matrix-free operators (§5-§6);
* :mod:`npgbook.natural` -- the natural-gradient step :math:`\\sqrt{2\\epsilon/g^\\top F^{-1}g}\\,F^{-1}g` (§5);
* :mod:`npgbook.envs`, :mod:`npgbook.plots` -- CartPole observations and figure style.
"""

from . import bandit, envs, plots
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
    "bandit",
    "conjugate_gradient",
    "envs",
    "fisher_categorical",
    "fisher_gaussian",
    "fisher_kl_hessian",
    "fisher_score_outer",
    "fisher_vector_product",
    "kl_divergence",
    "kl_monte_carlo",
    "natural_gradient",
    "natural_step",
    "plots",
    "policy_kl",
    "sample_actions",
    "score_vectors",
]
