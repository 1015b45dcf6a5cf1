"""npgbook.experiments.variants: the K-FAC NPG and Adam update rules against closed forms and autograd, and the
training helpers on tiny budgets (determinism, finite weights, same result as the direct route)."""

import dataclasses
import math

import pytest
import torch

import npgbook as nb
from npgbook import kfac, rl
from npgbook.experiments import variants
from npgbook.problems import envs
from npgbook.rl import PolicyData, TrainConfig

NAN = float("nan")
TINY = TrainConfig(total_steps=256, num_envs=2, steps_per_env=64, hidden=(8,), value_hidden=(8,), value_epochs=1)


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks run fastest, and unaffected by other processes, on one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_data(seed, n=200, hidden=(8,), obs=None):
    """A float64 MLP policy on CartPole states with sampled actions and random advantages."""
    policy = nb.MLPCategoricalPolicy(4, 2, hidden)
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = envs.cartpole_observations(n, seed) if obs is None else obs
    gen = torch.Generator().manual_seed(seed)
    actions = nb.sample_actions(policy.distribution(theta, obs), 1, gen)[0]
    advantages = torch.randn(obs.shape[0], generator=gen)
    return policy, theta, with_advantages(policy, theta, obs, actions, advantages)


def with_advantages(policy, theta, obs, actions, advantages):
    with torch.no_grad():
        old = log_softmax(policy, theta, obs).gather(1, actions[:, None])[:, 0]
    return PolicyData(obs, actions, advantages, old)


def log_softmax(policy, theta, obs):
    return torch.log_softmax(policy.logits(theta, obs), dim=1)


def gradient_here(policy, theta, data):
    """g = grad of mean_t exp(log pi(a_t|s_t) - old_t) A_t at theta, by autograd on a surrogate written here."""
    theta = theta.detach().clone().requires_grad_(True)
    log_prob = log_softmax(policy, theta, data.obs).gather(1, data.actions[:, None])[:, 0]
    (grad,) = torch.autograd.grad((torch.exp(log_prob - data.old_log_probs) * data.advantages).mean(), theta)
    return grad


def fisher_here(policy, theta, obs):
    """The exact state-averaged Fisher matrix sum_a pi(a|s) s_a s_a^T, scores by torch.func.jacrev."""
    jac = torch.func.jacrev(lambda th: log_softmax(policy, th, obs))(theta)  # (N, K, n)
    probs = log_softmax(policy, theta, obs).exp().detach()
    return torch.einsum("sk,ski,skj->ij", probs, jac, jac) / obs.shape[0]


def without_time(history):
    return [dataclasses.replace(record, wall_time=0.0) for record in history]


def all_finite(theta):
    return bool(torch.isfinite(theta).all())


# ---------------------------------------------------------------- kfac_npg_update


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("damping", [0.01, 0.5])
def test_kfac_npg_step_spends_delta_in_the_damped_kfac_metric(seed, damping):
    """Delta theta = sqrt(2 delta / g^T M^-1 g) M^-1 g with M = F_kfac + lam I, so 1/2 dθ^T M dθ = delta."""
    policy, theta, data = make_data(seed)
    before = theta.clone()
    config = TrainConfig(delta=0.03, cg_damping=damping)
    out = variants.kfac_npg_update(policy, theta, data, config)
    g = gradient_here(policy, theta, data)
    m = kfac.kfac_fisher(policy, theta, data.obs).dense() + damping * torch.eye(policy.n_params)
    direction = torch.linalg.solve(m, g)
    quad = float(g @ direction)
    step = out.theta - theta
    assert out.accepted and out.skipped is None and out.step_fraction == 1.0
    assert torch.equal(theta, before)  # the input is not modified
    assert 0.5 * float(step @ m @ step) == pytest.approx(config.delta, rel=1e-9)
    torch.testing.assert_close(step, math.sqrt(2 * config.delta / quad) * direction, rtol=1e-9, atol=1e-12)
    assert out.quad == pytest.approx(quad, rel=1e-9)
    assert out.grad_norm == pytest.approx(float(g.norm()), rel=1e-12)
    assert float(g @ step) > 0  # an ascent direction


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfac_npg_is_the_exact_natural_step_where_kfac_is_exact(seed):
    """A linear softmax policy on one state: K-FAC is the true Fisher matrix (here by jacrev)."""
    state = envs.cartpole_observations(1, seed)
    policy, theta, data = make_data(seed, hidden=(), obs=state.repeat(30, 1))
    config = TrainConfig(delta=0.02, cg_damping=0.01)
    out = variants.kfac_npg_update(policy, theta, data, config)
    f = fisher_here(policy, theta, state)
    g = gradient_here(policy, theta, data)
    step = out.theta - theta
    m = f + config.cg_damping * torch.eye(policy.n_params)
    assert 0.5 * float(step @ m @ step) == pytest.approx(config.delta, rel=1e-9)
    direction = torch.linalg.solve(m, g)
    torch.testing.assert_close(step, math.sqrt(2 * config.delta / float(g @ direction)) * direction)


