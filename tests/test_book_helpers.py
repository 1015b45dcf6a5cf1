"""npgbook.book: glue returns its value and checks the name; show_source shows the package's lines."""

from __future__ import annotations

import inspect

import pytest

from npgbook import book, natural


def test_glue_returns_the_value_and_checks_the_name():
    assert book.glue("kl_ratio", 0.25) == 0.25
    for bad in ("", "two words", 3, None):
        with pytest.raises(ValueError, match="name"):
            book.glue(bad, 1.0)  # type: ignore[arg-type]


def test_show_source_is_the_function_without_its_docstring():
    listing = book.show_source(natural.natural_step)
    full = inspect.getsource(natural.natural_step)
    assert repr(listing).startswith("def natural_step(")
    assert natural.natural_step.__doc__.strip().splitlines()[0] not in repr(listing)
    # every line shown is a line of the package's source, in order
    lines = [line for line in repr(listing).splitlines() if line.strip()]
    positions = [full.index(line) for line in lines]
    assert positions == sorted(positions)
    assert listing._repr_markdown_().startswith("```python\ndef natural_step(")
    with_doc = book.show_source(natural.natural_step, docstring=True)
    assert repr(with_doc) == full.rstrip("\n")


def test_show_source_refuses_what_has_no_source():
    with pytest.raises(TypeError, match="obj"):
        book.show_source(len)
    with pytest.raises(TypeError, match="obj"):
        book.show_source(3)
