"""Counterfactual tests of chapter 1's claims: the verdict with the book's inputs, and a changed
input (or a broken implementation) under which the verdict must differ."""

from __future__ import annotations

from npgbook import claims
from npgbook.claims.ch01_introduction import bandit_gradient


def test_counterfactual_ascent_reaches_optimum():
    book = claims.run("ascent_reaches_optimum")
    # the short steps end at the optimum within the budget, the long ones do not
    assert book.outcome == "holds approximately"
    assert "for α = 0.1, 0.3;" in book.evidence
    # only step sizes that suit the problem: every run ends at the optimum
    assert claims.run("ascent_reaches_optimum", alphas=(0.1, 0.3)).outcome == "holds"
    # a flipped sign (gradient descent) ends at no optimum, whatever α
    flipped = claims.run("ascent_reaches_optimum", gradient=lambda th: -bandit_gradient(th))
    assert flipped.outcome == "does not hold as stated"
    # too few iterations even for the suitable step sizes
    assert claims.run("ascent_reaches_optimum", n_iter=20).outcome == "does not hold as stated"
