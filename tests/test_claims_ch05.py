"""Counterfactual tests of chapter 5's claims (npgbook.claims.ch05_natural_step).

Each ``test_counterfactual_KEY`` asserts the verdict with the book's inputs and shows that an
altered input or a broken implementation changes it.
"""

from __future__ import annotations

import math

import pytest
import torch

from npgbook import claims
from npgbook.claims import _benches
from npgbook.claims import ch05_natural_step as ch05
from npgbook.experiments import exact_natural as en
from npgbook.experiments.ascent import AscentPath
from npgbook.experiments.taylor import penalty_maximizer
from npgbook.fisher import fisher_gaussian
from npgbook.natural import NaturalStep, natural_step

F64 = torch.float64


def identity_fisher(mu, sigma, parameterization):
    """F = I: the natural step becomes the vanilla step normalized to length √(2ε)."""
    return torch.eye(2, dtype=F64)


def zero_gradient(theta):
    return torch.zeros_like(theta)


def half_alpha_step(grad, fisher, epsilon, **kwargs):
    """A broken natural step: α = √(ε / gᵀF⁻¹g) instead of √(2ε / gᵀF⁻¹g)."""
    s = natural_step(grad, fisher, epsilon, **kwargs)
    return NaturalStep(s.step / math.sqrt(2), s.direction, s.alpha / math.sqrt(2), s.quad, s.cg)


# --- §5 ---------------------------------------------------------------------------------


def test_counterfactual_intermediate_sign():
    book = claims.run("intermediate_sign")
    assert book.outcome == "does not hold as stated"
    assert "= 2.0" in book.evidence and "> 0 on 0 of 4" in book.evidence
    assert "lowers J from 0.197 to 0.180" in book.evidence
    # the correctly signed solution +F⁻¹g/λ is the maximizer: every number turns
    right = claims.run("intermediate_sign", solve=lambda g, f, lam: penalty_maximizer(g, f, lam))
    assert right.outcome == "holds"
    assert "below 1e-10" in right.evidence and "> 0 on 4 of 4" in right.evidence
    assert "L(Δθ)/max L = 1.0" in right.evidence and "raises J" in right.evidence
    # uphill but too short: not stationary, so not the maximizer
    short = claims.run("intermediate_sign", solve=lambda g, f, lam: penalty_maximizer(g, f, 2 * lam))
    assert short.outcome == "does not hold as stated" and "= 0.50" in short.evidence


def test_note_intermediate_step_solves_the_notes_condition():
    f = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    g = torch.tensor([1.0, -2.0], dtype=F64)
    step = en.note_intermediate_step(g, f, 2.0)
    assert torch.allclose(g + 2.0 * f @ step, torch.zeros(2, dtype=F64), atol=1e-14)


def test_counterfactual_alpha_spends_epsilon():
    assert claims.run("alpha_spends_epsilon").outcome == "holds"
    broken = claims.run("alpha_spends_epsilon", step=half_alpha_step)
    assert broken.outcome == "does not hold as stated" and "5.0e-01" in broken.evidence


def test_counterfactual_policy_change_epsilon():
    book = claims.run("policy_change_epsilon")
    assert book.outcome == "holds approximately"
    assert "within 1% of 1 at ε = 1e-08" in book.evidence and "6.6–69 (MLP)" in book.evidence
    assert "1e-05–1e-04 (MLP)" in book.evidence
    # the Gaussians alone, over budgets up to 1e-2: within 10% everywhere
    gaussians = {k: b for k, b in en.kl_benches().items() if k.startswith("Gaussian")}
    small = claims.run("policy_change_epsilon", benches=gaussians, book_range=(1e-8, 1e-2))
    assert small.outcome == "holds"
    # a step that spends half the budget: not even the limit is right
    half = claims.run("policy_change_epsilon", benches=gaussians, step=half_alpha_step)
    assert half.outcome == "does not hold as stated"


def test_counterfactual_parameterization_invariance():
    book = claims.run("parameterization_invariance")
    assert book.outcome == "holds" and "hold to 1e-10" in book.evidence
    # F = I (the vanilla direction, normalized): the Jacobian relations break and the paths
    # stay apart. (With ε = 0.1 its σ-path steps to σ < 0, so the largest budget is left out.)
    vanilla = claims.run(
        "parameterization_invariance", fisher=identity_fisher, nat_eps=(0.03, 0.01, 0.003, 0.001)
    )
    assert vanilla.outcome == "does not hold as stated"
    assert "the exact relations fail" in vanilla.evidence and "not shrinking" in vanilla.evidence

    # a Fisher matrix off by 0.1% in one parameterization only: the relations fail, the paths
    # still converge, so only the approximate statement survives
    def skewed(mu, sigma, parameterization):
        f = fisher_gaussian(mu, sigma, parameterization)
        return f * torch.tensor([1.0, 1.001]) if parameterization == "sigma" else f

    assert claims.run("parameterization_invariance", fisher=skewed).outcome == "holds approximately"


