"""Sweeps: the cross product, one file per run, resume after a kill, local processes and Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from npgbook.rl import TrainConfig
from npgbook.rl.sweep import Sweep, load_results, pending_runs, run_one, run_sweep

TINY = TrainConfig(
    total_steps=256, num_envs=2, steps_per_env=64, hidden=(4,), value_hidden=(4,), value_epochs=1
)


def small_sweep(seeds=(0, 1)) -> Sweep:
    return Sweep(
        methods={"npg": {"algo": "npg"}, "vpg": {"algo": "vpg"}},
        tasks={"cartpole": {"env_id": "CartPole-v1"}},
        seeds=seeds,
        grid={"vpg": {"learning_rate": (0.1, 1.0)}},
        base=TINY,
    )


def test_runs_are_the_cross_product_with_stable_keys():
    runs = small_sweep().runs()
    assert len(runs) == 2 * 1 + 2 * 2  # npg: 2 seeds; vpg: 2 rates x 2 seeds
    assert {(r.method, r.seed, r.params) for r in runs} >= {("vpg", 1, (("learning_rate", 1.0),))}
    assert all(r.config.total_steps == 256 and r.config.seed == r.seed for r in runs)
    assert [r.key for r in runs] == [r.key for r in small_sweep().runs()]
    assert len({r.key for r in runs}) == len(runs)


def test_bad_sweeps_are_refused():
    with pytest.raises(ValueError, match="grid"):
        Sweep(methods={"npg": {}}, tasks={"t": {}}, seeds=(0,), grid={"ppo": {"adam_lr": (1e-3,)}})
    with pytest.raises(ValueError, match="non-empty"):
        Sweep(methods={}, tasks={"t": {}}, seeds=(0,))
    with pytest.raises(ValueError, match="delta"):
        Sweep(methods={"npg": {"delta": -1.0}}, tasks={"t": {}}, seeds=(0,)).runs()
    with pytest.raises(ValueError, match="key"):
        Sweep(methods={"npg": {}}, tasks={"t": {}}, seeds=(0, 0)).runs()


def test_run_one_is_reproducible_json():
    a, b = run_one(TINY), run_one(TINY)
    assert a["episode_returns"] == b["episode_returns"] and a["update_kl"] == b["update_kl"]
    assert json.loads(json.dumps(a))["config"]["total_steps"] == 256


def test_a_killed_sweep_resumes_where_it_stopped(tmp_path):
    sweep = small_sweep()
    runs = sweep.runs()
    # as if killed after seed 0's three runs: their files exist, and a half-written temporary file
    first = run_sweep(
        Sweep(sweep.methods, sweep.tasks, (0,), sweep.grid, TINY), tmp_path, workers=1, progress=False
    )
    (tmp_path / "junk.tmp").write_text("{")
    done_before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    assert len(done_before) == 3 and len(pending_runs(sweep, tmp_path)) == len(runs) - 3
    paths = run_sweep(sweep, tmp_path, workers=2, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in first} == done_before  # not run again
    results = list(load_results(paths))
    assert len(results) == len(runs) and not pending_runs(sweep, tmp_path)
    assert {r["key"] for r in results} == {r.key for r in runs}
    # a result is the same whether computed in a worker process or here
    solo = run_one(runs[-1].config)
    mine = next(r for r in results if r["key"] == runs[-1].key)
    assert mine["episode_returns"] == solo["episode_returns"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_a_sweep_ends_its_workers(tmp_path):
    """A sweep killed with SIGKILL (no chance to clean up) leaves no worker training on."""
    psutil = pytest.importorskip("psutil")
    script = textwrap.dedent(
        f"""
        from npgbook.rl import TrainConfig
        from npgbook.rl.sweep import Sweep, run_sweep
        sweep = Sweep(methods={{"npg": {{}}}}, tasks={{"c": {{}}}}, seeds=(0, 1),
                      base=TrainConfig(total_steps=10**8))  # hours: only a kill ends it
        run_sweep(sweep, {str(tmp_path)!r}, workers=2, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    busy: list = []
    while len(busy) < 2 and time.monotonic() < deadline:  # until both are training (past imports)
        time.sleep(0.5)
        busy = [c for c in parent.children(recursive=True) if c.cpu_times().user > 8]
    assert len(busy) >= 2, "the workers did not start"
    children = parent.children(recursive=True)
    proc.kill()
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} worker(s) outlived the killed sweep"
    assert not list(tmp_path.glob("*.json"))  # and nothing was half-written as a result


def test_ray_runs_the_same_results(tmp_path):
    pytest.importorskip("ray")
    sweep = small_sweep(seeds=(0,))
    paths = run_sweep(sweep, tmp_path, address="local", progress=False)
    results = {r["key"]: r for r in load_results(paths)}
    assert len(results) == 3
    run = sweep.runs()[0]
    assert results[run.key]["episode_returns"] == run_one(run.config)["episode_returns"]
