"""Money as people read it, in the billing account's currency (the cost documents' ``currency``).

No locale library is a dependency, so a small table: the common currencies' symbols (written
before the amount, ``-$12.00``, ``€1,234.50``, ``¥1,235``), every other currency by its ISO code
after the amount (``1,234.00 CHF``), with ISO 4217's minor units (JPY and KRW have none, the
dinars three). A symbol shared by several currencies (the dollars, the kronor) is left to the code:
``$`` alone must mean USD.

A document without a currency (none found in the period) is shown in ``USD`` by its code, the
cost capability's default (``ION_COST_CURRENCY``), so the assumption is written on the figure.
"""

from __future__ import annotations

import math

UNKNOWN_CURRENCY = "USD"

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}

# ISO 4217 minor units other than 2.
MINOR_UNITS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}


def money(value: float | None, currency: str | None) -> str:
    """``value`` in ``currency`` (an ISO 4217 code; None: unknown), its sign before the symbol."""
    if value is None or not math.isfinite(value):
        return "no data"
    code = (currency or UNKNOWN_CURRENCY).upper()
    decimals = MINOR_UNITS.get(code, 2)
    digits = f"{abs(value):,.{decimals}f}"
    # A figure rounded to zero is not negative (-0.001 reads "$0.00", not "-$0.00").
    sign = "-" if value < 0 and float(digits.replace(",", "")) != 0 else ""
    symbol = SYMBOLS.get(code) if currency else None
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {code}"