def test_kfac_npg_skips_without_nan():
    policy, theta, data = make_data(0)
    zero = dataclasses.replace(data, advantages=torch.zeros_like(data.advantages))
    out = variants.kfac_npg_update(policy, theta, zero, TrainConfig())
    assert not out.accepted and out.theta is theta and out.grad_norm == 0.0 and "0" in out.skipped
    bad = dataclasses.replace(data, advantages=torch.full_like(data.advantages, NAN))
    out = variants.kfac_npg_update(policy, theta, bad, TrainConfig())
    assert not out.accepted and out.theta is theta and "finite" in out.skipped
    # one state: the input factor A = h h^T is singular, so without damping K-FAC cannot be inverted
    policy, theta, single = make_data(0, obs=envs.cartpole_observations(1, 0).repeat(10, 1))
    out = variants.kfac_npg_update(policy, theta, single, TrainConfig(cg_damping=0.0))
    assert not out.accepted and out.theta is theta and "singular" in out.skipped


def test_kfac_npg_needs_an_mlp_policy():
    policy = nb.GaussianPolicy()
    data = PolicyData(None, torch.zeros(3), torch.ones(3), torch.zeros(3))
    with pytest.raises(TypeError, match="policy"):
        variants.kfac_npg_update(policy, policy.params(0.0, 1.0), data, TrainConfig())


# ---------------------------------------------------------------- AdamUpdate


def adam_reference(grads, lr, betas=(0.9, 0.999), eps=1e-8):
    """Kingma & Ba's Adam, ascending: the total change after each gradient (bias-corrected moments)."""
    m = v = 0.0
    total, changes = 0.0, []
    for k, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        total = total + lr * (m / (1 - betas[0] ** k)) / ((v / (1 - betas[1] ** k)).sqrt() + eps)
        changes.append(total)
    return changes


@pytest.mark.parametrize("lr", [1e-3, 0.02])
def test_adam_first_step_is_lr_times_the_sign_of_the_gradient(lr):
    policy, theta, data = make_data(3)
    before = theta.clone()
    out = variants.AdamUpdate()(policy, theta, data, TrainConfig(learning_rate=lr))
    g = gradient_here(policy, theta, data)
    assert out.accepted and out.step_fraction == 1.0 and torch.equal(theta, before)
    assert out.grad_norm == pytest.approx(float(g.norm()), rel=1e-12)
    step = out.theta - theta
    torch.testing.assert_close(step, lr * g / (g.abs() + 1e-8), rtol=1e-10, atol=1e-15)
    big = g.abs() > 1e-4  # where |g| >> eps the step is lr * sign(g) to within eps / |g|
    torch.testing.assert_close(step[big], lr * torch.sign(g[big]), rtol=1e-4, atol=0.0)


