"""Command line: ``npgbook train --algo npg|trpo|vpg --env CartPole-v1 --seed 3 --steps 100000 --out runs/x``.

Trains with :class:`npgbook.rl.Trainer` behind a progress bar and writes, into ``--out``:

* ``history.csv`` -- one row of diagnostics per iteration (:class:`npgbook.rl.IterationRecord`);
* ``episodes.csv`` -- every finished training episode (return, length, env step, seconds);
* ``config.json`` -- the hyperparameters; ``summary.json`` -- the outcome and evaluation;
* ``learning_curve.png`` -- episode returns and the realized KL per update.

Bad arguments print a message naming the argument and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from .rl import ALGORITHMS, HELP, TrainConfig, Trainer, evaluate_policy, first_solved, learning_curve
from .rl.algorithms import DTYPES, OBS_NORM_MODES, IterationRecord
from .rl.rollout import VECTORIZATION_MODES

# command-line spellings of a few long field names
FLAG_NAMES = {"env_id": "--env", "total_steps": "--steps"}


def _widths(text: str) -> tuple[int, ...]:
    """Parse layer widths such as ``64,64`` (or ``none`` for no hidden layer)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,64, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be >= 1, got {text!r}")
    return widths


def build_parser() -> argparse.ArgumentParser:
    """The ``npgbook`` argument parser (``train`` subcommand; every hyperparameter of :class:`TrainConfig`)."""
    parser = argparse.ArgumentParser(
        prog="npgbook",
        description="Natural policy gradient (the note's Algorithm 1), TRPO and the vanilla policy gradient on gymnasium environments.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = sub.add_parser(
        "train",
        help="train a policy and write its history, episodes and learning curve",
        description="Train with NPG (Algorithm 1: sampled gradient, Fisher-vector products, conjugate gradient, "
        "step sqrt(2 delta / g^T H^-1 g) H^-1 g), TRPO (the same step plus a backtracking line search) or "
        "the vanilla policy gradient (vpg), all with the same policy network and GAE value baseline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = TrainConfig()
    choices = {
        "algo": ALGORITHMS,
        "dtype": tuple(DTYPES),
        "vectorization_mode": VECTORIZATION_MODES,
        "obs_norm": OBS_NORM_MODES,
    }
    for f in fields(TrainConfig):
        flag = FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        default = getattr(defaults, f.name)
        kwargs: dict = {"dest": f.name, "default": default, "help": HELP[f.name]}
        if f.name in choices:
            kwargs["choices"] = choices[f.name]
        elif isinstance(default, tuple):
            kwargs["type"] = _widths
            kwargs["default"] = ",".join(map(str, default)) or "none"  # argparse parses string defaults
            kwargs["metavar"] = "W1,W2"
        elif isinstance(default, bool):
            raise AssertionError(f"no boolean hyperparameters expected: {f.name}")
        elif isinstance(default, int):
            kwargs["type"] = int
        elif isinstance(default, float):
            kwargs["type"] = float
        train.add_argument(flag, **kwargs)
    train.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    train.add_argument(
        "--eval-episodes",
        type=int,
        default=20,
        help="evaluate the final policy (most probable action) on this many fresh episodes; 0 = skip",
    )
    train.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(subparser=None)
    train.set_defaults(subparser=train)
    return parser


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write dictionaries as CSV (``None`` as an empty field)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def plot_learning_curve(
    history: list[IterationRecord], returns: list[float], end_steps: list[int], config: TrainConfig
) -> Figure:
    """Episode returns (and their running mean of 20) against env steps; realized KL per update against delta."""
    fig = Figure(figsize=(9, 3.4), dpi=90)
    ax_ret, ax_kl = fig.subplots(1, 2)
    if returns:
        ax_ret.plot(end_steps, returns, ".", ms=2, alpha=0.3, label="episode return")
        ax_ret.plot(end_steps, learning_curve(returns, end_steps, np.asarray(end_steps)), label="mean of last 20")
    threshold = gym.spec(config.env_id).reward_threshold
    if threshold is not None:
        ax_ret.axhline(threshold, color="grey", ls=":", label=f"{threshold:g} (solved)")
    ax_ret.set(xlabel="environment steps", ylabel="return", title=f"{config.algo} on {config.env_id}, seed {config.seed}")
    ax_ret.legend(fontsize=8)
    ax_kl.plot([h.iteration for h in history], [h.kl for h in history], ".-", label="realized KL")
    if config.algo in ("npg", "trpo", "kl-vpg"):  # the methods with a KL budget
        ax_kl.axhline(config.delta, color="grey", ls=":", label="δ")
    ax_kl.set(xlabel="iteration", ylabel="KL(π_k ‖ π_k+1)", title="policy change per update")
    ax_kl.legend(fontsize=8)
    fig.tight_layout()
    return fig


def train_command(args: argparse.Namespace) -> int:
    """Run ``npgbook train``."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    try:
        config = TrainConfig(**values)
        if args.eval_episodes < 0:
            raise ValueError(f"eval_episodes must be >= 0, got {args.eval_episodes}")
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"out must be a directory, but {args.out} is a file")
        trainer = Trainer(config)
    except (ValueError, TypeError) as exc:
        args.subparser.error(str(exc))  # prints usage and the message, exits with status 2
    args.out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=config.total_steps, unit="step", disable=args.no_progress, dynamic_ncols=True, file=sys.stderr)

    def progress(record: IterationRecord) -> None:
        bar.update(min(record.batch_steps, max(config.total_steps - bar.n, 0)))
        last = "-" if record.last20_return is None else f"{record.last20_return:.0f}"
        bar.set_postfix(last20=last, kl=f"{record.kl:.4f}", refresh=False)

    try:
        history = trainer.run(progress)
    finally:
        bar.close()
        trainer.close()
    log = trainer.episodes
    write_csv(args.out / "history.csv", [asdict(h) for h in history])
    write_csv(
        args.out / "episodes.csv",
        [
            {"episode": i, "return": r, "length": n, "env_steps": s, "seconds": t}
            for i, (r, n, s, t) in enumerate(zip(log.returns, log.lengths, log.end_steps, log.end_times))
        ],
    )
    (args.out / "config.json").write_text(json.dumps(asdict(config), indent=1) + "\n")
    normalizer = trainer.normalizer
    torch.save(
        {
            "config": asdict(config),
            "policy": repr(trainer.policy),
            "theta": trainer.theta,
            "obs_normalizer": None if normalizer is None else normalizer.state_dict(),
        },
        args.out / "policy.pt",
    )
    solved = first_solved(log.returns)
    summary = {
        "env_steps": history[-1].env_steps,
        "iterations": len(history),
        "wall_seconds": history[-1].wall_time,
        "episodes": len(log.returns),
        "last20_return": history[-1].last20_return,
        "solved_at_env_steps": None if solved is None else log.end_steps[solved],
        "solved_at_seconds": None if solved is None else log.end_times[solved],
        "skipped_updates": sum(h.skipped is not None for h in history),
    }
    if args.eval_episodes > 0:
        returns = evaluate_policy(
            trainer.policy,
            trainer.theta,
            env_id=config.env_id,
            n_episodes=args.eval_episodes,
            seed=10_000 + config.seed,
            normalizer=normalizer,
        )
        summary["eval_mean_return"] = float(returns.mean())
        summary["eval_returns"] = returns.tolist()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot_learning_curve(history, log.returns, log.end_steps, config).savefig(args.out / "learning_curve.png")
    print(
        f"{config.algo} on {config.env_id}, seed {config.seed}: {summary['env_steps']} env steps in "
        f"{summary['wall_seconds']:.1f} s, last-20 mean return {summary['last20_return']}, "
        f"solved at {summary['solved_at_env_steps']} steps"
        + (f", evaluation mean return {summary['eval_mean_return']:.1f}" if args.eval_episodes > 0 else "")
    )
    print(f"wrote {args.out}/history.csv, episodes.csv, config.json, policy.pt, summary.json, learning_curve.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``npgbook`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        return train_command(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first
    return 2  # pragma: no cover
