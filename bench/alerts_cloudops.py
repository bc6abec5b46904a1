"""Generated cloud-operations series (issue 27, tenth round): the kind of production metric the
kept-aside NAB folders are said to hold (server CPU utilisation, machine temperature, request
counts, network and disk bytes), with labelled incidents and the irregularities that page an
on-call engineer for nothing.

    generate_cloudops(count=30, seed=2710) -> list[Labelled]

Every series is 5-minute data over 10-16 days (CloudWatch's default period), one of five families:

- ``cpu``: utilisation in percent, AR(1) noise, **saturation** (clipped at 100), a **periodic batch
  job** (every 1-24 h, 10-40 min at +15-40 points) in half of them;
- ``temperature``: a machine sensor, raw scale, a weak daily swing, **noise regimes** (the noise
  level doubles or halves for hours to days: a fan, a neighbour);
- ``requests``: Poisson counts with a daily cycle;
- ``network``, ``disk``: log-normal bytes per step with Pareto bursts, read from a **counter that
  resets** (a restart: the step reads 0-40% of its value, 1-3 times).

Each has a **slow drift** (up to +-30% over the series) in half of the cases, 1-3% of rows
**missing** and in one series of three a collector outage of 1-8 hours. None of these is labelled.

Labelled (the onset is the label; 0-2 per series, after the first 20%; one series in five has
none): a **lasting level shift** (a deploy, a resize, a new tenant: x0.4-0.6 or x1.7-3 on bytes and
counts, +-15-35 points on CPU, +-4-10 degrees on temperature) that **stays** to the end, often with
a new noise level; an **outage** (the value falls to near zero, or CPU to idle, for 20 min to 3 h,
then back); a **surge** (x2-5 or +30-50 points for 1-6 h); a **ramp to failure** (a steady climb
over 2-8 h that stays: a leak, an overheating machine).

The point of the set: after a lasting shift every later alert on the new level is a false alarm,
so false alarms per series per week here are what a detector that keeps paging on a new normal
costs on-call.
"""

from __future__ import annotations

import math
import random
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.alerts_data import T0, Labelled, drop_rows  # noqa: E402
from bench.alerts_shapes import poisson  # noqa: E402

FAMILIES = ("cpu", "temperature", "requests", "network", "disk")
KINDS = ("lasting_shift", "outage", "surge", "ramp")
INTERVAL = 300


def _daily(i: int, phase: float) -> float:
    """0..1, a broad daytime hump."""
    hour = (i * INTERVAL / 3600 + phase) % 24
    return math.sin(math.pi * (hour - 6) / 16) ** 2 if 6 <= hour <= 22 else 0.0


def _noise_regimes(n: int, rng: random.Random) -> list[float]:
    """A multiplier of the noise level per point: 1, with 0-3 stretches at x0.5 or x2-3."""
    scale = [1.0] * n
    for _ in range(rng.randint(0, 3)):
        at, length = rng.randrange(n), rng.randint(6 * 12, 3 * 288)
        factor = rng.choice([0.5, 2.0, 3.0])
        for i in range(at, min(n, at + length)):
            scale[i] = factor
    return scale


def _incident_kinds(index: int, rng: random.Random) -> list[str]:
    if index % 5 == 4:
        return []
    first = KINDS[index % len(KINDS)]
    return [first] if rng.random() < 0.6 else [first, rng.choice(KINDS)]


