"""Benchmark: npgbook NPG and TRPO against sb3-contrib TRPO and tianshou NPG on Pendulum-v1.

Same design as ``bench_cartpole.py`` (whose helpers it imports): all agents train in one
process, interleaved seed by seed, with ``torch.set_num_threads(1)``. A run stops once the mean
return of its last 20 finished *training* episodes has reached both -250 and -200, or when its
budget of environment steps runs out. For each run it records

* env steps and wall seconds (from building the env and model) until the last-20 mean first
  reaches -250 and -200 (``None`` if never);
* the final policy's mean return over 20 fresh evaluation episodes (the mean action, clipped
  to the action bounds; the same evaluator for every agent).

Agents and their hyperparameters:

* npgbook NPG / TRPO: ``TrainConfig`` defaults with gamma 0.9 (the RL Zoo's Pendulum value),
  8 copies x 256 steps per batch; budget 200k steps;
* sb3-contrib TRPO: the RL Zoo's tuned Pendulum-v1 hyperparameters (``hyperparams/trpo.yml``:
  2 envs, n_steps 1024, gamma 0.9, 15 critic updates, gSDE with sample frequency 4); the Zoo's
  budget, 100k steps;
* tianshou NPG: the hyperparameters of tianshou's own Pendulum-v1 test
  (``test/continuous/test_npg.py``: 16 envs, 2048 steps per collect, gamma 0.95, GAE 0.95,
  return scaling, step size 0.5, 5 critic iterations, 2 repetitions); budget 200k steps.

Peers are benchmark-only dependencies (``pip install -e '.[bench]'`` in a separate venv).

Run:  python benchmarks/bench_pendulum.py [--seeds 0-9] [--agents all]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cartpole import median_or_none, quartiles
from bench_cartpole import versions as base_versions

from npgbook.rl import TrainConfig, Trainer, evaluate_actor, evaluate_policy, first_solved

HERE = Path(__file__).resolve().parent
ENV_ID = "Pendulum-v1"
THRESHOLDS = (-250.0, -200.0)
WINDOW, EVAL_EPISODES = 20, 20

NPG_CONFIG = TrainConfig(algo="npg", env_id=ENV_ID, gamma=0.9, num_envs=8, steps_per_env=256)
TRPO_CONFIG = NPG_CONFIG.replace(algo="trpo")
NPGBOOK_BUDGET = 200_000

# RL Zoo, hyperparams/trpo.yml, Pendulum-v1 ("Tuned"); n_timesteps 1e5
ZOO_TRPO = {"n_steps": 1024, "gamma": 0.9, "n_critic_updates": 15, "use_sde": True, "sde_sample_freq": 4}
ZOO_N_ENVS, ZOO_BUDGET = 2, 100_000

# tianshou test/continuous/test_npg.py (Pendulum-v1, threshold -250)
TIANSHOU_NPG = {
    "lr": 1e-3,
    "gamma": 0.95,
    "collection_step_num_env_steps": 2048,
    "update_step_num_repetitions": 2,
    "batch_size": 99999,
    "hidden_sizes": [64, 64],
    "num_train_envs": 16,
    "gae_lambda": 0.95,
    "return_scaling": True,
    "advantage_normalization": True,
    "optim_critic_iters": 5,
    "trust_region_size": 0.5,
}
TIANSHOU_BUDGET = 200_000


def done(returns: list[float]) -> bool:
    """Both thresholds reached by the last-20 mean."""
    return all(first_solved(returns, window=WINDOW, threshold=t) is not None for t in THRESHOLDS)


def outcome(returns: list[float], end_steps: list[int], end_times: list[float]) -> dict:
    """Steps and seconds when the last-20 mean first reached each threshold (None if never)."""
    out: dict = {"episodes": len(returns), "final_last20": float(np.mean(returns[-WINDOW:])) if returns else None}
    for t in THRESHOLDS:
        i = first_solved(returns, window=WINDOW, threshold=t)
        key = str(int(-t))
        out[f"steps_to_{key}"] = None if i is None else int(end_steps[i])
        out[f"seconds_to_{key}"] = None if i is None else float(end_times[i])
    return out


def run_npgbook(config: TrainConfig, seed: int, budget: int) -> dict:
    trainer = Trainer(config.replace(seed=seed, total_steps=budget))
    skipped = 0
    try:
        while trainer.sampler.total_steps < budget:
            record = trainer.iteration()
            skipped += record.skipped is not None
            if STOP_WHEN_DONE and done(trainer.episodes.returns):
                break
    finally:
        trainer.close()
    total = time.perf_counter() - trainer.start
    log = trainer.episodes
    result = outcome(log.returns, log.end_steps, log.end_times)
    finite = bool(torch.isfinite(trainer.theta).all())
    returns = evaluate_policy(
        trainer.policy, trainer.theta, env_id=ENV_ID, n_episodes=EVAL_EPISODES, seed=10_000 + seed,
        normalizer=trainer.normalizer,
    )
    return {**result, "total_steps": trainer.sampler.total_steps, "total_seconds": total,
            "eval_return": float(returns.mean()), "skipped_updates": skipped, "finite_params": finite,
            "final_sigma": float(torch.exp(trainer.theta[trainer.policy.n_net_params:]).mean())}


def run_npgbook_npg(seed: int) -> dict:
    return run_npgbook(NPG_CONFIG, seed, NPGBOOK_BUDGET)


def run_npgbook_trpo(seed: int) -> dict:
    return run_npgbook(TRPO_CONFIG, seed, NPGBOOK_BUDGET)


def run_sb3_trpo(seed: int, budget: int = ZOO_BUDGET) -> dict:
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class EpisodeRecorder(BaseCallback):
        def __init__(self, start: float) -> None:
            super().__init__()
            self.start = start
            self.returns: list[float] = []
            self.end_steps: list[int] = []
            self.end_times: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
                    self.end_steps.append(int(self.num_timesteps))
                    self.end_times.append(time.perf_counter() - self.start)
                    if STOP_WHEN_DONE and done(self.returns):
                        return False
            return True

    start = time.perf_counter()
    env = make_vec_env(ENV_ID, n_envs=ZOO_N_ENVS, seed=seed)
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **ZOO_TRPO)
    recorder = EpisodeRecorder(start)
    model.learn(total_timesteps=budget, callback=recorder)
    total = time.perf_counter() - start
    env.close()
    result = outcome(recorder.returns, recorder.end_steps, recorder.end_times)
    finite = all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())
    returns = evaluate_actor(
        lambda obs: model.predict(obs, deterministic=True)[0], env_id=ENV_ID, n_episodes=EVAL_EPISODES,
        seed=10_000 + seed,
    )
    return {**result, "total_steps": int(model.num_timesteps), "total_seconds": total,
            "eval_return": float(returns.mean()), "finite_params": finite}


def run_tianshou_npg(seed: int, budget: int = TIANSHOU_BUDGET) -> dict:
    """tianshou's NPG, driven collect-then-update by hand so that training episodes can be timed."""
    import gymnasium as gym
    from tianshou.algorithm import NPG
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, CollectStats, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
    from tianshou.utils.torch_utils import policy_within_training_step, torch_train_mode
    from torch import nn
    from torch.distributions import Independent, Normal

    hp = TIANSHOU_NPG
    start = time.perf_counter()
    np.random.seed(seed)
    torch.manual_seed(seed)
    env = gym.make(ENV_ID)
    train_envs = DummyVectorEnv([lambda: gym.make(ENV_ID) for _ in range(hp["num_train_envs"])])
    train_envs.seed(seed)
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_shape, hidden_sizes=hp["hidden_sizes"], activation=nn.Tanh),
        action_shape=act_shape, unbounded=True,
    )
    critic = ContinuousCritic(
        preprocess_net=Net(state_shape=obs_shape, hidden_sizes=hp["hidden_sizes"], activation=nn.Tanh)
    )
    for m in list(actor.modules()) + list(critic.modules()):
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight)
            nn.init.zeros_(m.bias)

    def dist(loc_scale: tuple[torch.Tensor, torch.Tensor]) -> Independent:
        loc, scale = loc_scale
        return Independent(Normal(loc, scale), 1)

    policy = ProbabilisticActorPolicy(actor=actor, dist_fn=dist, action_space=env.action_space,
                                      deterministic_eval=True)
    algorithm = NPG(
        policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=hp["lr"]), gamma=hp["gamma"],
        return_scaling=hp["return_scaling"], advantage_normalization=hp["advantage_normalization"],
        gae_lambda=hp["gae_lambda"], optim_critic_iters=hp["optim_critic_iters"],
        trust_region_size=hp["trust_region_size"],
    )
    buffer = VectorReplayBuffer(50_000, len(train_envs))
    collector = Collector[CollectStats](algorithm, train_envs, buffer)
    collector.reset()
    returns: list[float] = []
    end_steps: list[int] = []
    end_times: list[float] = []
    steps = 0
    while steps < budget:
        # as tianshou's OnPolicyTrainer does: sample (not the mean) inside a training step,
        # collect in torch eval mode, update in train mode
        with policy_within_training_step(policy), torch_train_mode(policy, False):
            stats = collector.collect(n_step=hp["collection_step_num_env_steps"])
        now = time.perf_counter() - start
        steps += int(stats.n_collected_steps)
        for r in np.asarray(stats.returns).ravel():
            returns.append(float(r))
            end_steps.append(steps)  # episodes are timed at the end of their collect
            end_times.append(now)
        if STOP_WHEN_DONE and done(returns):
            break
        with policy_within_training_step(policy), torch_train_mode(policy):
            algorithm.update(buffer=collector.buffer, batch_size=hp["batch_size"],
                             repeat=hp["update_step_num_repetitions"])
        collector.buffer.reset(keep_statistics=True)
    total = time.perf_counter() - start
    train_envs.close()
    result = outcome(returns, end_steps, end_times)
    finite = all(bool(torch.isfinite(p).all()) for p in actor.parameters())
    policy.eval()

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            loc, _ = actor(torch.as_tensor(obs, dtype=torch.float32))[0]
        return policy.map_action(loc.numpy())  # tianshou's own clip to [-1, 1] and scaling

    eval_returns = evaluate_actor(act, env_id=ENV_ID, n_episodes=EVAL_EPISODES, seed=10_000 + seed)
    return {**result, "total_steps": steps, "total_seconds": total, "eval_return": float(eval_returns.mean()),
            "finite_params": finite}


