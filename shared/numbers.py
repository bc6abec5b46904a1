"""Numbers as people read them in a page or a summary: four significant digits, but never an
exponent for an everyday count (``12,345``, not ``1.234e+04``)."""

from __future__ import annotations


def readable(value: float) -> str:
    """``0.2531``, ``12.35``, ``1234``, ``12,345``, ``1,234,567``; tiny or huge ones keep ``g``."""
    magnitude = abs(value)
    if 1e4 <= magnitude < 1e15:
        return f"{value:,.0f}"
    return f"{value:.4g}"
