"""The book's worked problems: small tasks whose answers are known in closed form or exactly.

* :mod:`npgbook.problems.bandit` -- a Gaussian-bump bandit with closed-form :math:`J` and exact
  gradient (§1-§2);
* :mod:`npgbook.problems.mdp` -- exact finite MDPs, tabular softmax policies and Kakade's Fisher
  matrix (§2, §5);
* :mod:`npgbook.problems.envs` -- CartPole observations for the Fisher checks (§3-§4, §6).

They use the core library (:mod:`npgbook.policies`, :mod:`npgbook.fisher`, ...) and are not used by it.
"""

from . import bandit, envs, mdp

__all__ = ["bandit", "envs", "mdp"]
