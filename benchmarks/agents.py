"""The agents of the same-run benchmarks, each trained by one function that records the same things.

``train_npgbook``, ``train_sb3_trpo`` and ``train_tianshou`` build an agent, train it on a
gymnasium task for a budget of environment steps (or until ``stop`` says so) and return a
:class:`Run`:

* every finished *training* episode: its return, the env step and the wall second it ended at,
  seconds counted from before the environment and the model are built;
* optional checkpoints every ``checkpoint_every`` env steps (at the first update boundary at or
  after each multiple): a copy of the policy, evaluated only *after* training (so evaluation
  costs no training time) on ``CHECKPOINT_EPISODES`` fresh episodes with the deterministic
  action (argmax, or the mean action clipped to the bounds);
* the final policy's return on ``EVAL_EPISODES`` fresh episodes, the same evaluator for all;
* whether every parameter is finite, and for npgbook the skipped updates and the final sigma.

The peers (sb3-contrib, tianshou) are benchmark-only dependencies, imported inside their
functions. One torch thread is the caller's choice (``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from npgbook.rl import TrainConfig, Trainer, evaluate_actor, evaluate_policy, first_solved

WINDOW = 20  # a threshold is reached when the mean of the last 20 training episodes reaches it
EVAL_EPISODES = 20  # final evaluation
CHECKPOINT_EPISODES = 10  # evaluation of each checkpoint

Stop = Callable[[list[float]], bool]


def last_mean_reaches(threshold: float, window: int = WINDOW) -> Stop:
    """A stop rule: the mean of the last ``window`` training returns has reached ``threshold``."""
    return lambda returns: first_solved(returns, window=window, threshold=threshold) is not None


@dataclass
class Run:
    """What one training run recorded (see the module docstring)."""

    returns: list[float] = field(default_factory=list)
    end_steps: list[int] = field(default_factory=list)
    end_times: list[float] = field(default_factory=list)
    checkpoints: list[tuple[int, float, Any]] = field(default_factory=list)
    total_steps: int = 0
    total_seconds: float = 0.0
    finite_params: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start = time.perf_counter()
        self._next = 0

    def episode(self, ret: float, steps: int, seconds: float | None = None) -> None:
        self.returns.append(float(ret))
        self.end_steps.append(int(steps))
        self.end_times.append(time.perf_counter() - self.start if seconds is None else float(seconds))

    def checkpoint(self, every: int | None, steps: int, snapshot: Callable[[], Any]) -> None:
        """Keep a copy of the policy if ``steps`` has passed the next multiple of ``every``."""
        if every and steps >= self._next:
            self.checkpoints.append((int(steps), time.perf_counter() - self.start, snapshot()))
            while self._next <= steps:
                self._next += every

    def finish(self, steps: int) -> None:
        self.total_steps, self.total_seconds = int(steps), time.perf_counter() - self.start

    def evaluate(self, score: Callable[[Any, int, int], np.ndarray], seed: int, final: Any) -> dict[str, Any]:
        """Evaluate the checkpoints and the final policy; the JSON-ready result of the run.

        ``score(snapshot, n_episodes, eval_seed)`` returns the episodes' returns.
        """
        curve = []
        for steps, seconds, snap in self.checkpoints:
            r = score(snap, CHECKPOINT_EPISODES, 20_000 + 100 * seed)
            curve.append([steps, seconds, float(r.mean())])
        final_returns = score(final, EVAL_EPISODES, 10_000 + seed)
        return {
            "returns": self.returns, "end_steps": self.end_steps, "end_times": self.end_times,
            "checkpoints": curve, "total_steps": self.total_steps, "total_seconds": self.total_seconds,
            "eval_return": float(final_returns.mean()), "finite_params": self.finite_params, **self.extra,
        }


# --------------------------------------------------------------------------------------------- npgbook


def train_npgbook(config: TrainConfig, seed: int, budget: int, *, stop: Stop | None = None,
                  checkpoint_every: int | None = None) -> dict[str, Any]:
    """npgbook's ``Trainer`` for ``budget`` env steps (or until ``stop``)."""
    run = Run()
    trainer = Trainer(config.replace(seed=seed, total_steps=budget))
    run.start = trainer.start  # its clock starts before the environment is built
    skipped = 0
    try:
        while trainer.sampler.total_steps < budget:
            record = trainer.iteration()
            skipped += record.skipped is not None
            run.checkpoint(checkpoint_every, trainer.sampler.total_steps,
                           lambda: (trainer.theta.clone(), copy.deepcopy(trainer.normalizer)))
            if stop is not None and stop(trainer.episodes.returns):
                break
    finally:
        trainer.close()
    run.finish(trainer.sampler.total_steps)
    log = trainer.episodes
    run.returns, run.end_steps, run.end_times = list(log.returns), list(log.end_steps), list(log.end_times)
    run.finite_params = bool(torch.isfinite(trainer.theta).all())
    run.extra = {"skipped_updates": skipped, "skip_reasons": sorted({r.skipped for r in trainer.history if r.skipped})}
    policy = trainer.policy
    if hasattr(policy, "act_dim"):
        run.extra["final_sigma"] = float(torch.exp(trainer.theta[policy.n_net_params:]).mean())

    def score(snap: tuple[torch.Tensor, Any], n: int, eval_seed: int) -> np.ndarray:
        theta, normalizer = snap  # evaluate_policy wraps evaluate_actor: the same evaluator
        return evaluate_policy(policy, theta, env_id=config.env_id, n_episodes=n, seed=eval_seed,
                               normalizer=normalizer)

    return run.evaluate(score, seed, (trainer.theta.clone(), trainer.normalizer))


