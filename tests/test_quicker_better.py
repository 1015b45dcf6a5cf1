"""The "quicker and better" experiment: sweeps, per-run scores and statistics against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from npgbook.experiments import quicker_better as qb

TASK = qb.Task("CartPole-v1", 10_000, 475.0, 0.0)
TASKS = {"CartPole-v1": TASK}


def fake_result(returns, end_steps, *, method="npg", seed=0, kl=(0.01, 0.02, 0.03)):
    return {
        "method": method,
        "task": "CartPole-v1",
        "seed": seed,
        "config": {"delta": 0.02, "learning_rate": 1.0, "adam_lr": 3e-4},
        "episode_returns": list(returns),
        "episode_end_steps": list(end_steps),
        "episode_end_seconds": [s / 1000 for s in end_steps],
        "update_kl": list(kl),
        "skipped_updates": 0,
        "wall_seconds": 1.0,
    }


def test_sweeps_tune_every_method_alike_on_seeds_disjoint_from_evaluation():
    runs = qb.tuning_sweep().runs()
    assert len(runs) == len(qb.METHODS) * len(qb.TASKS) * 6 * len(qb.TUNING_SEEDS)
    assert not set(qb.TUNING_SEEDS) & set(qb.EVAL_SEEDS) and len(qb.EVAL_SEEDS) >= 10
    for m in qb.METHODS:
        values = {getattr(r.config, qb.STEP_SIZE[m]) for r in runs if r.method == m}
        assert values == set(qb.GRIDS[m]) and len(values) == 6  # the same budget for every method
    chosen = {m: qb.GRIDS[m][2] for m in qb.METHODS}
    ev = qb.evaluation_sweep("Acrobot-v1", chosen).runs()
    assert len(ev) == len(qb.METHODS) * len(qb.EVAL_SEEDS)
    assert {r.config.env_id for r in ev} == {"Acrobot-v1"}
    ppo = next(r.config for r in ev if r.method == "ppo")
    assert (ppo.algo, ppo.adam_lr, ppo.policy_epochs, ppo.policy_minibatch) == ("ppo", 1e-3, 4, 256)
    with pytest.raises(ValueError, match="no step size"):
        qb.evaluation_sweep("Acrobot-v1", {"npg": 0.02})


def test_a_run_summary_is_the_hand_computation():
    # 40 episodes: returns 10 (ending every 100 steps to step 2,000), then 20 of 500 (to 10,000)
    returns = [10.0] * 20 + [500.0] * 20
    ends = list(range(100, 2001, 100)) + list(range(2400, 10_001, 400))
    s = qb.summarize_run(fake_result(returns, ends), TASKS)
    # checkpoint 5,000: episodes ended by then are the 20 tens and 7 of the 500s (2,400..4,800 step 400)
    by_5000 = [10.0] * 13 + [500.0] * 7  # the last 20 of them
    assert s["curve"][0] == pytest.approx(np.mean(by_5000) / 475)
    assert s["final"] == pytest.approx(500 / 475) and s["auc"] == pytest.approx(np.mean(s["curve"]))
    # the 20-episode mean first reaches 475 at episode 39 (19 fives hundreds and one ten are 475.5)
    assert s["steps_to_threshold"] == ends[38] == 9600
    assert s["quick"] == pytest.approx(1 - 9600 / 10_000) and s["seconds_to_threshold"] == pytest.approx(9.6)
    assert s["kl_median"] == pytest.approx(0.02) and s["step_size"] == 0.02
    never = qb.summarize_run(fake_result([10.0] * 40, range(250, 10_001, 250)), TASKS)
    assert never["steps_to_threshold"] is None and never["quick"] == 0.0


def test_the_choice_is_the_best_mean_auc_with_ties_to_the_smaller_step():
    def row(method, step, auc):
        return {"task": "T", "method": method, "step_size": step, "auc": auc, "final": auc}

    tuning = [row(m, s, 0.5) for m in qb.METHODS for s in (0.1, 1.0)]
    tuning += [row("npg", 0.05, 0.9), row("npg", 0.05, 0.7), row("npg", 1.0, 0.79)]
    chosen = qb.choose(tuning)["T"]
    assert chosen["npg"] == 0.05  # mean 0.8 beats 1.0's mean (0.5 + 0.79) / 2
    assert chosen["vpg"] == 0.1  # a tie goes to the smaller step
    with pytest.raises(ValueError, match="no tuning runs"):
        qb.choose([r for r in tuning if r["method"] != "ppo"])


def runs_from(scores: dict[str, np.ndarray]) -> list[dict]:
    """Summaries with given ``final`` scores, ``scores[method]`` of shape (seeds, tasks)."""
    tasks = list(qb.TASKS)
    return [
        {"method": m, "task": tasks[j], "seed": i, "final": float(a[i, j]), "quick": float(a[i, j])}
        for m, a in scores.items()
        for i in range(a.shape[0])
        for j in range(a.shape[1])
    ]


def test_score_matrix_rows_are_seeds_and_columns_tasks():
    rng = np.random.default_rng(0)
    scores = {"npg": rng.random((10, 2)), "vpg": rng.random((10, 2))}
    got = qb.score_matrix(runs_from(scores)[::-1], "final", ["npg", "vpg"], list(qb.TASKS))
    np.testing.assert_array_equal(got["npg"], scores["npg"])
    runs = [r for r in runs_from(scores) if not (r["method"] == "vpg" and r["seed"] == 3)]
    with pytest.raises(ValueError, match="seeds"):
        qb.score_matrix(runs, "final", ["npg", "vpg"], list(qb.TASKS))


def test_iqm_optimality_gap_and_improvement_are_the_textbook_statistics():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.8, 0.2, (10, 2)), rng.normal(0.6, 0.2, (10, 2))
    iqm = qb.interval_estimates({"x": x}, "iqm")["x"]
    assert iqm[0] == pytest.approx(stats.trim_mean(x.ravel(), 0.25))
    assert iqm[1] < iqm[0] < iqm[2]
    gap = qb.interval_estimates({"x": x}, "optimality_gap")["x"]
    assert gap[0] == pytest.approx(np.mean(np.maximum(1 - x, 0)))
    # probability of improvement: the Mann-Whitney U / (n m) of each task, averaged over tasks
    p = qb.probability_of_improvement({"x": x, "y": y}, ["y"], of="x")["y"]
    u = [stats.mannwhitneyu(x[:, j], y[:, j]).statistic / 100 for j in range(2)]
    assert p[0] == pytest.approx(np.mean(u)) and p[1] < p[0] < p[2]
    with pytest.raises(ValueError, match="statistic"):
        qb.interval_estimates({"x": x}, "median")


def test_performance_profile_is_the_fraction_above_tau():
    x = np.array([[0.1, 0.5], [0.9, 1.0]])
    point, ci = qb.performance_profile({"x": x}, np.array([0.0, 0.5, 0.95]), reps=50)["x"]
    np.testing.assert_allclose(point, [1.0, 0.5, 0.25])
    assert ci.shape == (2, 3)


@pytest.mark.parametrize(
    ("final", "quick", "outcome"),
    [
        ((0.7, 0.6, 0.8), (0.7, 0.55, 0.85), "holds"),  # every interval above 1/2
        ((0.5, 0.3, 0.7), (0.7, 0.55, 0.85), "holds approximately"),  # a tie and a win
        ((0.5, 0.3, 0.7), (0.5, 0.4, 0.6), "does not hold as stated"),  # ties only
        ((0.2, 0.1, 0.4), (0.9, 0.8, 1.0), "does not hold as stated"),  # a loss
    ],
)
def test_the_verdict_follows_the_intervals(final, quick, outcome):
    poi = {"final": {"vpg": final, "adam-vpg": final}, "quick": {"vpg": quick, "adam-vpg": quick}}
    assert qb.verdict(poi)[0] == outcome


def test_the_vectorized_statistics_are_rlibles():
    from rliable import metrics

    rng = np.random.default_rng(2)
    for _ in range(50):
        x, y = np.round(rng.random((10, 2)), 1), np.round(rng.random((7, 2)), 1)  # with ties
        assert qb.improvement_probability(x, y) == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
        assert qb.iqm(x)[0] == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)
        assert qb.optimality_gap(x)[0] == pytest.approx(metrics.aggregate_optimality_gap(x), abs=1e-12)
    curves = rng.random((10, 2, 4))
    np.testing.assert_allclose(qb.iqm(curves), [metrics.aggregate_iqm(curves[..., j]) for j in range(4)])


def test_an_interval_does_not_depend_on_the_other_methods():
    rng = np.random.default_rng(3)
    x, y, z = (rng.random((10, 2)) for _ in range(3))
    alone = qb.interval_estimates({"x": x}, "iqm")["x"]
    assert qb.interval_estimates({"z": z, "x": x}, "iqm")["x"] == alone
    assert qb.probability_of_improvement({"x": x, "y": y, "z": z}, ["z", "y"], of="x")["y"] == (
        qb.probability_of_improvement({"x": x, "y": y}, ["y"], of="x")["y"]
    )


def test_an_interval_in_words():
    assert qb.call((0.7, 0.51, 0.9)) == "win" and qb.call((0.3, 0.1, 0.49)) == "loss"
    assert qb.call((0.6, 0.5, 0.7)) == "tie"  # touching 1/2 is not above it
    follow = qb.tuning_sweep(methods=qb.ONE_STEP_ADAM).runs()
    assert {r.method for r in follow} == {"adam-vpg-1x1"} and len(follow) == 2 * 6 * 5
    assert {r.config.policy_epochs for r in follow} == {1}
