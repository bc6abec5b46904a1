"""The alerts bench's generated series, part 1: the clean shape of each family (cloud-monitoring
exports: CPU, network bytes, request counts, sparse errors, latencies, flat-lines, seasonal traffic,
wandering gauges) with the nuisances that are not incidents. ``alerts_data.py`` adds incidents."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# -- the generator ----------------------------------------------------------------------------------
# Families modelled on cloud-monitoring exports (EC2/RDS/ELB-like): each is a clean process plus
# nuisance events that are NOT incidents (heavy-tailed bursts, blips, benign drifts and small
# shifts), because that is what makes static thresholds fire constantly on real data.
FAMILIES = ("cpu", "network", "requests", "sparse", "latency", "flat", "traffic", "temperature")
INCIDENTS = {
    "cpu": ["shift", "ramp", "spike", "drop"],
    "network": ["surge", "drop", "shift"],
    "requests": ["spike", "outage", "shift"],
    "sparse": ["storm", "shift"],
    "latency": ["shift", "ramp", "spike"],
    "flat": ["step", "storm"],
    "traffic": ["dip", "spike", "outage"],
    "temperature": ["drop", "ramp", "spike"],
}


def _pareto(rng: random.Random, alpha: float) -> float:
    return rng.paretovariate(alpha)


def _daily(i: int, interval: int, phase: float, sharp: float) -> float:
    """A day curve in [0, 1]: low at night, a broad (``sharp`` 1) to narrow (8) day peak; narrow
    peaks hover around static thresholds every day."""
    hour = ((i * interval) / 3600 + phase) % 24
    return math.sin(math.pi * (hour - 6) / 16) ** sharp if 6 <= hour <= 22 else 0.0


def _weekly(i: int, interval: int) -> float:
    return 0.6 if int(i * interval / 86400) % 7 >= 5 else 1.0


def bursts(n: int, rng: random.Random, rate: float) -> list[int]:
    """Start points of nuisance bursts: clustered (bursts come in flurries), ``rate`` per point."""
    starts, i = [], 0
    rate *= 2.5
    while i < n:
        i += max(1, int(rng.expovariate(rate)))
        if i < n:
            starts.append(i)
            if rng.random() < 0.3:  # a flurry
                starts.extend(min(n - 1, i + rng.randint(1, 12)) for _ in range(rng.randint(1, 4)))
    return starts


@dataclass
class Shape:
    """A clean series on a regular grid; ``scale`` the size of ordinary variation, ``bounds`` its
    physical limits, ``quantum`` its resolution."""

    values: list[float]
    scale: float
    low: float = 0.0
    high: float = math.inf
    quantum: float = 0.0
    multiplicative: bool = False


def base_shape(kind: str, n: int, interval: int, rng: random.Random) -> Shape:
    day_phase, sharp = rng.uniform(0, 24), rng.choice([1, 2, 4, 8])
    seasonal = rng.random() < 0.5
    if kind == "cpu":  # 0..100, AR(1), bursts up to saturation, maybe a daily cycle
        level, phi = rng.uniform(3, 55), rng.uniform(0.5, 0.97)
        sigma = rng.uniform(0.3, 0.08 * level + 0.5)
        amp = rng.uniform(0.2, 0.6) * level if seasonal else 0.0
        x, out = 0.0, []
        for i in range(n):
            x = phi * x + sigma * student_t(rng, 3)
            out.append(level + amp * (_daily(i, interval, day_phase, sharp) - 0.5) + x)
        for b in bursts(n, rng, rng.uniform(0.005, 0.05)):
            size = sigma * rng.uniform(3, 8) * _pareto(rng, 1.6)
            for j in range(b, min(n, b + rng.randint(1, 4))):
                out[j] += size
        return Shape(out, sigma / math.sqrt(1 - phi * phi), 0.0, 100.0, rng.choice([0.002, 0.01, 0.1]))
    if kind == "network":  # bytes: log-normal, heavy bursts, maybe daily
        base, sigma = 10 ** rng.uniform(4, 8), rng.uniform(0.2, 0.9)
        amp = rng.uniform(0.3, 0.8) if seasonal else 0.0
        out = [
            base * (1 - amp + 2 * amp * _daily(i, interval, day_phase, sharp)) * math.exp(rng.gauss(0, sigma))
            for i in range(n)
        ]
        for b in bursts(n, rng, rng.uniform(0.01, 0.06)):
            size = rng.uniform(1, 4) * _pareto(rng, 1.3)
            for j in range(b, min(n, b + rng.randint(1, 3))):
                out[j] *= 1 + size
        return Shape(out, sigma, quantum=1.0, multiplicative=True)
    if kind == "requests":  # ELB request counts: Poisson around a daily/weekly mean, bursty
        base, amp = 10 ** rng.uniform(0.7, 3), rng.uniform(0.3, 0.8) if seasonal else 0.0
        over = rng.uniform(0.1, 0.5)  # over-dispersion: real counts are far from Poisson
        out = []
        for i in range(n):
            mean = base * (1 - amp + 2 * amp * _daily(i, interval, day_phase, sharp)) * _weekly(i, interval)
            out.append(float(poisson(rng, mean * math.exp(rng.gauss(0, over)))))
        for b in bursts(n, rng, rng.uniform(0.01, 0.05)):
            size = rng.uniform(0.5, 3) * _pareto(rng, 1.5)
            for j in range(b, min(n, b + rng.randint(1, 3))):
                out[j] = float(poisson(rng, max(out[j], 1.0) * (1 + size)))
        return Shape(out, over + 1 / math.sqrt(base), quantum=1.0, multiplicative=True)
    if kind == "sparse":  # error counts: mostly zero, rare blips
        lam = rng.uniform(0.02, 1.0)
        out = [float(poisson(rng, lam)) for _ in range(n)]
        for b in bursts(n, rng, rng.uniform(0.005, 0.03)):
            out[b] += float(rng.randint(2, 12))
        return Shape(out, max(1.0, math.sqrt(lam)), quantum=1.0)
    if kind == "latency":  # seconds, log-normal with rare huge outliers
        base, sigma = rng.uniform(0.02, 0.8), rng.uniform(0.08, 0.5)
        amp = rng.uniform(0.1, 0.4) if seasonal else 0.0
        out = [
            base * (1 + amp * _daily(i, interval, day_phase, sharp)) * math.exp(rng.gauss(0, sigma))
            for i in range(n)
        ]
        for b in bursts(n, rng, rng.uniform(0.01, 0.06)):
            out[b] *= 1 + rng.uniform(0.5, 3) * _pareto(rng, 1.4)
        return Shape(out, sigma, quantum=0.0001, multiplicative=True)
    if kind == "flat":  # a constant with rare blips (disk writes, queue depth, idle gauges)
        level = rng.choice([0.0, 0.0, round(rng.uniform(1, 100), 1)])
        q = rng.choice([0.1, 1.0])
        noisy = rng.random() < 0.5
        out = [
            level + (round(rng.gauss(0, q) / q) * q if noisy and rng.random() < 0.2 else 0.0)
            for _ in range(n)
        ]
        for b in bursts(n, rng, rng.uniform(0.003, 0.03)):
            out[b] += rng.uniform(5, 50) * q * rng.choice([1, 1, -1 if level else 1])
        return Shape(out, 5 * q, 0.0, math.inf, q)
    if kind == "traffic":  # strong daily + weekly cycle, multiplicative noise
        base, amp, noise = 10 ** rng.uniform(1.5, 3.5), rng.uniform(0.5, 0.9), rng.uniform(0.04, 0.15)
        out = [
            base
            * (1 - amp + 2 * amp * _daily(i, interval, day_phase, sharp))
            * _weekly(i, interval)
            * (1 + noise * student_t(rng, 4))
            for i in range(n)
        ]
        for b in bursts(n, rng, rng.uniform(0.005, 0.03)):
            out[b] *= 1 + rng.uniform(0.3, 1.0) * _pareto(rng, 1.5)
        return Shape(out, noise, multiplicative=True)
    if kind == "temperature":  # a slowly wandering gauge (machine temperature, memory)
        level, phi, sigma = rng.uniform(40, 90), rng.uniform(0.98, 0.998), rng.uniform(0.1, 0.6)
        x, out = 0.0, []
        for _ in range(n):
            x = phi * x + rng.gauss(0, sigma)
            out.append(level + x + rng.gauss(0, sigma))
        for b in bursts(n, rng, rng.uniform(0.003, 0.02)):  # sensor glitches
            out[b] += rng.choice([-1, 1]) * sigma * rng.uniform(4, 10) * _pareto(rng, 1.5)
        return Shape(out, sigma / math.sqrt(1 - phi * phi) * 0.5, quantum=0.01)
    raise ValueError(kind)


def student_t(rng: random.Random, df: int) -> float:
    chi = sum(rng.gauss(0, 1) ** 2 for _ in range(df))
    return rng.gauss(0, 1) / math.sqrt(chi / df)


def poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:  # normal approximation: exact sampling is O(lam)
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