# ------------------------------------------------------------------------------------ sb3-contrib TRPO


def train_sb3_trpo(env_id: str, hp: Mapping[str, Any], n_envs: int, seed: int, budget: int, *,
                   stop: Stop | None = None, checkpoint_every: int | None = None) -> dict[str, Any]:
    """sb3-contrib TRPO (``MlpPolicy``) with hyperparameters ``hp`` on ``n_envs`` copies."""
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    run = Run()

    class Recorder(BaseCallback):
        def _on_rollout_start(self) -> None:  # the policy after the update on the last rollout
            run.checkpoint(checkpoint_every, self.num_timesteps,
                           lambda: copy.deepcopy(self.model.policy.state_dict()))

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    run.episode(info["episode"]["r"], self.num_timesteps)
                    if stop is not None and stop(run.returns):
                        return False
            return True

    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    model = TRPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hp)
    model.learn(total_timesteps=budget, callback=Recorder())
    run.finish(model.num_timesteps)
    run.checkpoint(checkpoint_every, model.num_timesteps, lambda: copy.deepcopy(model.policy.state_dict()))
    env.close()
    run.finite_params = all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())
    if run.checkpoints and run.checkpoints[0][0] == 0:
        run.checkpoints.pop(0)  # the untrained policy

    def score(state: dict, n: int, eval_seed: int) -> np.ndarray:
        model.policy.load_state_dict(state)
        return evaluate_actor(lambda obs: model.predict(obs, deterministic=True)[0], env_id=env_id,
                              n_episodes=n, seed=eval_seed)

    return run.evaluate(score, seed, copy.deepcopy(model.policy.state_dict()))


# ------------------------------------------------------------------------------------ tianshou NPG/TRPO