RUNNERS = {
    "npgbook NPG": run_npgbook_npg,
    "npgbook TRPO": run_npgbook_trpo,
    "sb3-contrib TRPO": run_sb3_trpo,
    "tianshou NPG": run_tianshou_npg,
}
BUDGETS = {"npgbook NPG": NPGBOOK_BUDGET, "npgbook TRPO": NPGBOOK_BUDGET, "sb3-contrib TRPO": ZOO_BUDGET,
           "tianshou NPG": TIANSHOU_BUDGET}
STOP_WHEN_DONE = True


def warm_up(names: list[str]) -> None:
    """One-time import and first-call costs (torch._dynamo, tianshou's imports) before timing."""
    run_npgbook(NPG_CONFIG, 0, 4096)
    if "sb3-contrib TRPO" in names:
        run_sb3_trpo(0, 2048)
    if "tianshou NPG" in names:
        run_tianshou_npg(0, 2048)


def versions(names: list[str]) -> dict:
    out = base_versions()
    if "tianshou NPG" in names:
        import tianshou

        out["tianshou"] = tianshou.__version__
    return out


def fmt_steps(v: float | None) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:,.0f}"


def fmt_secs(v: float) -> str:
    return f"{v:.1f}" if np.isfinite(v) else "-"


def report(data: dict) -> str:
    runs = {name: rs for name, rs in data["runs"].items() if rs}
    seeds = data["seeds"]
    lines = [
        "# Benchmark: npgbook NPG and TRPO vs sb3-contrib TRPO and tianshou NPG on Pendulum-v1",
        "",
        f"Run on {data['date']} (UTC) with `{data['command']}`.",
        "",
        "Machine and versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        (f"Load average (1, 5, 15 min) when the run started: {data['load_average']}, when it ended: "
         f"{data['load_average_end']}. One torch thread per run; runs interleaved seed by seed; "
         f"total wall time {data['wall_minutes']:.1f} min."),
        "",
        (f"Seeds: {', '.join(str(s) for s in seeds)}. A run stops once the mean return of its last {WINDOW} "
         "finished training episodes has reached both -250 and -200, or at its budget "
         "(npgbook 200k steps, sb3-contrib TRPO the RL Zoo's 100k, tianshou NPG "
         f"{data['budgets'].get('tianshou NPG', TIANSHOU_BUDGET) // 1000}k). Steps and seconds are "
         "counted from building the environment and the model; an unreached threshold counts as +inf in "
         "medians and quartiles. Final eval: the final policy's mean action (clipped) on "
         f"{EVAL_EPISODES} fresh episodes, the same evaluator for all."),
        "",
        ("" if data.get("finished", True) else
         "**Partial:** the run was stopped before its end; the tables cover the runs that finished.\n"),
        ("| algorithm | runs | reached -250 | steps to -250 | seconds to -250 | reached -200 | steps to -200 | "
         "seconds to -200 | final eval return | s per 1k steps |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    med: dict = {}
    for name, per_seed in runs.items():
        row = [name, str(len(per_seed))]
        for key in ("250", "200"):
            st = [r[f"steps_to_{key}"] for r in per_seed]
            se = [r[f"seconds_to_{key}"] for r in per_seed]
            reached = sum(v is not None for v in st)
            ms, mt = median_or_none(st), median_or_none(se)
            qs, qt = quartiles(st), quartiles(se)
            med[(name, key)] = (ms, mt)
            row += [f"{reached}/{len(per_seed)}", f"{fmt_steps(ms)} [{fmt_steps(qs[0])}-{fmt_steps(qs[1])}]",
                    ("-" if mt is None else f"{mt:.1f}") + f" [{fmt_secs(qt[0])}-{fmt_secs(qt[1])}]"]
        ev = [r["eval_return"] for r in per_seed]
        q = np.quantile(ev, [0.25, 0.75])
        row.append(f"{statistics.median(ev):.0f} [{q[0]:.0f} to {q[1]:.0f}]")
        row.append(f"{statistics.median(1000 * r['total_seconds'] / r['total_steps'] for r in per_seed):.3f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Medians are over seeds, [IQR] the 25%-75% quantiles.", "",
              "Ratios of medians (peer / npgbook NPG), where both medians are finite:", ""]
    lines.append("| peer | wall seconds to -250 | steps to -250 | wall seconds to -200 | steps to -200 |")
    lines.append("|---|---|---|---|---|")
    for name in runs:
        if name == "npgbook NPG" or "npgbook NPG" not in runs:
            continue
        cells = []
        for key in ("250", "200"):
            (ps, pt), (ns, nt) = med[(name, key)], med[("npgbook NPG", key)]
            cells.append("-" if None in (pt, nt) else f"{pt / nt:.1f}x")
            cells.append("-" if None in (ps, ns) else f"{ps / ns:.2f}x")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    bad = [(n, r["seed"]) for n, rs in runs.items() for r in rs if not r.get("finite_params", True)]
    skipped = {n: sum(r.get("skipped_updates", 0) for r in rs) for n, rs in runs.items() if n.startswith("npgbook")}
    lines += ["", f"Runs with non-finite parameters: {bad or 'none'}. Skipped npgbook updates: {skipped}.", ""]
    lines += ["Per seed (steps to -250 / steps to -200 / final eval return):", ""]
    lines.append("| seed | " + " | ".join(runs) + " |")
    lines.append("|---|" + "---|" * len(runs))
    for seed in seeds:
        cells = []
        for per_seed in runs.values():
            r = next((x for x in per_seed if x["seed"] == seed), None)
            cells.append("not run" if r is None else
                         f"{fmt_steps(r['steps_to_250'])} / {fmt_steps(r['steps_to_200'])} / {r['eval_return']:.0f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", "npgbook NPG: `" + json.dumps(data["npg_config"]) + "` (TRPO: the same with algo trpo)", "",
              f"sb3-contrib TRPO: `MlpPolicy`, n_envs {ZOO_N_ENVS}, `{json.dumps(ZOO_TRPO)}` (RL Zoo)", "",
              f"tianshou NPG: `{json.dumps(TIANSHOU_NPG)}` (tianshou's Pendulum-v1 test)", "", NOTES, ""]
    return "\n".join(lines)


NOTES = """## How to read this

* The thresholds are judged on *training* episodes, whose actions are sampled; the final eval
  column uses the mean action. A policy with a wide Gaussian can have a good mean action and
  still score below -250 on its training episodes (tianshou's own test instead stops on the
  return of deterministic test episodes).
* Seconds are wall time on a shared 2-core machine: compare the load averages above with the
  load of about 1 under which `cartpole_report.md` was measured. The ratios between agents of
  one run are the numbers to read; absolute seconds are inflated by the other processes.
* sb3-contrib TRPO uses gSDE (state-dependent exploration, resampled every 4 steps), as the RL
  Zoo's tuned settings do; it is part of why its seconds per 1,000 steps are high."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-9", help="seed range, e.g. 0-9")
    parser.add_argument("--agents", default=",".join(RUNNERS), help="comma-separated agent names")
    parser.add_argument("--tianshou-seeds", type=int, default=None, help="run tianshou only on the first N seeds")
    parser.add_argument("--tianshou-budget", type=int, default=TIANSHOU_BUDGET, help="env steps per tianshou run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_pendulum.json")
    parser.add_argument("--report", type=Path, default=HERE / "pendulum_report.md")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if args.report_only:
        args.report.write_text(report(json.loads(args.out.read_text())))
        return
    names = [n.strip() for n in args.agents.split(",") if n.strip()]
    unknown = set(names) - set(RUNNERS)
    if unknown:
        raise SystemExit(f"unknown agents {sorted(unknown)}; choose from {list(RUNNERS)}")
    first, last = (int(x) for x in args.seeds.split("-"))
    seeds = list(range(first, last + 1))
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]
    warm_up(names)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    command = f"python benchmarks/bench_pendulum.py --seeds {args.seeds} --agents '{args.agents}'"
    if args.tianshou_seeds is not None:
        command += f" --tianshou-seeds {args.tianshou_seeds}"
    if args.tianshou_budget != TIANSHOU_BUDGET:
        command += f" --tianshou-budget {args.tianshou_budget}"
        BUDGETS["tianshou NPG"] = args.tianshou_budget
    date = time.strftime("%Y-%m-%d %H:%M", time.gmtime())

    def save(finished: bool) -> dict:
        """Write the results so far (after every run, so that a cut-short run keeps them)."""
        data = {
            "date": date,
            "command": command,
            "finished": finished,
            "versions": versions(names),
            "load_average": load,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "wall_minutes": (time.perf_counter() - t0) / 60,
            "seeds": [s for s in seeds if any(r["seed"] == s for rs in runs.values() for r in rs)],
            "budgets": {n: BUDGETS[n] for n in names},
            "npg_config": asdict(NPG_CONFIG),
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        args.report.write_text(report(data))
        return data

    for k, seed in enumerate(seeds):
        for name in names:
            if name == "tianshou NPG" and args.tianshou_seeds is not None and k >= args.tianshou_seeds:
                continue
            result = run_tianshou_npg(seed, args.tianshou_budget) if name == "tianshou NPG" else RUNNERS[name](seed)
            runs[name].append({"seed": seed, **result})
            print(f"seed {seed} {name}: {json.dumps(result)}", flush=True)
            save(False)
    print(report(save(True)))


if __name__ == "__main__":
    main()
