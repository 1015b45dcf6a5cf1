"""Time every chapter of the book top to bottom and write the book's execution-times page.

Each notebook listed in ``_toc.yml`` is executed in a fresh kernel (as nbval and Colab run it),
``repeats`` times, in turn; the page ``book/execution_times.md`` lists the median wall time of
each against its budget (60 s; 90 s for the training sections 5.9, 5.10 and 7.1), with the machine, the date
and the load average, so a reader knows what "fast" was measured on.

    python benchmarks/chapter_times.py            # 1 run per chapter
    python benchmarks/chapter_times.py --repeats 3

The notebooks are executed in a temporary copy, so the committed outputs are not touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "book" / "execution_times.md"
BUDGET_S = {"05b_algorithm1_cartpole": 90.0, "05c_gaussian_pendulum": 90.0, "07b_quicker_better": 90.0}  # training sections; others: 60 s
DEFAULT_BUDGET_S = 60.0


def chapters() -> list[str]:
    """The notebook stems of ``_toc.yml``, in the book's order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    stems: list[str] = []

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            path = ROOT / f"{entry['file']}.ipynb"
            if path.exists():
                stems.append(path.stem)
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return stems


def run_once(stem: str, workdir: Path) -> float:
    """Wall seconds to execute ``book/<stem>.ipynb`` in a fresh kernel (in ``workdir``)."""
    nb = nbformat.read(ROOT / "book" / f"{stem}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def title(stem: str) -> str:
    nb = nbformat.read(ROOT / "book" / f"{stem}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return stem


def write_page(rows: list[tuple[str, str, list[float], float]], load: tuple[float, ...], repeats: int) -> None:
    lines = [
        "# Execution times",
        "",
        "Every chapter is a program: the book's tests run each one top to bottom (under nbval) on",
        "every change. This page lists how long each takes, measured by",
        f"`benchmarks/chapter_times.py` ({repeats} run{'s' if repeats > 1 else ''} per chapter, each in a",
        "fresh kernel, median shown) against its budget.",
        "",
        "| chapter | notebook | seconds | budget (s) |",
        "|---|---|---|---|",
    ]
    for stem, name, seconds, budget in rows:
        lines.append(f"| {name} | `{stem}.ipynb` | {statistics.median(seconds):.0f} | {budget:.0f} |")
    total = sum(statistics.median(s) for _, _, s, _ in rows)
    lines += [
        f"| **all chapters** | | **{total:.0f}** | |",
        "",
        (f"Measured on {dt.date.today().isoformat()}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, one torch thread per chapter "
        f"where the chapter sets it; load average at the start {', '.join(f'{x:.1f}' for x in load)}."),
        "Times on another machine differ; the budgets are the book's promise for a 2-core machine.",
        "",
    ]
    PAGE.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per chapter (median reported)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    load = os.getloadavg()
    stems = chapters()
    seconds: dict[str, list[float]] = {s: [] for s in stems}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "book"
        shutil.copytree(ROOT / "book", workdir)
        for _ in range(args.repeats):
            for stem in stems:
                seconds[stem].append(run_once(stem, workdir))
                print(f"{stem}: {seconds[stem][-1]:.1f} s", flush=True)
    rows = [(s, title(s), seconds[s], BUDGET_S.get(s, DEFAULT_BUDGET_S)) for s in stems]
    write_page(rows, load, args.repeats)
    print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