def train_tianshou(algo: str, env_id: str, hp: Mapping[str, Any], seed: int, budget: int, *,
                   stop: Stop | None = None, checkpoint_every: int | None = None) -> dict[str, Any]:
    """tianshou's NPG or TRPO (``algo``), driven collect-then-update as its ``OnPolicyTrainer`` does.

    ``hp`` holds the keys of tianshou's example scripts (see ``TIANSHOU_*`` in the benchmark
    scripts); ``hp["style"]`` is ``"test"`` (its ``test/continuous`` scripts: plain init) or
    ``"mujoco"`` (its ``examples/mujoco`` scripts: normalized observations, orthogonal init with
    gain sqrt 2, last layer x 0.01, initial log sigma -0.5). Discrete action spaces get a
    categorical actor with the same networks.
    """
    import gymnasium as gym
    from tianshou.algorithm import NPG, TRPO
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, CollectStats, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv, VectorEnvNormObs
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
    from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic
    from tianshou.utils.torch_utils import policy_within_training_step, torch_train_mode
    from torch import nn
    from torch.distributions import Categorical, Independent, Normal

    if algo not in ("npg", "trpo"):
        raise ValueError(f"algo must be 'npg' or 'trpo', got {algo!r}")
    mujoco = hp.get("style", "test") == "mujoco"
    run = Run()
    np.random.seed(seed)
    torch.manual_seed(seed)
    env = gym.make(env_id)
    train_envs: Any = DummyVectorEnv([lambda: gym.make(env_id) for _ in range(hp["num_train_envs"])])
    train_envs.seed(seed)
    if mujoco:
        train_envs = VectorEnvNormObs(train_envs)
    obs_shape = env.observation_space.shape
    discrete = isinstance(env.action_space, gym.spaces.Discrete)

    def net() -> Net:
        return Net(state_shape=obs_shape, hidden_sizes=hp["hidden_sizes"], activation=nn.Tanh)

    if discrete:
        actor: nn.Module = DiscreteActor(preprocess_net=net(), action_shape=int(env.action_space.n),
                                         softmax_output=False)
        critic: nn.Module = DiscreteCritic(preprocess_net=net())

        def dist(logits: torch.Tensor) -> Categorical:
            return Categorical(logits=logits)
    else:
        actor = ContinuousActorProbabilistic(preprocess_net=net(), action_shape=env.action_space.shape,
                                             unbounded=True)
        critic = ContinuousCritic(preprocess_net=net())

        def dist(loc_scale: tuple[torch.Tensor, torch.Tensor]) -> Independent:  # type: ignore[misc]
            loc, scale = loc_scale
            return Independent(Normal(loc, scale), 1)

    for m in list(actor.modules()) + list(critic.modules()):
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=math.sqrt(2) if mujoco else 1.0)
            nn.init.zeros_(m.bias)
    if mujoco:
        nn.init.constant_(actor.sigma_param, -0.5)
        for m in actor.mu.modules():
            if isinstance(m, nn.Linear):
                m.weight.data.mul_(0.01)

    policy = ProbabilisticActorPolicy(actor=actor, dist_fn=dist, action_space=env.action_space,
                                      deterministic_eval=True, action_scaling=not discrete)
    common = dict(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=hp["lr"]), gamma=hp["gamma"],
                  return_scaling=hp["return_scaling"], advantage_normalization=hp["advantage_normalization"],
                  gae_lambda=hp["gae_lambda"], optim_critic_iters=hp["optim_critic_iters"])
    if algo == "npg":
        algorithm: Any = NPG(**common, trust_region_size=hp["trust_region_size"])
    else:
        algorithm = TRPO(**common, max_kl=hp["max_kl"], backtrack_coeff=hp["backtrack_coeff"],
                         max_backtracks=hp["max_backtracks"])
    buffer = VectorReplayBuffer(max(hp["collection_step_num_env_steps"], 4096) * 2, len(train_envs))
    collector = Collector[CollectStats](algorithm, train_envs, buffer)
    collector.reset()
    steps = 0

    def snapshot() -> tuple[dict, Any]:
        rms = copy.deepcopy(train_envs.get_obs_rms()) if mujoco else None
        return copy.deepcopy(actor.state_dict()), rms

    while steps < budget:
        # as OnPolicyTrainer: sample inside a training step, collect in eval mode, update in train mode
        with policy_within_training_step(policy), torch_train_mode(policy, False):
            stats = collector.collect(n_step=hp["collection_step_num_env_steps"])
        steps += int(stats.n_collected_steps)
        now = time.perf_counter() - run.start
        stopped = False
        for r in np.asarray(stats.returns).ravel():
            run.episode(r, steps, now)  # episodes are timed at the end of their collect
            stopped = stopped or (stop is not None and stop(run.returns))
        if stopped:
            break
        with policy_within_training_step(policy), torch_train_mode(policy):
            algorithm.update(buffer=collector.buffer, batch_size=hp["batch_size"],
                             repeat=hp["update_step_num_repetitions"])
        collector.buffer.reset(keep_statistics=True)
        run.checkpoint(checkpoint_every, steps, snapshot)
    run.finish(steps)
    train_envs.close()
    run.finite_params = all(bool(torch.isfinite(p).all()) for p in actor.parameters())
    policy.eval()

    def score(snap: tuple[dict, Any], n: int, eval_seed: int) -> np.ndarray:
        state, rms = snap
        actor.load_state_dict(state)

        def act(obs: np.ndarray) -> np.ndarray:
            x = obs if rms is None else rms.norm(obs)  # the frozen statistics of the snapshot
            with torch.no_grad():
                out = actor(torch.as_tensor(x, dtype=torch.float32))[0]
            if discrete:
                return out.argmax(-1).numpy()
            return policy.map_action(out[0].numpy())  # tianshou's own clip to [-1, 1] and scaling

        return evaluate_actor(act, env_id=env_id, n_episodes=n, seed=eval_seed)

    return run.evaluate(score, seed, snapshot())


# -------------------------------------------------------------------------------------------- summary


