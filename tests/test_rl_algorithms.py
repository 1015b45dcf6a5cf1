"""NPG (Algorithm 1), TRPO and REINFORCE updates, the training loop, robustness and reproducibility."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import npgbook as nb
from npgbook.problems import envs
from npgbook.rl import (
    PolicyData,
    TrainConfig,
    Trainer,
    UpdateSkippedWarning,
    algorithms,
    first_solved,
    normalize_advantages,
    npg_update,
    policy_gradient,
    surrogate,
    train,
    trpo_update,
    vpg_update,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks run fastest, and unaffected by other processes, on one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_data(seed, n=300, hidden=(8,)):
    """A float64 MLP policy on real CartPole states with sampled actions and random advantages."""
    policy = nb.MLPCategoricalPolicy(4, 2, hidden)
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = envs.cartpole_observations(n, seed)
    gen = torch.Generator().manual_seed(seed)
    actions = nb.sample_actions(policy.distribution(theta, obs), 1, gen)[0]
    adv = normalize_advantages(torch.randn(n, generator=gen) + obs[:, 2] * 10)
    with torch.no_grad():
        old = policy.log_prob(theta, actions, obs)
    return policy, theta, PolicyData(obs, actions, adv, old)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_policy_gradient_matches_finite_differences(seed):
    policy, theta, data = make_data(seed)
    g = policy_gradient(policy, theta, data)
    gen = torch.Generator().manual_seed(100 + seed)
    for _ in range(3):
        u = torch.randn(policy.n_params, generator=gen)
        h = 1e-6
        fd = (float(surrogate(policy, theta + h * u, data)) - float(surrogate(policy, theta - h * u, data))) / (2 * h)
        assert math.isclose(float(g @ u), fd, rel_tol=1e-6, abs_tol=1e-9)
    # and the classic form: mean of score * advantage, with per-sample autograd
    def log_prob(th, i):
        return policy.log_prob(th, data.actions[i : i + 1], data.obs[i : i + 1])[0]

    scores = torch.stack([torch.autograd.functional.jacobian(lambda th, i=i: log_prob(th, i), theta) for i in range(20)])
    head = PolicyData(data.obs[:20], data.actions[:20], data.advantages[:20], data.old_log_probs[:20])
    assert torch.allclose(policy_gradient(policy, theta, head), (scores * head.advantages[:, None]).mean(0), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("damping", [0.01, 0.1])
def test_npg_step_is_the_dense_natural_step(seed, damping):
    """With enough CG iterations the step is sqrt(2 delta / g'H^-1 g) H^-1 g for the dense KL Hessian."""
    policy, theta, data = make_data(seed)
    delta = 0.01
    cfg = TrainConfig(delta=delta, cg_iters=200, cg_damping=damping, cg_rtol=1e-12)
    out = npg_update(policy, theta, data, cfg)
    g = policy_gradient(policy, theta, data)
    H = nb.fisher_kl_hessian(policy, theta, data.obs) + damping * torch.eye(policy.n_params)
    x = torch.linalg.solve(H, g)
    expected = math.sqrt(2 * delta / float(g @ x)) * x
    step = out.theta - theta
    assert out.accepted and out.skipped is None
    assert torch.allclose(step, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max()))
    assert math.isclose(0.5 * float(step @ H @ step), delta, rel_tol=1e-6)  # the quadratic KL model is saturated
    kl = float(nb.policy_kl(policy, theta, out.theta, data.obs))
    assert 0.5 * delta < kl < 2 * delta


@pytest.mark.parametrize("cg_iters", [1, 3, 10])
def test_npg_quadratic_kl_model_is_delta_for_any_number_of_cg_iterations(cg_iters):
    """CG iterates satisfy x'Hx = g'x, so 1/2 s'Hs = delta exactly however early CG stops."""
    policy, theta, data = make_data(5)
    cfg = TrainConfig(delta=0.03, cg_iters=cg_iters, cg_damping=0.01)
    out = npg_update(policy, theta, data, cfg)
    H = nb.fisher_kl_hessian(policy, theta, data.obs) + 0.01 * torch.eye(policy.n_params)
    step = out.theta - theta
    assert out.cg_iterations == cg_iters
    assert math.isclose(0.5 * float(step @ H @ step), 0.03, rel_tol=1e-6)
    if cg_iters == 1:  # one CG iteration is the gradient direction, rescaled
        g = policy_gradient(policy, theta, data)
        assert abs(float(torch.nn.functional.cosine_similarity(step, g, dim=0)) - 1) < 1e-10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trpo_accepts_only_within_the_kl_budget_and_with_improvement(seed):
    policy, theta, data = make_data(seed)
    cfg = TrainConfig(algo="trpo", delta=0.05, cg_iters=20, cg_damping=0.01)
    out = trpo_update(policy, theta, data, cfg)
    assert out.accepted and 1 <= out.linesearch_tries <= cfg.max_backtracks
    assert math.isclose(out.step_fraction, cfg.backtrack_coef ** (out.linesearch_tries - 1))
    assert float(nb.policy_kl(policy, theta, out.theta, data.obs)) <= cfg.delta
    assert float(surrogate(policy, out.theta, data)) > float(surrogate(policy, theta, data))
    # a huge budget: the quadratic model's step overshoots the KL, so the line search must shrink it
    big = trpo_update(policy, theta, data, cfg.replace(delta=2.0))
    assert float(nb.policy_kl(policy, theta, big.theta, data.obs)) <= 2.0


