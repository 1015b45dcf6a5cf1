"""Tests of npgbook.experiments.gaussian_control (section 5.10) against things it does not compute."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from npgbook.experiments import gaussian_control as gc


def test_probe_states_are_pendulum_observations():
    probe = gc.probe_states(8, (-1.0, 1.0))
    assert probe.shape == (16, 3)
    np.testing.assert_allclose(probe[:, 0] ** 2 + probe[:, 1] ** 2, 1.0, rtol=0, atol=1e-15)
    assert set(probe[:, 2]) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="speeds"):
        gc.probe_states(4, ())


def test_kl_parts_sum_to_torch_kl():
    rng = np.random.default_rng(0)
    mo, mn = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    lo, ln = np.array([0.1, -0.3]), np.array([-0.2, 0.4])
    mean_part, spread_part = gc.gaussian_kl_parts(mo, mn, lo, ln)

    def dist(m, ls):
        return Independent(Normal(torch.tensor(m), torch.exp(torch.tensor(ls)).expand(m.shape)), 1)

    kl = float(kl_divergence(dist(mo, lo), dist(mn, ln)).mean())
    assert mean_part + spread_part == pytest.approx(kl, rel=1e-12)
    # the spread part alone: same means
    _, only_spread = gc.gaussian_kl_parts(mo, mo, lo, ln)
    assert only_spread == pytest.approx(float(kl_divergence(dist(mo, lo), dist(mo, ln)).mean()), rel=1e-12)
    with pytest.raises(ValueError):
        gc.gaussian_kl_parts(mo, mn[:, :1], lo, ln)


def test_log_slope_recovers_a_power_law():
    x = np.linspace(0.2, 3.0, 30)
    assert gc.log_slope(x, 2.5 * x**1.7) == pytest.approx(1.7, rel=1e-12)
    with pytest.raises(ValueError, match="positive"):
        gc.log_slope(x, -x)


def test_run_seed_records_consistent_updates():
    config = gc.PENDULUM_CONFIG.replace(total_steps=4096, num_envs=4, steps_per_env=256)
    run = gc.run_seed(config, 3)
    a = run.arrays()
    # updates of 1,024 slots, some of them autoreset slots that are no env step
    assert len(run.accepted) == a["kl"].size == a["env_steps"].size >= 4
    assert a["env_steps"][-1] >= 4096
    # the mean part of the KL on the probe states is rms(dmu)^2 / (2 sigma'^2) (one action dim)
    np.testing.assert_allclose(a["kl_mean"], a["mean_shift"] ** 2 / (2 * a["sigma_after"] ** 2), rtol=1e-9)
    # sigma changes between updates: after of one = before of the next
    np.testing.assert_allclose(a["sigma_after"][:-1], a["sigma_before"][1:], rtol=1e-6)
    assert a["sigma_before"][0] == pytest.approx(math.exp(config.init_log_std), rel=1e-6)
    # on the batch states the mean part of the KL is at most the realized KL (the spread part
    # is >= 0), so rms(dmu) <= sigma' sqrt(2 KL); float32 KL, hence the 1e-4
    assert np.all(a["batch_shift"] <= a["sigma_after"] * np.sqrt(2 * a["kl"]) * (1 + 1e-4))
    assert np.all(a["batch_shift"] > 0)
    # NPG spends about delta on the batch states
    assert np.all((a["kl"] > 0.3 * config.delta) & (a["kl"] < 3 * config.delta))
    assert len(run.returns) == len(run.end_steps) > 0
    with pytest.raises(ValueError, match="continuous"):
        gc.run_seed(gc.PENDULUM_CONFIG.replace(env_id="CartPole-v1", total_steps=512), 0)