def first_reached(run: Mapping[str, Any], threshold: float, *, by: str = "training") -> tuple[int | None, float | None]:
    """(env steps, seconds) when ``threshold`` was first reached, or ``(None, None)``.

    ``by="training"``: the mean of the last ``WINDOW`` training episodes; ``by="eval"``: the
    checkpoint evaluation (deterministic action, ``CHECKPOINT_EPISODES`` episodes).
    """
    if by == "training":
        i = first_solved(run["returns"], window=WINDOW, threshold=threshold)
        return (None, None) if i is None else (int(run["end_steps"][i]), float(run["end_times"][i]))
    if by == "eval":
        for steps, seconds, ret in run["checkpoints"]:
            if ret >= threshold:
                return int(steps), float(seconds)
        return None, None
    raise ValueError(f"by must be 'training' or 'eval', got {by!r}")


def checkpoint_return(run: Mapping[str, Any], steps: int) -> float | None:
    """The evaluated return of the checkpoint taken for ``steps`` (the first at or after it), or None."""
    return next((r for s, _, r in run["checkpoints"] if s >= steps), None)


def median_inf(values: list[float | None]) -> float:
    """Median over seeds with an unreached threshold (None) counted as +inf."""
    return float(np.median([math.inf if v is None else v for v in values]))


def quartiles_inf(values: list[float | None]) -> tuple[float, float]:
    v = np.array([math.inf if x is None else x for x in values], dtype=float)
    with np.errstate(invalid="ignore"):  # inf - inf inside the interpolation gives nan: it is inf
        q = np.nan_to_num(np.quantile(v, [0.25, 0.75]), nan=math.inf)
    return float(q[0]), float(q[1])


def parse_command_line(agents: str, seeds: str, known: Mapping[str, Any]) -> tuple[list[str], list[int]]:
    """``"a,b"`` and ``"0-9"`` from a benchmark's command line: agent names (checked) and seeds."""
    names = [n.strip() for n in agents.split(",") if n.strip()]
    unknown = set(names) - set(known)
    if unknown:
        raise SystemExit(f"unknown agents {sorted(unknown)}; choose from {list(known)}")
    try:
        first, last = (int(x) for x in seeds.split("-"))
    except ValueError:
        raise SystemExit(f"--seeds must look like 0-9, got {seeds!r}") from None
    return names, list(range(first, last + 1))


def config_json(config: Any) -> str:
    """A TrainConfig as JSON for a report, without the fields the benchmark sets per run."""
    return json.dumps({k: v for k, v in asdict(config).items() if k not in ("seed", "total_steps")})


def falls(runs: dict[str, list[dict]], threshold: float, below: float) -> list[str]:
    """Report lines naming the runs whose checkpoints reached ``threshold`` but whose final eval is < ``below``."""
    out = []
    for name, rs in runs.items():
        fell = [f"seed {r['seed']} ({r['eval_return']:.0f})" for r in rs
                if first_reached(r, threshold, by="eval")[0] is not None and r["eval_return"] < below]
        out.append(f"* {name}: {len(fell)}/{len(rs)}" + (f" -- {', '.join(fell)}" if fell else ""))
    return out


