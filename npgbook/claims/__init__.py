r"""The note's checkable claims, each with a check that computes its verdict (chapter 7).

A *claim* is one statement or number of the lecture note (van Heeswijk, 2022) that a
computation can confirm or refute. :func:`claim` registers a check function under a key,
together with the note's section, a short paraphrase and the book chapter that examines the
claim in depth. A check returns a :class:`Verdict`: one of three outcomes,

* ``"holds"`` -- the computation agrees with the claim to the stated tolerance;
* ``"holds approximately"`` -- it agrees only in a limit (small steps, small budgets) or
  within a stated factor, which the evidence gives;
* ``"does not hold as stated"`` -- the computation contradicts the claim as written;

and the outcome is always *decided* by the numbers the check computes, through the pure
helpers :func:`grade` and :func:`decide`, never written down as a constant.

Every check takes its inputs as keyword arguments whose defaults are the book's setup;
:func:`run` runs one check with inputs changed, which is how each claim's counterfactual test
(``tests/test_claims_*.py::test_counterfactual_KEY``) shows that its verdict can flip.

The checks live with the chapter that examines them (``ch01_introduction`` ...), and compute
their numbers with the same package functions the chapter calls.

:func:`check_all` runs the checks, :func:`claims_table` renders the results as a markdown
table (chapters as MyST ``{doc}`` links), :func:`summary` counts the outcomes. Every check
is small and exact where possible; all of them together run in a few seconds, so the table of
chapter 7 is recomputed every time the book is executed.
"""

from . import (  # noqa: F401  (registration order: the chapters' order)
    ch01_introduction,
    ch02_first_order_flaws,
    ch03_kl_and_fisher,
    ch04_lagrangian_taylor,
    ch05_natural_step,
    ch05b_algorithm1_cartpole,
    ch06_natural_gradient_problems,
    ch07_quicker_better,
)
from ._registry import (
    OUTCOMES,
    Claim,
    Outcome,
    Verdict,
    check_all,
    claim,
    claims_table,
    decide,
    grade,
    registered,
    run,
    summary,
)

__all__ = [
    "OUTCOMES",
    "Claim",
    "Outcome",
    "Verdict",
    "check_all",
    "claim",
    "claims_table",
    "decide",
    "grade",
    "registered",
    "run",
    "summary",
]
