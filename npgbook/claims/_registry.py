"""The registry of claims: registration, the three outcomes, running checks, the table."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch

Outcome = Literal["holds", "holds approximately", "does not hold as stated"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
"""The three outcomes, in the order the summary reports them."""


@dataclass(frozen=True)
class Verdict:
    """The result of one check.

    Attributes:
        outcome: one of :data:`OUTCOMES`.
        evidence: the measured numbers, rounded, in words.
    """

    outcome: Outcome
    evidence: str

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if not isinstance(self.evidence, str) or not self.evidence.strip():
            raise ValueError("evidence must be a non-empty string")


@dataclass(frozen=True)
class Claim:
    """One checkable claim of the note.

    Attributes:
        key: a unique identifier.
        section: the note's section, e.g. ``"§2"``.
        statement: the claim, paraphrased.
        chapter: the book chapter (document name, e.g. ``"02_first_order_flaws"``) that checks it in depth.
        check: computes the :class:`Verdict`.
    """

    key: str
    section: str
    statement: str
    chapter: str
    check: Callable[..., Verdict]


_REGISTRY: dict[str, Claim] = {}


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def claim(
    key: str, section: str, statement: str, chapter: str
) -> Callable[[Callable[..., Verdict]], Callable[..., Verdict]]:
    """Decorator: register the decorated check function as the claim ``key``.

    Raises:
        ValueError: if ``key`` is already registered, or an argument is not a non-empty string.
    """
    for name, value in (("key", key), ("section", section), ("statement", statement), ("chapter", chapter)):
        _text(name, value)
    if key in _REGISTRY:
        raise ValueError(f"key {key!r} is already registered")

    def register(check: Callable[..., Verdict]) -> Callable[..., Verdict]:
        if not callable(check):
            raise TypeError(f"check must be callable, got {check!r}")
        if key in _REGISTRY:  # registered between decoration and application
            raise ValueError(f"key {key!r} is already registered")
        _REGISTRY[key] = Claim(key, section, statement, chapter, check)
        return check

    return register


def registered() -> list[Claim]:
    """All registered claims, in registration order (a copy)."""
    return list(_REGISTRY.values())


_DEFAULT_THREADS = torch.get_num_threads()
"""The process's thread count at import: the setting the chapters train their CartPole snapshots with."""


@contextmanager
def _training_defaults() -> Iterator[None]:
    """Run with torch's defaults (float32, the process's thread count), as the chapters train.

    Training reduces in float32, and the order of its reductions depends on the thread count, so a
    snapshot trained under :func:`_float64`'s single thread would differ from chapter 6's.
    """
    previous, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(_DEFAULT_THREADS)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
        torch.set_num_threads(threads)


@contextmanager
def _float64() -> Iterator[None]:
    """Run a check in float64 on one thread, restoring the caller's settings afterwards.

    The checks work on tiny tensors, where thread start-up dominates: one thread is much faster.
    """
    previous, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
        torch.set_num_threads(threads)


def run(key: str, **inputs: object) -> Verdict:
    """Run the check of claim ``key`` once, in float64 on one thread, with ``inputs`` changed.

    Every check takes its inputs -- the functions it calls and the settings it uses -- as
    keyword arguments whose defaults are the book's setup, so a test can hand it a broken
    implementation or an altered input (its *counterfactual*) and see the verdict change.

    Raises:
        ValueError: if ``key`` is not registered.
        TypeError: if the check does not return a :class:`Verdict`, or takes no such input.
    """
    if key not in _REGISTRY:
        raise ValueError(f"key {key!r} is not registered (unregistered claim)")
    c = _REGISTRY[key]
    with _float64():
        verdict = c.check(**inputs)
    if not isinstance(verdict, Verdict):
        raise TypeError(f"the check of {c.key!r} returned {type(verdict).__name__}, not a Verdict")
    return verdict


def check_all(keys: Iterable[str] | None = None) -> list[tuple[Claim, Verdict]]:
    """Run the checks of ``keys`` (default: every registered claim, in registration order).

    Raises:
        ValueError: if ``keys`` names an unregistered claim.
        TypeError: if a check does not return a :class:`Verdict`.
    """
    if keys is None:
        chosen = registered()
    else:
        if isinstance(keys, str):
            raise ValueError("keys must be an iterable of claim keys, not a single string")
        keys = list(keys)
        unknown = [k for k in keys if k not in _REGISTRY]
        if unknown:
            raise ValueError(f"keys contains unregistered claims: {unknown}")
        chosen = [_REGISTRY[k] for k in keys]
    return [(c, run(c.key)) for c in chosen]


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def claims_table(results: Sequence[tuple[Claim, Verdict]]) -> str:
    """A markdown table with columns §, claim, checked in, outcome, evidence.

    The chapter is rendered as a MyST link ``{doc}`NAME```, so the table must be rendered as
    MyST markdown (in a notebook: cell metadata ``mystnb: {markdown_format: myst}``).
    """
    lines = ["| § | claim | checked in | outcome | evidence |", "|---|---|---|---|---|"]
    for c, v in results:
        cells = (c.section, c.statement, f"{{doc}}`{c.chapter}`", f"**{v.outcome}**", v.evidence)
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


def summary(results: Sequence[tuple[Claim, Verdict]]) -> dict[str, int]:
    """The number of claims per outcome (every outcome is a key, possibly with count 0)."""
    counts = {o: 0 for o in OUTCOMES}
    for _, v in results:
        counts[v.outcome] += 1
    return counts


# ----------------------------------------------------------------------------------------
# Pure decision helpers: a check's outcome follows from its numbers through these.


def grade(error: float, tol: float, approx_tol: float | None = None) -> Outcome:
    """Outcome of a claim measured by a non-negative ``error``.

    ``"holds"`` if ``error <= tol``; ``"holds approximately"`` if ``error <= approx_tol``
    (when given); otherwise ``"does not hold as stated"``.

    Raises:
        ValueError: for a negative or NaN error, a non-positive ``tol``, or ``approx_tol < tol``.
    """
    if not (error >= 0):  # also catches NaN
        raise ValueError(f"error must be >= 0, got {error}")
    if not (tol > 0):
        raise ValueError(f"tol must be > 0, got {tol}")
    if approx_tol is not None and not (approx_tol >= tol):
        raise ValueError(f"approx_tol must be >= tol, got {approx_tol} < {tol}")
    if error <= tol:
        return "holds"
    if approx_tol is not None and error <= approx_tol:
        return "holds approximately"
    return "does not hold as stated"


def decide(holds: bool, approximately: bool = False) -> Outcome:
    """Outcome from two computed conditions: the exact one, and the weaker one of a limit or factor."""
    if holds:
        return "holds"
    if approximately:
        return "holds approximately"
    return "does not hold as stated"



def _bound(x: float, tol: float) -> str:
    """``"below TOL"`` when ``x <= tol`` (rounding-level numbers vary by machine), else the number itself."""
    return f"below {tol:.0e}" if x <= tol else f"{x:.1e}"


def _level(x: float, tol: float) -> str:
    """``"below TOL"`` when ``x <= tol``, else ``"= x"`` (two significant figures)."""
    return _bound(x, tol) if x <= tol else f"= {_fmt(x)}"


def _fmt(x: float, digits: int = 2) -> str:
    """``x`` to ``digits`` significant figures, without a spurious exponent for ordinary sizes."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    magnitude = math.floor(math.log10(abs(x)))
    if -3 <= magnitude < 5:
        decimals = max(digits - 1 - magnitude, 0)
        return f"{x:.{decimals}f}"
    return f"{x:.{digits - 1}e}"