def iqm_ci(values: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean over seeds with its 95 % bootstrap interval (rliable, via npgbook)."""
    from npgbook.experiments.quicker_better import interval_estimates

    scores = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    return interval_estimates({"x": scores}, "iqm", reps=reps, seed=seed)["x"]


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """CPU, core count and the versions of the packages that matter."""
    import importlib.metadata as md
    import os
    import platform

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    out = {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("gymnasium", "numpy", *extra):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def fmt(v: float | None, spec: str = ",.0f") -> str:
    """A number for a report table: "-" for none, "∞" for a threshold not reached (+inf)."""
    if v is None or math.isnan(v):
        return "-"
    return "∞" if math.isinf(v) else format(v, spec)


# ------------------------------------------------------------------------------ same-run report parts


def label(threshold: float) -> str:
    """A threshold as the report prints it ("-250", "950")."""
    return f"{threshold:g}"


def summarize(run: Mapping[str, Any], thresholds: tuple[float, ...], at_steps: int | None = None) -> dict[str, Any]:
    """Steps and seconds to each threshold, judged on training episodes and on the checkpoints."""
    out: dict[str, Any] = {}
    for t in thresholds:
        for by in ("training", "eval"):
            out[f"{by}_steps_{label(t)}"], out[f"{by}_seconds_{label(t)}"] = first_reached(run, t, by=by)
    if at_steps is not None:
        out["eval_at"] = checkpoint_return(run, at_steps)
    return out


def reached_table(runs: Mapping[str, list[dict]], thresholds: tuple[float, ...], by: str) -> list[str]:
    """Markdown rows: how many seeds reached each threshold, steps and seconds (median [IQR])."""
    head = ["algorithm", "runs"]
    for t in thresholds:
        head += [f"reached {label(t)}", f"steps to {label(t)}", f"seconds to {label(t)}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rs in runs.items():
        row = [name, str(len(rs))]
        for t in thresholds:
            st = [r["summary"][f"{by}_steps_{label(t)}"] for r in rs]
            se = [r["summary"][f"{by}_seconds_{label(t)}"] for r in rs]
            qs, qt = quartiles_inf(st), quartiles_inf(se)
            row += [f"{sum(v is not None for v in st)}/{len(rs)}",
                    f"{fmt(median_inf(st))} [{fmt(qs[0])}-{fmt(qs[1])}]",
                    f"{fmt(median_inf(se), '.1f')} [{fmt(qt[0], '.1f')}-{fmt(qt[1], '.1f')}]"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def ratio_table(runs: Mapping[str, list[dict]], base: str, thresholds: tuple[float, ...], by: str) -> list[str]:
    """Markdown rows: peer / ``base`` ratios of the median seconds and steps to each threshold."""
    head = [f"peer / {base}"]
    for t in thresholds:
        head += [f"wall seconds to {label(t)}", f"steps to {label(t)}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rs in runs.items():
        if name == base:
            continue
        cells = []
        for t in thresholds:
            for what in ("seconds", "steps"):
                key = f"{by}_{what}_{label(t)}"
                p = median_inf([r["summary"][key] for r in rs])
                b = median_inf([r["summary"][key] for r in runs[base]])
                cells.append("-" if not (math.isfinite(p) and math.isfinite(b)) else
                             f"**{p / b:.1f}x**" if what == "seconds" else f"{p / b:.2f}x")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def returns_table(runs: Mapping[str, list[dict]], at_label: str, final_label: str) -> list[str]:
    """Markdown rows: IQM [95% CI] of the checkpoint return at ``summary["eval_at"]`` and of the final eval."""
    lines = [f"| algorithm | eval at {at_label} | final eval ({final_label}) | mean ± sd of the final eval | "
             "s per 1k env steps (median) |", "|---|---|---|---|---|"]
    for name, rs in runs.items():
        at = [r["summary"].get("eval_at") for r in rs]
        cell_at = "-" if None in at else "{:.0f} [{:.0f}, {:.0f}]".format(*iqm_ci(at))
        final = [r["eval_return"] for r in rs]
        cell_final = "{:.0f} [{:.0f}, {:.0f}]".format(*iqm_ci(final))
        sd = f"{np.mean(final):.0f} ± {np.std(final, ddof=1):.0f}" if len(final) > 1 else f"{final[0]:.0f}"
        spk = np.median([1000 * r["total_seconds"] / r["total_steps"] for r in rs])
        lines.append(f"| {name} | {cell_at} | {cell_final} | {sd} | {spk:.3f} |")
    return lines


def plot_iqm_curves(runs: Mapping[str, list[dict]], grid: np.ndarray, path: Any,
                    thresholds: tuple[float, ...]) -> None:
    """IQM over seeds of the checkpoint returns against env steps and against wall seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from npgbook.experiments.quicker_better import iqm_curves

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, rs in runs.items():
        scores = np.array([[np.nan if (v := checkpoint_return(r, int(g))) is None else v for g in grid] for r in rs])
        ok = ~np.isnan(scores).any(axis=0)
        if not ok.any():
            continue
        mid, ci = iqm_curves({name: scores[:, None, ok]})[name]
        (line,) = ax.plot(grid[ok] / 1e3, mid, label=name)
        ax.fill_between(grid[ok] / 1e3, ci[0], ci[1], color=line.get_color(), alpha=0.2)
        secs = np.median([[next((c[1] for c in r["checkpoints"] if c[0] >= g), np.nan) for g in grid[ok]]
                          for r in rs], axis=0)
        bx.plot(secs, mid, color=line.get_color())
    for x in (ax, bx):
        for t, style in zip(thresholds, (":", "--", "-.")):
            x.axhline(t, color="k", lw=0.6, ls=style)
        x.set_ylabel("IQM eval return (deterministic action)")
    ax.set_xlabel("environment steps (thousands)")
    bx.set_xlabel("wall seconds (median over seeds, log scale)")
    bx.set_xscale("log")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
