"""The execution-times page lists every chapter of the book, each within its budget."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _chapter_times():
    spec = importlib.util.spec_from_file_location("chapter_times", ROOT / "benchmarks" / "chapter_times.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_chapter_is_listed_within_its_budget():
    ct = _chapter_times()
    stems = ct.chapters()
    assert "01_introduction" in stems and "05b_algorithm1_cartpole" in stems and len(stems) >= 9
    rows = {
        m.group(1): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"\| `([\w]+)\.ipynb` \| (\d+) \| (\d+) \|", ct.PAGE.read_text())
    }
    assert set(rows) == set(stems), "re-run benchmarks/chapter_times.py after adding or removing a chapter"
    for stem, (seconds, budget) in rows.items():
        assert budget == ct.BUDGET_S.get(stem, ct.DEFAULT_BUDGET_S)
        assert seconds <= budget, f"{stem} took {seconds} s, over its budget of {budget} s"


def test_the_page_is_in_the_table_of_contents():
    assert "book/execution_times" in (ROOT / "_toc.yml").read_text()
