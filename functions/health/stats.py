"""Small statistics for persona satisfaction and drift, exact and dependency-free: the chi-square
survival function for whole degrees of freedom (closed forms), Jensen-Shannon distance, Wilson
intervals and a normal interval for a mean."""

from __future__ import annotations

import math
from collections.abc import Sequence


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X ~ chi-square with ``df`` (a positive integer) degrees of freedom.

    Even df: ``e^{-x/2} Σ_{i<df/2} (x/2)^i / i!``. Odd df: ``erfc(√(x/2)) + e^{-x/2} Σ_{i=1}^{(df-1)/2}
    (x/2)^{i-1/2} / Γ(i+1/2)``. Summed in log space so large x underflows to 0 cleanly."""
    if df < 1:
        raise ValueError("df must be a positive integer")
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2 == 0:
        terms = [i * math.log(half) - half - math.lgamma(i + 1) for i in range(df // 2)]
        return min(1.0, sum(math.exp(t) for t in terms))
    total = math.erfc(math.sqrt(half))
    for i in range(1, (df - 1) // 2 + 1):
        total += math.exp((i - 0.5) * math.log(half) - half - math.lgamma(i + 0.5))
    return min(1.0, total)


def chi2_goodness_of_fit(observed: Sequence[float], expected_shares: Sequence[float]) -> tuple[float, float]:
    """Pearson's statistic and p-value of counts against expected shares (df = k - 1)."""
    n = sum(observed)
    stat = sum((o - n * p) ** 2 / (n * p) for o, p in zip(observed, expected_shares, strict=True))
    return stat, chi2_sf(stat, len(observed) - 1)


def chi2_homogeneity(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """Pearson's test that two count vectors come from one distribution (2-by-k table, df = k - 1),
    over the categories seen in either."""
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if a + b > 0]
    n1, n2 = sum(a for a, _ in pairs), sum(b for _, b in pairs)
    total = n1 + n2
    stat = 0.0
    for a, b in pairs:
        column = a + b
        for observed, row in ((a, n1), (b, n2)):
            expected = row * column / total
            stat += (observed - expected) ** 2 / expected
    return stat, chi2_sf(stat, max(1, len(pairs) - 1))


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2: 0..1) of two distributions
    given as non-negative weights (normalised here)."""
    sp, sq = sum(p), sum(q)
    p = [x / sp for x in p]
    q = [x / sq for x in q]
    divergence = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a > 0:
            divergence += 0.5 * a * math.log2(a / m)
        if b > 0:
            divergence += 0.5 * b * math.log2(b / m)
    return math.sqrt(max(0.0, divergence))


def wilson(successes: float, n: float, z: float = 1.959964) -> tuple[float, float] | None:
    """Wilson score interval (95% by default) for a proportion; None without observations."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(counts: dict[int, float], z: float = 1.959964) -> tuple[float, float, float] | None:
    """Mean of values given as ``value -> count`` and its normal 95% interval; None if empty."""
    n = sum(counts.values())
    if n <= 0:
        return None
    mean = sum(v * c for v, c in counts.items()) / n
    if n < 2:
        return mean, mean, mean
    variance = sum(c * (v - mean) ** 2 for v, c in counts.items()) / (n - 1)
    half = z * math.sqrt(variance / n)
    return mean, mean - half, mean + half