def generate_cloudops(count: int = 30, seed: int = 2710) -> list[Labelled]:
    out = []
    for index in range(count):
        rng = random.Random(seed * 1_000_003 + index)
        family = FAMILIES[index % len(FAMILIES)]
        n = int(rng.uniform(10, 16) * 288)
        phase = rng.uniform(0, 24)
        drift = rng.uniform(-0.3, 0.3) if rng.random() < 0.5 else 0.0
        regimes = _noise_regimes(n, rng) if family in ("temperature", "cpu") else [1.0] * n
        # The level (before noise) per point; additive families work in their own units.
        additive = family in ("cpu", "temperature")
        if family == "cpu":
            base, swing, noise = rng.uniform(5, 60), rng.uniform(0, 15), rng.uniform(0.8, 4)
        elif family == "temperature":
            base, swing, noise = rng.uniform(60, 90), rng.uniform(0, 3), rng.uniform(0.3, 1.5)
        else:
            base, swing, noise = 10 ** rng.uniform(1.5, 5), rng.uniform(0.2, 0.7), rng.uniform(0.1, 0.4)
        level = [
            (base + swing * _daily(i, phase)) * (1 + drift * i / n)
            if additive
            else base * (1 - swing + 2 * swing * _daily(i, phase)) * (1 + drift * i / n)
            for i in range(n)
        ]
        kinds = _incident_kinds(index, rng)
        onsets = sorted(rng.sample(range(int(0.2 * n), int(0.92 * n)), len(kinds)))
        # Keep two incidents a day apart, so each has its own window.
        if len(onsets) == 2 and onsets[1] - onsets[0] < 288:
            onsets[1] = min(n - 20, onsets[0] + 288 + rng.randrange(288))
        for at, kind in zip(onsets, kinds, strict=True):
            _inject(level, regimes, kind, at, additive, family, rng)
        values = _observe(level, regimes, family, noise, rng)
        if family == "cpu" and rng.random() < 0.5:  # a batch job
            every, length = rng.choice([12, 36, 72, 144, 288]), rng.randint(2, 8)
            height, start = rng.uniform(15, 40), rng.randrange(every)
            for i in range(start, n, every):
                for k in range(i, min(n, i + length)):
                    values[k] += height
        if family == "cpu":
            values = [min(100.0, max(0.0, v)) for v in values]
        if family in ("network", "disk"):
            for _ in range(rng.randint(1, 3)):  # counter resets
                at = rng.randrange(n // 10, n)
                if all(abs(at - o) > 3 for o in onsets):
                    values[at] *= rng.uniform(0.0, 0.4)
        hours_down = (lambda r: r.randint(1, 8) * 12) if index % 3 == 0 else None
        keep, position = drop_rows(rng, n, onsets, hours_down)  # the collector down for hours
        out.append(
            Labelled(
                f"{index:03d}-{family}-5m",
                INTERVAL,
                [round(values[i], 3) for i in keep],
                [position[o] for o in onsets],
                list(kinds),
                [T0 + timedelta(seconds=i * INTERVAL) for i in keep],
            )
        )
    return out


def _inject(  # noqa: PLR0917
    level: list[float],
    regimes: list[float],
    kind: str,
    at: int,
    additive: bool,
    family: str,
    rng: random.Random,
) -> None:
    n = len(level)
    up = rng.random() < 0.5
    if kind == "lasting_shift":
        if family == "cpu":
            delta = rng.uniform(15, 35) * (1 if up or level[at] < 40 else -1)
        elif family == "temperature":
            delta = rng.uniform(4, 10) * (1 if up else -1)
        else:
            factor = rng.uniform(1.7, 3.0) if up else rng.uniform(0.4, 0.6)
        new_noise = rng.choice([1.0, 1.0, 0.5, 2.0])
        for i in range(at, n):
            if additive:
                level[i] = max(0.5, level[i] + delta)
            else:
                level[i] *= factor
            regimes[i] *= new_noise
    elif kind == "outage":
        length = rng.randint(4, 36)
        for i in range(at, min(n, at + length)):
            level[i] = (1.0 if family == "cpu" else 0.6 * level[i]) if additive else 0.02 * level[i]
    elif kind == "surge":
        length = rng.randint(12, 72)
        for i in range(at, min(n, at + length)):
            if additive:
                level[i] += rng.uniform(30, 50) if family == "cpu" else 8.0
            else:
                level[i] *= 3.5
    else:  # ramp
        length = rng.randint(24, 96)
        if additive:
            rise = rng.uniform(25, 45) if family == "cpu" else rng.uniform(6, 12)
        else:
            rise = rng.uniform(2, 4)
        for i in range(at, n):
            share = min(1.0, (i - at + 1) / length)
            level[i] = level[i] + rise * share if additive else level[i] * (1 + (rise - 1) * share)


def _observe(
    level: list[float], regimes: list[float], family: str, noise: float, rng: random.Random
) -> list[float]:
    values = []
    ar = 0.0
    for mean, regime in zip(level, regimes, strict=True):
        if family in ("cpu", "temperature"):
            ar = 0.7 * ar + rng.gauss(0, noise * regime)
            values.append(mean + ar)
        elif family == "requests":
            values.append(float(poisson(rng, mean * math.exp(rng.gauss(0, noise)))))
        else:
            burst = rng.paretovariate(1.5) if rng.random() < 0.03 else 1.0
            values.append(mean * math.exp(rng.gauss(0, noise)) * burst)
    return values
