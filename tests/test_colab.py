"""Readers' paths: a Colab-like fresh runtime, and the installable package.

``test_install_cells_pin_this_version`` is fast and always runs. The simulation,
``test_chapters_run_in_a_fresh_runtime_from_the_wheel``, is slow (it installs a fresh
environment and executes every chapter again), so it runs only when
``NPGBOOK_COLAB_TEST=1`` is set; ``.ci/run`` sets it. It builds a wheel of this checkout
with pip (PEP 517), makes a virtual environment that has torch and a Jupyter kernel but
not npgbook -- what a Colab runtime looks like -- and executes every chapter there. Each
chapter's own first cell must install the package, taking it from the wheel through the
documented ``NPGBOOK_SOURCE`` override, and the chapter must then run to the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import npgbook

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
TORCH_PIN = "torch==2.13.0"


def first_code_cell(path: Path) -> str | None:
    """The source of the notebook's first code cell, or None for a text-only chapter."""
    cells = json.loads(path.read_text())["cells"]
    return next(("".join(c["source"]) for c in cells if c["cell_type"] == "code"), None)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_install_cells_pin_this_version(path):
    cell = first_code_cell(path)
    if cell is None:
        pytest.skip("a text-only chapter runs nothing, so it installs nothing")
    assert 'find_spec("npgbook") is None' in cell, "the first code cell must install npgbook only where missing"
    assert "NPGBOOK_SOURCE" in cell
    tags = re.findall(r"@v([0-9][0-9a-z.]*)", cell)
    assert tags == [npgbook.__version__], f"install cell pins {tags}, the package is {npgbook.__version__}"


def test_version_is_single_sourced():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "npgbook.__version__"' in pyproject


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.skipif(os.environ.get("NPGBOOK_COLAB_TEST") != "1", reason="slow; set NPGBOOK_COLAB_TEST=1")
def test_chapters_run_in_a_fresh_runtime_from_the_wheel(tmp_path):
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)])
    (wheel,) = dist.glob("npgbook-*.whl")
    assert wheel.name.startswith(f"npgbook-{npgbook.__version__}-")

    venv = tmp_path / "runtime"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", TORCH_PIN, "ipykernel", "nbclient"])
    missing = subprocess.run([str(python), "-c", "import npgbook"], capture_output=True, cwd=tmp_path, check=False)
    assert missing.returncode != 0, "the fresh runtime must start without npgbook"

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["NPGBOOK_SOURCE"] = str(wheel)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    workdir = tmp_path / "book"
    workdir.mkdir()
    for chapter in CHAPTERS:
        copy = workdir / chapter.name
        shutil.copy(chapter, copy)
        run([str(venv / "bin" / "jupyter-execute"), "--timeout=600", copy.name], cwd=workdir, env=env)

    where = run([str(python), "-c", "import npgbook; print(npgbook.__version__); print(npgbook.__file__)"], cwd=tmp_path, env=env)
    version, location = where.stdout.split()
    assert version == npgbook.__version__
    assert "site-packages" in location and not location.startswith(str(ROOT)), "installed, not editable"
