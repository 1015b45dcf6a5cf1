"""The npgbook command line: argument errors exit 2 with a message; a tiny run writes its files."""

import csv
import json
import subprocess
import sys

import pytest

from npgbook.cli import build_parser, main
from npgbook.rl import HELP


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--algo", "sac", "--out", "x"], "invalid choice: 'sac'"),
        (["train", "--delta", "0", "--out", "x"], "delta must be > 0"),
        (["train", "--gamma", "2", "--out", "x"], "gamma must be in [0, 1]"),
        (["train", "--steps", "0", "--out", "x"], "total_steps must be >= 1"),
        (["train", "--steps", "ten", "--out", "x"], "invalid int value: 'ten'"),
        (["train", "--hidden", "32,x", "--out", "x"], "comma-separated integers"),
        (["train", "--hidden", "32,0", "--out", "x"], "layer widths must be >= 1"),
        (["train", "--env", "NoSuchEnv-v0", "--out", "x"], "NoSuchEnv-v0"),
        (["train", "--env", "Blackjack-v1", "--out", "x"], "environment Blackjack-v1 has the observation space Tuple"),
        (["train", "--eval-episodes", "-1", "--out", "x"], "eval_episodes must be >= 0"),
        (["train"], "the following arguments are required: --out"),
        ([], "the following arguments are required: COMMAND"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_arguments_give_a_message_and_exit_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_out_must_not_be_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises(SystemExit) as info:
        main(["train", "--out", str(target)])
    assert info.value.code == 2 and "is a file" in capsys.readouterr().err


def test_help_explains_every_hyperparameter():
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    flat = " ".join(text.split())
    for name, explanation in HELP.items():
        assert " ".join(explanation.split())[:30] in flat, name
    for flag in ("--algo", "--env", "--seed", "--steps", "--out", "--delta", "--cg-iters", "--cg-damping"):
        assert flag in text


@pytest.mark.parametrize("algo", ["npg", "trpo", "vpg"])
def test_tiny_run_writes_history_episodes_and_curve(tmp_path, algo, capsys):
    out = tmp_path / "run"
    code = main(
        ["train", "--algo", algo, "--seed", "3", "--steps", "600", "--num-envs", "2", "--steps-per-env", "150",
         "--value-epochs", "1", "--eval-episodes", "2", "--no-progress", "--out", str(out)]
    )
    assert code == 0
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    assert int(rows[-2]["env_steps"]) < 600 <= int(rows[-1]["env_steps"])  # stops once the budget is spent
    assert {"env_steps", "mean_return", "kl", "quad", "cg_residual", "cg_iterations", "linesearch_tries", "wall_time"} <= set(rows[0])
    episodes = list(csv.DictReader((out / "episodes.csv").read_text().splitlines()))
    assert len(episodes) > 0 and all(1 <= float(e["return"]) <= 500 for e in episodes)
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == algo and config["seed"] == 3
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["eval_returns"]) == 2 and summary["skipped_updates"] == 0
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_the_installed_command_and_python_m(tmp_path):
    """`python -m npgbook` reaches the same entry point (with a progress bar on stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "npgbook", "train", "--steps", "300", "--num-envs", "2", "--steps-per-env", "150",
         "--value-epochs", "1", "--eval-episodes", "0", "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "step/s" in proc.stderr or "step" in proc.stderr  # tqdm's bar
    assert (tmp_path / "m" / "history.csv").exists()
    bad = subprocess.run([sys.executable, "-m", "npgbook", "train", "--delta", "-1", "--out", "y"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "delta must be > 0" in bad.stderr