def test_adam_keeps_its_moments_across_calls():
    policy, theta, data0 = make_data(4)
    _, _, data1 = make_data(5)
    update, config = variants.AdamUpdate(), TrainConfig(learning_rate=0.01)
    first = update(policy, theta, data0, config)
    g0 = gradient_here(policy, theta, data0)
    g1 = gradient_here(policy, first.theta, data1)
    second = update(policy, first.theta, data1, config)
    expected = adam_reference([g0, g1], lr=0.01)
    torch.testing.assert_close(first.theta - theta, expected[0], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(second.theta - theta, expected[1], rtol=1e-9, atol=1e-14)
    # a fresh instance starts again: its first step is the sign step of g1, not the two-step result
    fresh = variants.AdamUpdate()(policy, first.theta, data1, config)
    torch.testing.assert_close(fresh.theta - first.theta, adam_reference([g1], lr=0.01)[0], rtol=1e-10, atol=1e-14)


def test_adam_zero_and_non_finite_gradients_leave_theta_unchanged():
    policy, theta, data = make_data(6)
    zero = dataclasses.replace(data, advantages=torch.zeros_like(data.advantages))
    out = variants.AdamUpdate()(policy, theta, zero, TrainConfig())
    assert not out.accepted and torch.equal(out.theta, theta) and out.grad_norm == 0.0
    bad = dataclasses.replace(data, advantages=torch.full_like(data.advantages, NAN))
    out = variants.AdamUpdate()(policy, theta, bad, TrainConfig())
    assert not out.accepted and out.theta is theta and "finite" in out.skipped


def test_adam_instance_is_tied_to_one_parameter_shape():
    policy, theta, data = make_data(7)
    update = variants.AdamUpdate()
    update(policy, theta, data, TrainConfig())
    other, other_theta, other_data = make_data(7, hidden=(3,))
    with pytest.raises(ValueError, match="theta"):
        update(other, other_theta, other_data, TrainConfig())


# ---------------------------------------------------------------- train_with_update


def test_train_with_update_runs_the_given_rule():
    """The trainer's own NPG rule plugged in by hand gives exactly the run of rl.train."""
    direct = rl.train(TINY)
    plugged = variants.train_with_update(TINY, rl.npg_update)
    assert without_time(plugged.history) == without_time(direct.history)
    assert torch.equal(plugged.theta, direct.theta) and plugged.episodes.returns == direct.episodes.returns

    calls = []

    def frozen(policy, theta, data, config):
        calls.append(theta.clone())
        return rl.UpdateResult(theta=theta, accepted=False)

    result = variants.train_with_update(TINY, frozen)
    start = rl.Trainer(TINY)
    start.close()
    assert len(calls) == len(result.history) >= 2
    assert all(torch.equal(c, start.theta) for c in calls) and torch.equal(result.theta, start.theta)
    assert all(record.kl == 0.0 and not record.accepted for record in result.history)


@pytest.mark.parametrize("rule", [variants.kfac_npg_update, "adam"])
def test_train_with_update_is_deterministic_and_finite(rule):
    config = TINY.replace(learning_rate=0.02)

    def run():
        update = variants.AdamUpdate() if rule == "adam" else rule
        return variants.train_with_update(config, update)

    a, b = run(), run()
    assert without_time(a.history) == without_time(b.history)
    assert torch.equal(a.theta, b.theta) and a.episodes.returns == b.episodes.returns
    assert all_finite(a.theta) and all(r.accepted and r.kl > 0 and math.isfinite(r.kl) for r in a.history)
    start = rl.Trainer(config)
    start.close()
    assert not torch.equal(a.theta, start.theta)  # it did move


def test_train_with_update_needs_a_callable():
    with pytest.raises(TypeError, match="update"):
        variants.train_with_update(TINY, "npg")


# ---------------------------------------------------------------- train_many


def direct_run(rule, config):
    if rule == "kfac-npg":
        return variants.train_with_update(config.replace(algo="npg"), variants.kfac_npg_update)
    if rule == "adam":
        return variants.train_with_update(config.replace(algo="vpg"), variants.AdamUpdate())
    return rl.train(config.replace(algo=rule))


def test_train_many_in_process_matches_the_direct_runs():
    jobs = [(rule, TINY.replace(seed=3, learning_rate=0.02)) for rule in variants.UPDATE_RULES]
    summaries = variants.train_many(jobs, processes=1)
    assert [s.rule for s in summaries] == list(variants.UPDATE_RULES)
    for (rule, config), summary in zip(jobs, summaries):
        direct = direct_run(rule, config)
        assert summary.config == direct.config
        assert summary.config.algo == {"kfac-npg": "npg", "adam": "vpg"}.get(rule, rule)
        assert without_time(summary.history) == without_time(direct.history)
        assert summary.episode_returns == direct.episodes.returns
        assert summary.episode_end_steps == direct.episodes.end_steps
    assert variants.train_many([], processes=2) == []


def test_train_many_in_two_processes_gives_the_same_runs():
    jobs = [("kfac-npg", TINY.replace(seed=1)), ("adam", TINY.replace(seed=2, learning_rate=0.02))]
    parallel = variants.train_many(jobs, processes=2)
    serial = variants.train_many(jobs, processes=1)
    for p, s in zip(parallel, serial):
        assert p.rule == s.rule and p.config == s.config
        assert without_time(p.history) == without_time(s.history)
        assert p.episode_returns == s.episode_returns and p.episode_end_steps == s.episode_end_steps


def test_train_many_bad_inputs():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="processes"):
            variants.train_many([("npg", TINY)], processes=bad)
    with pytest.raises(ValueError, match="rule"):
        variants.train_many([("sgd", TINY)])
    for bad in ("npg", ("npg",), ("npg", TINY, 1)):
        with pytest.raises(ValueError, match="jobs"):
            variants.train_many([bad])
    with pytest.raises(TypeError, match="config"):
        variants.train_many([("npg", {"total_steps": 256})])


