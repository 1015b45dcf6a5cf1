"""A shared plotting style, so that every chapter's figures look alike and stay light."""

from __future__ import annotations

import matplotlib as mpl


def use_book_style() -> None:
    """Set matplotlib defaults for the book: modest dpi (small notebooks), grid, no top/right spines."""
    mpl.rcParams.update(
        {
            "figure.dpi": 90,
            "savefig.dpi": 90,
            "figure.figsize": (7.0, 3.6),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "legend.frameon": False,
        }
    )
