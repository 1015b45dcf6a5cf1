"""Unit tests of chapter 2's equal-width Gaussian pairs (the note's Figure 2)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate, stats

from npgbook.experiments.trust_region import equal_width_pairs
from npgbook.policies import GaussianPolicy


@pytest.mark.parametrize("parameterization", ["sigma", "log_sigma"])
def test_pairs_have_the_closed_form_kl_and_distance(parameterization):
    pairs = equal_width_pairs(GaussianPolicy(parameterization), (0.3, 3.0, 1.7), means=(0.0, 1.5))
    assert pairs.sigmas == (0.3, 3.0, 1.7)
    assert torch.allclose(pairs.distance, torch.full((3,), 1.5), rtol=1e-14)
    expected = torch.tensor([1.5**2 / (2 * s**2) for s in (0.3, 3.0, 1.7)])
    assert torch.allclose(pairs.kl, expected, rtol=1e-12)


def test_pair_kl_against_numerical_integration():
    (kl,) = equal_width_pairs(GaussianPolicy("sigma"), (0.8,)).kl.tolist()

    def integrand(x):
        return stats.norm.pdf(x, 0, 0.8) * (stats.norm.logpdf(x, 0, 0.8) - stats.norm.logpdf(x, 1, 0.8))

    value, _ = integrate.quad(integrand, -30, 31, epsabs=1e-13)
    assert math.isclose(kl, value, rel_tol=1e-9)


def test_pairs_use_the_divergence_given():
    pairs = equal_width_pairs(
        GaussianPolicy("sigma"), (0.5, 2.0), divergence=lambda policy, a, b: ((b - a) ** 2).sum()
    )
    assert pairs.kl.tolist() == [1.0, 1.0]


def test_pairs_reject_bad_widths():
    with pytest.raises(ValueError):
        equal_width_pairs(GaussianPolicy("sigma"), ())
    with pytest.raises(ValueError):
        equal_width_pairs(GaussianPolicy("sigma"), (0.3, -1.0))