# ---------------------------------------------------------------- policy_snapshot


def test_policy_snapshot_is_the_trained_policy_with_a_fresh_batch():
    config = TINY.replace(seed=2)
    policy, theta, data = variants.policy_snapshot(config, steps_per_env=32)
    trained = rl.train(config)
    assert isinstance(policy, nb.MLPCategoricalPolicy) and policy.hidden == config.hidden
    assert theta.dtype == torch.float64 and all_finite(theta)
    torch.testing.assert_close(theta, trained.theta.to(torch.float64), rtol=0, atol=0)
    m = data.obs.shape[0]
    assert 1 <= m <= config.num_envs * 32 and data.obs.shape == (m, 4)
    assert all(x.dtype == torch.float64 for x in (data.obs, data.advantages, data.old_log_probs))
    assert data.actions.shape == (m,) and set(data.actions.tolist()) <= {0, 1}
    expected = log_softmax(policy, theta, data.obs).gather(1, data.actions[:, None])[:, 0]
    torch.testing.assert_close(data.old_log_probs, expected)
    # advantages normalized as in training: mean 0 and standard deviation 1
    assert abs(float(data.advantages.mean())) < 1e-6
    assert float(data.advantages.pow(2).mean().sqrt()) == pytest.approx(1.0, abs=1e-5)
    again = variants.policy_snapshot(config, steps_per_env=32)
    assert torch.equal(again[1], theta) and torch.equal(again[2].obs, data.obs)
    assert torch.equal(again[2].actions, data.actions) and torch.equal(again[2].advantages, data.advantages)


def test_policy_snapshot_bad_inputs():
    for bad in (0, -3, 2.5, "8"):
        with pytest.raises(ValueError, match="steps_per_env"):
            variants.policy_snapshot(TINY, steps_per_env=bad)
    with pytest.raises(TypeError, match="config"):
        variants.policy_snapshot({"total_steps": 256}, steps_per_env=8)
