"""Two small helpers for the chapters: glue a computed number into the prose, and show a function.

Neither does mathematics; they keep the page and the package in step.

* :func:`glue` hands a value to myst-nb, whose ``{glue}`` roles put it into the text when the book
  is built, so every number in the prose comes from the cell that computed it. Where myst-nb is
  not installed (a bare Colab runtime) it does nothing but return the value.
* :func:`show_source` displays the source of a package function in the page, so the reader sees
  the lines that compute a thing before the chapter calls it, and the page cannot drift from the
  package (the source is the cell's output, which the notebook tests compare).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["SourceListing", "glue", "show_source"]


def glue(name: str, value: T) -> T:
    """Register ``value`` under ``name`` for the book's ``{glue}`` roles; return ``value``.

    Args:
        name: the key used in the prose, e.g. ``{glue:text}`name:.3f```.
        value: a number (or short string) computed in the calling cell.

    Raises:
        ValueError: if ``name`` is not a non-empty identifier-like string.
    """
    if not isinstance(name, str) or not name or not name.replace("_", "a").replace("-", "a").isalnum():
        raise ValueError(f"name must be a non-empty identifier such as 'kl_ratio', got {name!r}")
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:  # a runtime without the book's tools: nothing to register
        return value
    _myst_glue(name, value, display=False)
    return value


class SourceListing:
    """The source of a function or class, shown as a Python code block.

    Its plain-text form is the source itself (what the notebook tests compare); in the rendered
    book and in Jupyter it shows as highlighted Markdown.
    """

    def __init__(self, source: str, name: str) -> None:
        self.source = source
        self.name = name

    def __repr__(self) -> str:
        return self.source

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.source}\n```"


def _without_docstring(source: str) -> str:
    """``source`` of one ``def``/``class`` with its docstring replaced by nothing."""
    tree = ast.parse(source)
    node = tree.body[0]
    body = getattr(node, "body", [])
    if (
        not body
        or not isinstance(body[0], ast.Expr)
        or not isinstance(getattr(body[0], "value", None), ast.Constant)
    ):
        return source
    if not isinstance(body[0].value.value, str):
        return source
    lines = source.splitlines()
    start, end = body[0].lineno - 1, body[0].end_lineno or body[0].lineno
    return "\n".join(lines[:start] + lines[end:])


def show_source(obj: Any, *, docstring: bool = False) -> SourceListing:
    """Show the source of the package function or class ``obj`` (docstring left out by default).

    Args:
        obj: a function, method or class defined in a Python file.
        docstring: keep the docstring (it states the mathematics of every argument).

    Raises:
        TypeError: if ``obj`` has no Python source (a builtin, or a value).
    """
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (TypeError, OSError) as exc:
        raise TypeError(f"obj must be a function or class with Python source, got {obj!r}") from exc
    if not docstring:
        source = _without_docstring(source)
    return SourceListing(source.rstrip("\n"), getattr(obj, "__qualname__", repr(obj)))