def test_counterfactual_cautious_steep_bold_flat():
    book = claims.run("cautious_steep_bold_flat")
    assert book.outcome == "holds" and "at 80 of 80 means" in book.evidence
    # F = I: the normalized vanilla step has the same length at σ = 0.3 and σ = 3, and its μ-part
    # is longer at σ = 3 at only a few means
    vanilla = claims.run("cautious_steep_bold_flat", fisher=identity_fisher)
    assert vanilla.outcome == "does not hold as stated"
    # the sensitivities swapped: the step is longer where the policy is *more* sensitive
    swapped = claims.run("cautious_steep_bold_flat", sigmas=(3.0, 0.3))
    assert swapped.outcome == "does not hold as stated" and "at 0 of 80" in swapped.evidence


# --- §6 ---------------------------------------------------------------------------------


def test_counterfactual_natural_escapes_plateau():
    book = claims.run("natural_escapes_plateau")
    assert book.outcome == "holds" and "natural (ε = 0.1) 4, vanilla (α = 1) 1117" in book.evidence
    # a zero natural gradient never moves: it must not count as escaping
    zero = claims.run("natural_escapes_plateau", gradient=zero_gradient)
    assert zero.outcome == "does not hold as stated" and "never within 500" in zero.evidence
    # a vanilla run that never reaches the target within its budget is slow, not missing
    never = claims.run("natural_escapes_plateau", vanilla=lambda gap: None)
    assert never.outcome == "holds" and "never within its 10,000" in never.evidence
    # a vanilla run only a little slower: faster, but not by a factor 10
    close = claims.run("natural_escapes_plateau", vanilla=lambda gap: 5)
    assert close.outcome == "holds approximately"
    # the vanilla count is chapter 2's run (the same update, start and target, 10,000 steps)
    assert en.plateau_vanilla_iterations(1.75) == _benches._plateau_vanilla()[0] == 1117
    # a smaller gap: vanilla is fast there, and the factor 10 is lost
    small = claims.run("natural_escapes_plateau", gap=1.0)
    assert small.outcome == "holds approximately" and "vanilla (α = 1) 7" in small.evidence


def test_counterfactual_natural_approaches_peak():
    book = claims.run("natural_approaches_peak")
    assert book.outcome == "holds approximately"
    assert "never overshoot and close ≥ 62% of the gap" in book.evidence
    assert "ε ≤ 1.0" in book.evidence
    assert "μ 1.00 → 1.68 → 2.66, J 0.197 → 0.598 → 0.436" in book.evidence  # ε = 3
    assert "overshoots for α ≥ 1.0" in book.evidence
    # a zero step never overshoots, but it does not approach the peak either
    zero = claims.run("natural_approaches_peak", gradient=zero_gradient)
    assert zero.outcome == "does not hold as stated" and "J only goes from" in zero.evidence
    # the verdict follows the overshoot detector
    never = claims.run("natural_approaches_peak", overshoot=lambda path, peak: None)
    assert never.outcome == "holds" and "from 0.0030 to 3.0" in never.evidence
    always = claims.run("natural_approaches_peak", overshoot=lambda path, peak: 0)
    assert always.outcome == "does not hold as stated"


def _path(mus, values):
    """An AscentPath with the given μ column (log σ = 0) and objective values."""
    mus = torch.tensor(mus, dtype=F64)
    return AscentPath(torch.stack([mus, torch.zeros_like(mus)], 1), torch.tensor(values, dtype=F64), None)


@pytest.mark.parametrize(
    ("mus", "values", "expected"),
    [
        ([1.0, 1.5, 1.9, 2.0], [0.2, 0.5, 0.9, 1.0], None),  # monotone approach
        ([1.0, 1.5, 1.4], [0.2, 0.5, 0.4], 1),  # J falls at the second step
        ([1.0, 2.5, 2.0], [0.2, 0.3, 1.0], None),  # crosses but lands closer: fine
        ([1.5, 3.0, 2.0], [0.5, 0.6, 1.0], 0),  # crosses and lands farther: overshoot
        ([1.0, 1.0, 1.0], [0.2, 0.2, 0.2], None),  # a zero step never overshoots
        ([1.0, 1.5], [0.5, 0.5 - 1e-12], None),  # a fall within the tolerance
    ],
)
def test_first_overshoot(mus, values, expected):
    assert en.first_overshoot(_path(mus, values), 2.0) == expected
    assert ch05._first_overshoot is en.first_overshoot