def test_trpo_restores_the_old_parameters_when_no_try_qualifies(monkeypatch):
    policy, theta, data = make_data(0)
    real = algorithms.natural_step

    def backwards(*args, **kwargs):  # a step that lowers the surrogate at every fraction
        s = real(*args, **kwargs)
        return dataclasses.replace(s, step=-s.step)

    monkeypatch.setattr(algorithms, "natural_step", backwards)
    cfg = TrainConfig(algo="trpo", delta=0.05, max_backtracks=6)
    out = trpo_update(policy, theta, data, cfg)
    assert not out.accepted and out.linesearch_tries == 6
    assert torch.equal(out.theta, theta)


def test_reinforce_is_plain_gradient_ascent():
    policy, theta, data = make_data(1)
    cfg = TrainConfig(algo="vpg", learning_rate=0.3)
    out = vpg_update(policy, theta, data, cfg)
    assert torch.allclose(out.theta, theta + 0.3 * policy_gradient(policy, theta, data), atol=1e-15)


@pytest.mark.parametrize("update", [npg_update, trpo_update])
@pytest.mark.parametrize(
    "operator", [lambda v: -v, lambda v: 0.0 * v, lambda v: v * float("nan"), lambda v: v * float("inf")]
)
def test_non_positive_or_non_finite_curvature_skips_the_update(monkeypatch, update, operator):
    policy, theta, data = make_data(0)
    monkeypatch.setattr(algorithms, "fisher_operator", lambda *a, **k: operator)
    with pytest.warns(UpdateSkippedWarning, match="not positive and finite"):
        out = update(policy, theta, data, TrainConfig())
    assert not out.accepted and torch.equal(out.theta, theta) and torch.isfinite(out.theta).all()


def test_quad_not_positive_from_natural_step_skips(monkeypatch):
    """If g'H^-1 g itself comes out <= 0 or non-finite (natural_step raises), the update is skipped."""
    policy, theta, data = make_data(0)

    def bad_step(grad, *a, **k):
        raise nb.NotPositiveDefiniteError("g^T F^-1 g = -1.0e+00 must be positive and finite")

    monkeypatch.setattr(algorithms, "natural_step", bad_step)
    with pytest.warns(UpdateSkippedWarning):
        out = npg_update(policy, theta, data, TrainConfig())
    assert torch.equal(out.theta, theta)


@pytest.mark.parametrize("update", [npg_update, trpo_update, vpg_update])
def test_non_finite_gradient_skips_the_update(update):
    policy, theta, data = make_data(0)
    bad = dataclasses.replace(data, advantages=data.advantages * float("nan"))
    with pytest.warns(UpdateSkippedWarning, match="gradient is not finite"):
        out = update(policy, theta, bad, TrainConfig(algo="trpo"))
    assert torch.equal(out.theta, theta)


@pytest.mark.parametrize("update", [npg_update, trpo_update])
def test_all_equal_advantages_give_no_update_and_no_nan(update):
    policy, theta, data = make_data(0)
    flat = dataclasses.replace(data, advantages=normalize_advantages(torch.full((300,), 2.5)))
    with pytest.warns(UpdateSkippedWarning, match="gradient is 0"):
        out = update(policy, theta, flat, TrainConfig())
    assert torch.equal(out.theta, theta) and out.quad == 0.0
    assert torch.equal(vpg_update(policy, theta, flat, TrainConfig()).theta, theta)


def test_huge_step_that_overflows_is_skipped():
    policy, theta, data = make_data(0)
    data = dataclasses.replace(data, advantages=data.advantages * 1e10)
    with pytest.warns(UpdateSkippedWarning, match="parameters are not finite"):
        out = vpg_update(policy, theta, data, TrainConfig(learning_rate=1e308))
    assert torch.equal(out.theta, theta)


