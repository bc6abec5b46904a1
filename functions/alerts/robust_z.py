"""The anomaly detector's robust z-score: a signal against the median and the spread of its
reference window, the spread floored where the MAD collapses (flat-lines, integer counts)."""

from __future__ import annotations

import math

from functions.alerts.detector_config import Direction
from functions.alerts.sampling import Transform
from functions.alerts.sorted_window import SortedWindow


def directed(value: float, direction: Direction) -> float:
    """The part of a deviation in the watched direction (0 for the other side)."""
    if direction == "up":
        return max(value, 0.0)
    if direction == "down":
        return min(value, 0.0)
    return value


def mean_deviation(reference: SortedWindow, center: float) -> float:
    """The mean absolute deviation scaled to sigma (normal data)."""
    return 1.2533 * reference.mean_abs_dev(center)


def robust_spread(
    reference: SortedWindow, center: float, mean_dev: float, transform: Transform, quantum: float
) -> float:
    """MAD x 1.4826, at least a quarter of ``mean_dev``, half the value quantum (on the log scale:
    at the current level) and 0.1% of the level."""
    mad = 1.4826 * reference.mad(center)
    if transform.offset is None:
        floor = 0.0 if math.isinf(quantum) else 0.5 * quantum
        level = 0.001 * abs(center)
    else:
        # A quantum in raw units is a step of quantum / (x + offset) on the log scale.
        base = max(transform.inverse(center), 0.0) + transform.offset
        floor = 0.0 if math.isinf(quantum) else 0.5 * quantum / base
        level = 0.001
    return max(mad, 0.25 * mean_dev, floor, level, 1e-9)
