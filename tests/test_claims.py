"""Tests of the claims registry (npgbook.claims): mechanics, table format, and every check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from npgbook import claims
from npgbook.claims import OUTCOMES, Claim, Verdict, _registry

BOOK = Path(__file__).resolve().parents[1] / "book"
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def results():
    return claims.check_all()


@pytest.fixture
def scratch_registry(monkeypatch):
    """A registry that tests may add to without touching the real one."""
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    return _registry._REGISTRY


def dummy(key="dummy", outcome="holds"):
    return Claim(key, "§0", "a statement | with a bar", "01_introduction", lambda: Verdict(outcome, "x = 1"))


# --- registry mechanics ------------------------------------------------------------------


def test_duplicate_key_raises(scratch_registry):
    existing = next(iter(scratch_registry))
    before = dict(scratch_registry)
    with pytest.raises(ValueError, match="already registered"):
        claims.claim(existing, "§1", "again", "01_introduction")(lambda: Verdict("holds", "e"))
    assert scratch_registry == before


def test_register_and_run_a_new_claim(scratch_registry):
    @claims.claim("test_only_claim", "§9", "a claim for the test", "01_introduction")
    def check():
        return Verdict(claims.grade(0.5, 1.0), "error 0.5")

    ((c, v),) = claims.check_all(["test_only_claim"])
    assert c.key == "test_only_claim" and c.check is check and v == Verdict("holds", "error 0.5")
    assert claims.registered()[-1] is c
    with pytest.raises(ValueError, match="already registered"):
        claims.claim("test_only_claim", "§9", "x", "01_introduction")


@pytest.mark.parametrize(
    "args",
    [("", "§1", "s", "c"), ("k", "", "s", "c"), ("k", "§1", " ", "c"), ("k", "§1", "s", None)],
)
def test_claim_rejects_empty_fields(args):
    with pytest.raises(ValueError):
        claims.claim(*args)


def test_unknown_key_raises():
    with pytest.raises(ValueError, match="unregistered"):
        claims.check_all(["no_such_claim"])
    with pytest.raises(ValueError):
        claims.check_all("figure2_kl_values")  # a bare string is not a list of keys


def test_check_must_return_a_verdict(scratch_registry):
    claims.claim("returns_none", "§9", "broken", "01_introduction")(lambda: None)
    with pytest.raises(TypeError, match="returns_none"):
        claims.check_all(["returns_none"])


def test_check_all_restores_torch_settings():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float32)
    try:
        claims.check_all(["fisher_size"])
        assert torch.get_default_dtype() == torch.float32 and torch.get_num_threads() == threads
    finally:
        torch.set_default_dtype(dtype)


def test_verdict_validates():
    with pytest.raises(ValueError, match="outcome"):
        Verdict("mostly holds", "e")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="evidence"):
        Verdict("holds", "  ")


# --- the decision helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (0.0, "holds"),
        (0.99e-6, "holds"),
        (1e-6, "holds"),
        (1.01e-6, "holds approximately"),
        (0.05, "holds approximately"),
        (0.0501, "does not hold as stated"),
        (5.8, "does not hold as stated"),
    ],
)
def test_grade_follows_the_numbers(error, expected):
    assert claims.grade(error, 1e-6, 0.05) == expected


def test_grade_without_an_approximate_band():
    assert claims.grade(1e-9, 1e-8) == "holds"
    assert claims.grade(2e-8, 1e-8) == "does not hold as stated"


@pytest.mark.parametrize("args", [(-1.0, 1.0), (float("nan"), 1.0), (0.1, 0.0), (0.1, 1.0, 0.5)])
def test_grade_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        claims.grade(*args)


def test_decide():
    assert claims.decide(True) == "holds"
    assert claims.decide(True, False) == "holds"
    assert claims.decide(False, True) == "holds approximately"
    assert claims.decide(False) == "does not hold as stated"


# --- table and summary -------------------------------------------------------------------


def test_claims_table_format():
    results = [
        (dummy("a"), Verdict("holds", "n = 3 | m = 4")),
        (dummy("b"), Verdict("holds approximately", "t → 0")),
    ]
    table = claims.claims_table(results)
    lines = table.strip().split("\n")
    assert lines[0] == "| § | claim | checked in | outcome | evidence |"
    assert lines[1] == "|---|---|---|---|---|"
    assert len(lines) == 2 + len(results)
    for line in lines[2:]:
        cells = re.split(r"(?<!\\)\|", line)[1:-1]  # split on unescaped bars only
        assert len(cells) == 5
        assert cells[2].strip() == "{doc}`01_introduction`"
    assert r"with a bar" in lines[2] and r"\|" in lines[2]
    assert "**holds approximately**" in lines[3]


def test_summary_counts_every_outcome():
    results = [(dummy(), Verdict("holds", "e")), (dummy(), Verdict("holds", "e"))]
    assert claims.summary(results) == {"holds": 2, "holds approximately": 0, "does not hold as stated": 0}
    assert list(claims.summary([])) == list(OUTCOMES)


# --- the registered claims ---------------------------------------------------------------


def test_registry_size_and_sections():
    registered = claims.registered()
    assert 28 <= len(registered) <= 45
    assert len({c.key for c in registered}) == len(registered)
    assert all(re.fullmatch(r"§\d.*", c.section) for c in registered)


def test_every_chapter_exists():
    stems = {p.stem for p in BOOK.glob("*.ipynb")}
    missing = {c.chapter for c in claims.registered()} - stems
    assert not missing, missing


def test_every_check_returns_a_verdict(results):
    assert [c.key for c, _ in results] == [c.key for c in claims.registered()]
    for c, v in results:
        assert isinstance(v, Verdict) and v.outcome in OUTCOMES, c.key
        assert v.evidence.strip(), c.key


def test_training_defaults_restores_settings():
    with _registry._float64():
        with _registry._training_defaults():
            assert torch.get_default_dtype() == torch.float32
            assert torch.get_num_threads() == _registry._DEFAULT_THREADS
        assert torch.get_default_dtype() == torch.float64 and torch.get_num_threads() == 1


def test_every_claim_has_a_counterfactual_test():
    """``pytest -k counterfactual`` runs one test per claim: ``test_counterfactual_KEY``, which changes
    an input or an implementation of the check and shows that its verdict flips."""
    names = set()
    for path in TESTS.glob("test_claims_*.py"):
        names |= set(re.findall(r"^def (test_counterfactual_\w+)\(", path.read_text(), re.MULTILINE))
    expected = {f"test_counterfactual_{c.key}" for c in claims.registered()}
    assert not expected - names, sorted(expected - names)
    assert not names - expected, sorted(names - expected)  # no test of a claim that is not registered


def test_run_passes_inputs_and_restores_settings(scratch_registry):
    seen = {}

    @claims.claim("takes_inputs", "§9", "a claim with an input", "01_introduction")
    def check(*, x=1.0):
        seen["dtype"] = torch.get_default_dtype()
        return Verdict(claims.decide(x > 0), f"x = {x}")

    assert claims.run("takes_inputs").outcome == "holds"
    assert claims.run("takes_inputs", x=-1.0).outcome == "does not hold as stated"
    assert seen["dtype"] == torch.float64
    with pytest.raises(TypeError):
        claims.run("takes_inputs", y=2.0)
    with pytest.raises(ValueError, match="unregistered"):
        claims.run("no_such_claim")