BAD = [
    ("algo", "sac"),
    ("env_id", ""),
    ("seed", -1),
    ("seed", 1.5),
    ("total_steps", 0),
    ("num_envs", 0),
    ("steps_per_env", -3),
    ("gamma", 1.1),
    ("gae_lambda", -0.5),
    ("delta", 0.0),
    ("delta", float("nan")),
    ("cg_iters", 0),
    ("cg_damping", -1e-3),
    ("cg_rtol", -1.0),
    ("backtrack_coef", 1.0),
    ("backtrack_coef", 0.0),
    ("max_backtracks", 0),
    ("learning_rate", float("inf")),
    ("hidden", (32, 0)),
    ("value_hidden", (-1,)),
    ("value_lr", 0.0),
    ("value_epochs", -1),
    ("value_minibatch", 0),
    ("dtype", "float16"),
    ("vectorization_mode", "threads"),
    ("num_threads", 0),
]


@pytest.mark.parametrize("name,value", BAD)
def test_invalid_hyperparameters_raise_a_value_error_naming_them(name, value):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**{name: value})
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        TrainConfig().replace(stepsize=1.0)


def test_layer_widths_must_be_a_tuple():
    with pytest.raises(TypeError, match="value_hidden"):
        TrainConfig(value_hidden=[32])


def history_without_time(history):
    return [dataclasses.replace(r, wall_time=0.0) for r in history]


@pytest.mark.parametrize("algo", ["npg", "trpo", "vpg"])
def test_same_seed_same_run_other_seed_other_run(algo):
    cfg = TrainConfig(algo=algo, seed=4, total_steps=1500, num_envs=4, steps_per_env=64, value_epochs=2)
    a, b = train(cfg), train(cfg)
    assert history_without_time(a.history) == history_without_time(b.history)
    assert torch.equal(a.theta, b.theta) and a.episodes.returns == b.episodes.returns
    c = train(cfg.replace(seed=5))
    assert not torch.equal(a.theta, c.theta)


def test_trainer_records_diagnostics():
    cfg = TrainConfig(algo="npg", seed=1, total_steps=2000, num_envs=4, steps_per_env=128, delta=0.02)
    trainer = Trainer(cfg)
    history = trainer.run()
    trainer.close()
    assert history[-1].env_steps >= 2000 and history[-1].env_steps == sum(r.batch_steps for r in history)
    assert sum(r.episodes for r in history) == len(trainer.episodes.returns)
    assert all(r.batch_steps <= 4 * 128 for r in history)
    for r in history:
        assert r.accepted and r.cg_iterations == 10 and r.quad > 0 and 0 < r.cg_residual < 1
        assert 0.25 * cfg.delta < r.kl < 4 * cfg.delta  # realized KL near the budget
        assert r.wall_time > 0 and r.linesearch_tries == 0
    times = [r.wall_time for r in history]
    assert times == sorted(times)


@pytest.mark.parametrize("seed", [0, 1])
def test_npg_learns_cartpole(seed):
    result = train(TrainConfig(algo="npg", seed=seed, total_steps=12_000, delta=0.05))
    first = np.mean(result.episodes.returns[:20])
    assert result.history[-1].last20_return > 3 * first


def test_first_solved():
    assert first_solved([500.0] * 19) is None
    assert first_solved([0.0] * 5 + [500.0] * 20) == 23  # (0 + 19 * 500) / 20 = 475 at episode 23
    assert first_solved([480.0, 460.0, 490.0], window=2, threshold=475.0) == 2  # means 470, 475
    assert first_solved([480.0, 460.0, 480.0], window=2, threshold=475.0) is None  # means 470, 470
    with pytest.raises(ValueError, match="window"):
        first_solved([1.0], window=0)


def test_trainer_needs_a_config():
    with pytest.raises(TypeError, match="TrainConfig"):
        Trainer({"algo": "npg"})


def test_learning_curve():
    from npgbook.rl import learning_curve

    returns, steps = [10.0, 20.0, 30.0, 40.0], [5, 9, 9, 20]
    got = learning_curve(returns, steps, np.array([5, 8, 9, 19, 20, 100]), window=2)
    assert got.tolist() == [10.0, 10.0, 25.0, 25.0, 35.0, 35.0]
    assert learning_curve(returns, steps, np.array([9]), window=20).tolist() == [20.0]  # fewer than window so far
    with pytest.raises(ValueError, match="before the first episode"):
        learning_curve(returns, steps, np.array([4]))
    with pytest.raises(ValueError, match="end_steps"):
        learning_curve(returns, steps[:2], np.array([9]))
