"""A sliding window of the last values, also kept sorted: median, quantiles and MAD without
re-sorting. Every reference window and learned bar of the anomaly detector is one."""

from __future__ import annotations

import bisect
import math
from collections import deque


class SortedWindow:
    """The last ``size`` values, also kept sorted (median and MAD without re-sorting)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fifo: deque[float] = deque()
        self.sorted: list[float] = []

    def push(self, value: float) -> float | None:
        """Add a value; returns the one that fell out of the window, if any."""
        self.fifo.append(value)
        bisect.insort(self.sorted, value)
        if len(self.fifo) > self.size:
            old = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
            return old
        return None

    def __len__(self) -> int:
        return len(self.fifo)

    def median(self) -> float:
        s, n = self.sorted, len(self.sorted)
        return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])

    def quantile(self, q: float, min_rank: int = 1) -> float:
        """The q-quantile, but never above the ``min_rank``-th largest value: with few values a
        high quantile is the maximum, which one stray point sets."""
        s = self.sorted
        return s[max(0, min(len(s) - 1, int(q * len(s)), len(s) - min_rank))]

    def mad(self, center: float) -> float:
        """Median absolute deviation, by merging the two sides of the sorted list (O(n))."""
        s = self.sorted
        n = len(s)
        split = bisect.bisect_left(s, center)
        i, j = split - 1, split
        target = n // 2
        dev = 0.0
        for _ in range(target + 1):
            left = center - s[i] if i >= 0 else math.inf
            right = s[j] - center if j < n else math.inf
            if left <= right:
                dev, i = left, i - 1
            else:
                dev, j = right, j + 1
        return dev

    def mean_abs_dev(self, center: float) -> float:
        return math.fsum(abs(v - center) for v in self.fifo) / len(self.fifo)
