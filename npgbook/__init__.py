"""npgbook: the library behind the executable book on natural policy gradients.

It follows the lecture note (van Heeswijk, 2022) and is laid out in three layers, so that what a
reader would reuse stands apart from what only the book needs.

**The core library** -- one module per idea of the note, none of which imports the layers below:

* :mod:`npgbook.policies` -- policy families with flat parameter vectors;
* :mod:`npgbook.divergences` -- KL divergence, closed form and Monte Carlo (§3);
* :mod:`npgbook.fisher` -- the Fisher matrix three ways, sampled estimates, Fisher-vector products
  (§3-§4);
* :mod:`npgbook.metric` -- the Fisher matrix as a metric: KL balls, changes of coordinates (§3);
* :mod:`npgbook.solvers` -- conjugate gradient on matrix-free operators (§5-§6);
* :mod:`npgbook.natural` -- the natural-gradient step
  :math:`\\sqrt{2\\epsilon/g^\\top F^{-1}g}\\,F^{-1}g` (§5);
* :mod:`npgbook.kfac` -- the Kronecker-factored Fisher approximation (§6);
* :mod:`npgbook.rl` -- Algorithm 1 (NPG), TRPO and the vanilla policy gradient on gymnasium
  environments (§5).

**The book's worked problems** (:mod:`npgbook.problems`): the Gaussian-bump bandit, exact finite
MDPs, CartPole observations -- tasks whose answers are known.

**The book's experiments** (:mod:`npgbook.experiments`): ascent loops, trust-region solves, Taylor
models, brittleness of sampled Fisher matrices, costs, and the §6 variants -- the computations
behind the chapters' figures.

**The claims** (:mod:`npgbook.claims`): every checkable statement of the note with the check that
decides it (§7), built on all three.
"""

from . import claims, experiments, kfac, metric, plots, problems, rl
from .divergences import MonteCarloEstimate, kl_divergence, kl_monte_carlo, policy_kl
from .fisher import (
    fisher_categorical,
    fisher_from_sample_hessians,
    fisher_from_samples,
    fisher_gaussian,
    fisher_kl_hessian,
    fisher_mlp_gaussian,
    fisher_score_outer,
    fisher_vector_product,
    score_vectors,
)
from .natural import NaturalStep, natural_gradient, natural_step
from .policies import (
    CategoricalPolicy,
    GaussianPolicy,
    MLPCategoricalPolicy,
    MLPGaussianPolicy,
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
    "MLPGaussianPolicy",
    "MonteCarloEstimate",
    "NaturalStep",
    "NotPositiveDefiniteError",
    "Policy",
    "__version__",
    "claims",
    "conjugate_gradient",
    "experiments",
    "fisher_categorical",
    "fisher_from_sample_hessians",
    "fisher_from_samples",
    "fisher_gaussian",
    "fisher_kl_hessian",
    "fisher_mlp_gaussian",
    "fisher_score_outer",
    "fisher_vector_product",
    "kfac",
    "kl_divergence",
    "kl_monte_carlo",
    "metric",
    "natural_gradient",
    "natural_step",
    "plots",
    "policy_kl",
    "problems",
    "rl",
    "sample_actions",
    "score_vectors",
]
