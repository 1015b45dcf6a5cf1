"""GAE(lambda) against a hand-written per-episode reference; truncation bootstraps, termination does not."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from npgbook.rl import gae, normalize_advantages

# One environment, eight steps. Episode A: steps 0-2, terminated at step 2.
# Slot 3 is the autoreset call (invalid). Episode B: steps 4-5, truncated at step 5.
# Slot 6 invalid. Episode C: step 7, still running at the end of the batch.
REWARDS = [1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 0.0, 6.0]
VALUES = [0.5, 0.4, 0.3, 9.0, 0.2, 0.1, 7.0, 0.6, 0.7]  # V(obs[0..8]); obs[3] = last obs of A, obs[6] = last of B
TERM = [0, 0, 1, 0, 0, 0, 0, 0]
TRUNC = [0, 0, 0, 0, 0, 1, 0, 0]
VALID = [1, 1, 1, 0, 1, 1, 0, 1]


def reference(gamma, lam):
    """Advantages written out by hand, episode by episode."""
    r, v = REWARDS, VALUES
    # episode A: terminated -> the value after step 2 is 0
    d0 = r[0] + gamma * v[1] - v[0]
    d1 = r[1] + gamma * v[2] - v[1]
    d2 = r[2] + gamma * 0.0 - v[2]
    # episode B: truncated -> bootstrap from the value of its last observation obs[6]
    d4 = r[4] + gamma * v[5] - v[4]
    d5 = r[5] + gamma * v[6] - v[5]
    # episode C: cut by the end of the batch -> bootstrap from obs[8]
    d7 = r[7] + gamma * v[8] - v[7]
    gl = gamma * lam
    adv = [d0 + gl * d1 + gl**2 * d2, d1 + gl * d2, d2, 0.0, d4 + gl * d5, d5, 0.0, d7]
    return adv


def as_inputs(dtype=torch.float64):
    col = lambda xs, dt: torch.tensor(xs, dtype=dt).reshape(-1, 1)
    return (
        col(REWARDS, dtype),
        col(VALUES, dtype),
        col(TERM, torch.bool),
        col(TRUNC, torch.bool),
        col(VALID, torch.bool),
    )


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 0.0), (0.5, 1.0), (1.0, 1.0), (0.0, 0.7)])
def test_gae_matches_the_hand_written_reference(gamma, lam):
    r, v, term, trunc, valid = as_inputs()
    adv, ret = gae(r, v, term, trunc, valid, gamma=gamma, lam=lam)
    expected = torch.tensor(reference(gamma, lam)).reshape(-1, 1)
    assert torch.allclose(adv, expected, atol=1e-12)
    assert torch.allclose(ret[valid], (expected + v[:-1])[valid], atol=1e-12)
    assert torch.equal(ret[~valid], torch.zeros(2, dtype=ret.dtype))


def test_lambda_one_gives_discounted_returns_with_truncation_bootstrap():
    g = 0.9
    r, v, term, trunc, valid = as_inputs()
    _, ret = gae(r, v, term, trunc, valid, gamma=g, lam=1.0)
    assert math.isclose(float(ret[0]), 1 + g * 2 + g**2 * 3, rel_tol=1e-12)  # terminated: no bootstrap
    assert math.isclose(float(ret[4]), 4 + g * 5 + g**2 * VALUES[6], rel_tol=1e-12)  # truncated: bootstrap
    assert math.isclose(float(ret[7]), 6 + g * VALUES[8], rel_tol=1e-12)


def test_the_value_after_a_termination_is_ignored_after_a_truncation_it_is_used():
    r, v, term, trunc, valid = as_inputs()
    base, _ = gae(r, v, term, trunc, valid, gamma=0.9, lam=0.8)
    bumped = v.clone()
    bumped[3] += 100.0  # last observation of the terminated episode A
    same, _ = gae(r, bumped, term, trunc, valid, gamma=0.9, lam=0.8)
    assert torch.equal(same, base)
    bumped = v.clone()
    bumped[6] += 100.0  # last observation of the truncated episode B
    moved, _ = gae(r, bumped, term, trunc, valid, gamma=0.9, lam=0.8)
    assert math.isclose(float(moved[5] - base[5]), 0.9 * 100.0, rel_tol=1e-12)
    assert math.isclose(float(moved[4] - base[4]), 0.9 * 0.8 * 0.9 * 100.0, rel_tol=1e-12)
    assert torch.equal(moved[:4], base[:4]) and torch.equal(moved[7:], base[7:])


@given(st.integers(1, 12), st.integers(1, 4), st.integers(0, 10_000), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_columns_are_independent_and_match_a_per_step_loop(T, N, seed, gamma, lam):
    """Vector form vs a naive double loop written from the definition A_t = sum_l (g l)^l delta_{t+l}."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(T, N, generator=gen)
    v = torch.randn(T + 1, N, generator=gen)
    term = torch.rand(T, N, generator=gen) < 0.2
    trunc = (torch.rand(T, N, generator=gen) < 0.2) & ~term
    adv, _ = gae(r, v, term, trunc, gamma=gamma, lam=lam)
    for i in range(N):
        for t in range(T):
            total, weight = 0.0, 1.0
            for u in range(t, T):
                nxt = 0.0 if term[u, i] else float(v[u + 1, i])
                total += weight * (float(r[u, i]) + gamma * nxt - float(v[u, i]))
                if term[u, i] or trunc[u, i]:
                    break
                weight *= gamma * lam
            assert math.isclose(float(adv[t, i]), total, rel_tol=1e-9, abs_tol=1e-9)


def test_gae_bad_arguments():
    r, v, term, trunc, valid = as_inputs()
    for kw, name in [({"gamma": 1.5, "lam": 0.9}, "gamma"), ({"gamma": 0.9, "lam": -0.1}, "lam"), ({"gamma": float("nan"), "lam": 0.9}, "gamma")]:
        with pytest.raises(ValueError, match=name):
            gae(r, v, term, trunc, valid, **kw)
    with pytest.raises(ValueError, match="values"):
        gae(r, v[:-1], term, trunc, valid, gamma=0.9, lam=0.9)
    with pytest.raises(ValueError, match="truncated"):
        gae(r, v, term, trunc[:-1], valid, gamma=0.9, lam=0.9)
    with pytest.raises(ValueError, match="finite"):
        gae(r * float("nan"), v, term, trunc, valid, gamma=0.9, lam=0.9)


def test_normalize_advantages():
    x = torch.tensor([1.0, 2.0, 4.0, 7.0])
    y = normalize_advantages(x)
    assert abs(float(y.mean())) < 1e-12 and math.isclose(float(y.pow(2).mean()), 1.0, rel_tol=1e-12)


@pytest.mark.parametrize("value", [0.0, 0.1, -3.3, 1e6, 1e-30])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_equal_advantages_give_zeros_not_a_division_by_zero(value, dtype):
    y = normalize_advantages(torch.full((1000,), value, dtype=dtype))
    assert torch.equal(y, torch.zeros(1000, dtype=dtype))
    assert torch.equal(normalize_advantages(torch.tensor([value], dtype=dtype)), torch.zeros(1, dtype=dtype))


def test_normalize_bad_input():
    with pytest.raises(ValueError, match="finite"):
        normalize_advantages(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="1-D"):
        normalize_advantages(torch.zeros(0))
