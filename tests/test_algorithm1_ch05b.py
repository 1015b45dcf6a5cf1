"""npgbook.experiments.algorithm1 (section 5.9): the frozen-batch step statistics against dense
linear algebra (the Fisher matrix built by :func:`npgbook.fisher_score_outer` and solved by
``torch.linalg.solve``) and against the categorical KL written out from the softmax."""

import math

import pytest
import torch

import npgbook as nb
from npgbook import rl
from npgbook.experiments import algorithm1

HIDDEN = (8,)
DELTA = 0.02


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def frozen():
    policy = nb.MLPCategoricalPolicy(4, 2, HIDDEN)
    theta = policy.initial_params(0, last_layer_scale=1.0)
    value = rl.ValueFunction(4, (8,), seed=1)
    return algorithm1.frozen_batch(theta, value, hidden=HIDDEN, num_envs=2, steps_per_env=64, seed=5)


def dense(frozen, damping):
    f = nb.fisher_score_outer(frozen.policy, frozen.theta, frozen.data.obs)
    return f, f + damping * torch.eye(f.shape[0], dtype=f.dtype)


def test_frozen_batch_is_float64_normalized_and_reproducible(frozen):
    assert frozen.theta.dtype == torch.float64 and frozen.grad.dtype == torch.float64
    adv = frozen.data.advantages
    assert abs(float(adv.mean())) < 1e-12 and abs(float(adv.pow(2).mean()) - 1) < 1e-12
    assert 0 < frozen.n_states <= 2 * 64
    again = algorithm1.frozen_batch(
        frozen.theta,
        rl.ValueFunction(4, (8,), seed=1),
        hidden=HIDDEN,
        num_envs=2,
        steps_per_env=64,
        seed=5,
    )
    assert torch.equal(again.data.obs, frozen.data.obs) and torch.equal(again.grad, frozen.grad)


@pytest.mark.parametrize("damping", [1e-2, 1.0])
def test_converged_step_matches_the_dense_solve(frozen, damping):
    f, fd = dense(frozen, damping)
    g = frozen.grad
    x = torch.linalg.solve(fd, g)
    s = math.sqrt(2 * DELTA / float(g @ x)) * x
    st = algorithm1.step_stats(frozen, DELTA, damping, 200)
    assert st.residual < 1e-8
    assert st.quad == pytest.approx(float(g @ x), rel=1e-8)
    assert st.step_norm == pytest.approx(float(s.norm()), rel=1e-6)
    assert st.cos_g == pytest.approx(float(g @ s / (g.norm() * s.norm())), rel=1e-6)
    assert st.model_ratio == pytest.approx(0.5 * float(s @ f @ s) / DELTA, rel=1e-6)
    # the damped model spends exactly δ, so the undamped one spends δ − λ|s|²/2
    assert st.model_ratio == pytest.approx(1 - damping * float(s @ s) / (2 * DELTA), rel=1e-6)


def test_realized_kl_is_the_categorical_kl(frozen):
    # a converged step, rebuilt from the dense solve, against the softmax written out
    st = algorithm1.step_stats(frozen, DELTA, 0.1, 200)
    _, fd = dense(frozen, 0.1)
    x = torch.linalg.solve(fd, frozen.grad)
    s = math.sqrt(2 * DELTA / float(frozen.grad @ x)) * x
    pol, obs = frozen.policy, frozen.data.obs
    p = pol.distribution(frozen.theta, obs).probs
    q = pol.distribution(frozen.theta + s, obs).probs
    kl = float((p * (p.log() - q.log())).sum(-1).mean())
    assert st.kl_ratio == pytest.approx(kl / DELTA, rel=1e-6)


def test_one_cg_iteration_is_the_gradient_direction(frozen):
    st = algorithm1.step_stats(frozen, DELTA, 0.0, 1)
    assert st.cos_g == pytest.approx(1.0, abs=1e-12)


def test_budget_learning_rate_matches_the_dense_curvature(frozen):
    f, _ = dense(frozen, 0.0)
    g = frozen.grad
    alpha = algorithm1.budget_learning_rate(frozen, DELTA)
    assert alpha == pytest.approx(math.sqrt(2 * DELTA / float(g @ f @ g)), rel=1e-8)
    # and it is the length of the one-iteration, undamped natural step
    st = algorithm1.step_stats(frozen, DELTA, 0.0, 1)
    assert st.step_norm == pytest.approx(alpha * float(g.norm()), rel=1e-8)


def test_damping_table_keys_and_bad_inputs(frozen):
    table = algorithm1.damping_table(frozen, DELTA, (0.0, 0.1), (1, 3))
    assert set(table) == {(0.0, 1), (0.0, 3), (0.1, 1), (0.1, 3)}
    with pytest.raises(ValueError, match="delta"):
        algorithm1.step_stats(frozen, 0.0, 0.1, 3)
    with pytest.raises(ValueError, match="damping"):
        algorithm1.step_stats(frozen, DELTA, -1.0, 3)
    with pytest.raises(ValueError, match="iters"):
        algorithm1.step_stats(frozen, DELTA, 0.1, 0)
    with pytest.raises(ValueError, match="seed"):
        algorithm1.frozen_batch(frozen.theta, rl.ValueFunction(4, (8,)), hidden=HIDDEN, seed=-1)
