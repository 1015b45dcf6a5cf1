"""Counterfactual test of section 7.1's claim (npgbook.claims.ch07_quicker_better).

The claim is decided by the stored evaluation runs of the full sweep. The counterfactuals alter
those runs: NPG's scores raised above every other run of its task (the verdict must become
"holds"), lowered below every other (it must become "does not hold as stated"), or its labels
swapped with the vanilla gradient's (the probabilities of improvement must mirror).
"""

from __future__ import annotations

import pytest

from npgbook import claims
from npgbook.claims.ch07_quicker_better import improvement
from npgbook.experiments import quicker_better as qb


def with_npg_at(runs, extreme):
    """NPG's ``final`` and ``quick`` set beyond every other run's on the same task."""
    out = []
    for r in runs:
        if r["method"] == "npg":
            others = [o for o in runs if o["task"] == r["task"] and o["method"] != "npg"]
            r = {**r, **{k: extreme(o[k] for o in others) + (0.1 if extreme is max else -0.1)
                         for k in ("final", "quick")}}
        out.append(r)
    return out


def test_counterfactual_converges_quicker_and_better():
    runs = qb.load_stored()["evaluation"]
    book = claims.run("converges_quicker_and_better")
    assert book.outcome == "does not hold as stated"
    assert "10 seeds × 2 tasks" in book.evidence
    best = claims.run("converges_quicker_and_better", runs=with_npg_at(runs, max))
    assert best.outcome == "holds"
    worst = claims.run("converges_quicker_and_better", runs=with_npg_at(runs, min))
    assert worst.outcome == "does not hold as stated"
    # swapping the labels of NPG and vanilla PG mirrors the probability of improvement
    swap = {"npg": "vpg", "vpg": "npg"}
    mirrored = [{**r, "method": swap.get(r["method"], r["method"])} for r in runs]
    p = improvement(runs, ("vpg",))["final"]["vpg"][0]
    q = improvement(mirrored, ("vpg",))["final"]["vpg"][0]
    assert p + q == pytest.approx(1.0)
