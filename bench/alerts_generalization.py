"""Does the anomaly detector hold on data it was not tuned on? (issue 27)

    .venv/bin/python bench/alerts_generalization.py [--corpus DIR] [--variants NAME,...] [--workers 2]

One run prints, side by side:

1. **The NAB tuning corpus per category** (artificialNoAnomaly, artificialWithAnomaly,
   realAdExchange, realTraffic, realTweets) with the defaults: NAB standard score of the category,
   windows found, false alarms, false alarms per series per week; and the whole corpus with the
   corpus's ``score.py`` arithmetic (one detection per alert start, 15% probation, the same
   normalisation: no alert 0, perfect 100).
2. **Generated irregular series** (``alerts_data.generate_irregular``: level shifts and seasonality
   changes labelled; missing rows, collector outages and counter resets not) and **generated
   cloud-operations series** (``alerts_cloudops.generate_cloudops``: CPU, temperature, requests,
   network and disk bytes; lasting shifts, outages, surges and ramps labelled; batch jobs,
   saturation, drifts, noise regimes, counter resets and missing rows not), each scored the same way
   as ``bench/alerts.py --quality``, with false alarms per series per week.
3. For each audited choice of the seventh round (``cooldown``, ``spike-rank``: the default) and
   each candidate change listed in ``VARIANTS`` and named with ``--variants``: **leave one
   category out**. Each comes with a few values of its one parameter (the defaults among them);
   for each fold the value is chosen on the other four categories (their pooled NAB score) and
   scored on the left-out one. The left-out scores are the honest figures; the pooled score of
   the files each under the value chosen without its own category is the corpus score a reader
   should quote.

The corpus is read from ``--corpus`` (default: ``shared/datasets/nab-tuning`` beside the
repository). Only its five categories are read; NAB's other folders are never opened.
Detection runs ``detector.detect`` over the CSV rows, which starts alerts at the same rows as the
backtest CLI (``tests/alerts/test_generalization.py`` pins that).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.alerts_cloudops import generate_cloudops  # noqa: E402
from bench.alerts_data import Labelled, generate_irregular  # noqa: E402
from bench.alerts_quality import Score  # noqa: E402
from functions.alerts.backtest import read_csv  # noqa: E402
from functions.alerts.detector import detect  # noqa: E402
from functions.alerts.detector_config import DetectorConfig  # noqa: E402

CATEGORIES = (
    "artificialNoAnomaly",
    "artificialWithAnomaly",
    "realAdExchange",
    "realTraffic",
    "realTweets",
)
DEFAULT_CORPUS = ROOT.parent / "shared" / "datasets" / "nab-tuning"
WEEK = 7 * 86400.0

# NAB's standard profile, as the corpus's score.py applies it.
TP_WEIGHT, FP_WEIGHT, FN_WEIGHT, PROBATION = 1.0, 0.11, 1.0, 0.15

# Audited choices: name -> parameter values, the first one the defaults. "cooldown" and
# "spike-rank" audit two choices of the seventh round, made with every category in view (cooldown
# 1 day -> 12 h, with the 6 h left unmeasured then, alone and with a 36-point floor; spike bar
# quantile at most the 3rd largest score, was the maximum). A candidate change is added here with
# its values while it is tried; the two of issue 27 (anomaly likelihood, spike rate) were rejected
# and removed (functions/alerts/README.md, eighth round), and so were the ninth round's (global
# sensitivity, episodes learned into the bars, a novelty filter, spike confirmation, a spread
# trigger, a distribution-change trigger, and pairings of them with more sensitivity), and the
# tenth round's (relearning after a lasting episode, plain and only for a confirmed shift, with and
# without the return to the old normal; a peaks-over-threshold spike bar; a new alert under an
# episode held only by the long-horizon trigger; deciding on the mean of 2 or 3 points): commits
# f398c04, 1333b34, 7e1f52f, bea5450 and 7041c36 of branch detect-10. The eleventh round's two
# (a CUSUM trigger, a shorter long horizon) were not kept either; they stay here, the CUSUM also
# as a detector option, so that their figures can be reproduced.
# The audits run by default; a rejected candidate kept for reproduction runs only when named.
AUDITS = ("cooldown", "spike-rank")
VARIANTS: dict[str, dict[str, DetectorConfig]] = {
    "cooldown": {
        "12 h": DetectorConfig(),
        "1 day": DetectorConfig(cooldown_seconds=86400.0),
        "6 h": DetectorConfig(cooldown_seconds=21600.0),
        "6 h, 36+": DetectorConfig(cooldown_seconds=21600.0, cooldown_points=(36, 600)),
    },
    # Twelfth round: the cooldown's point floor alone. 100 points make 12 h four days at hourly
    # steps (ad exchange), where a window 66 rows after a false alarm was missed.
    "cooldown-floor": {
        "100+": DetectorConfig(),
        "36+": DetectorConfig(cooldown_points=(36, 600)),
        "12+": DetectorConfig(cooldown_points=(12, 600)),
    },
    # Twelfth round: a new alert within the cooldown needs less over the last episode's strength.
    "escalation": {
        "1.5": DetectorConfig(),
        "1.2": DetectorConfig(escalation=1.2),
        "1.0": DetectorConfig(escalation=1.0),
        "2.0": DetectorConfig(escalation=2.0),
        "3.0": DetectorConfig(escalation=3.0),
        "off": DetectorConfig(escalation=0.0),
    },
    "spike-rank": {
        "3rd": DetectorConfig(),
        "1st": DetectorConfig(spike_min_rank=1),
    },
    # Eleventh round: Page's CUSUM of the clipped z-scores, beside the median-of-run shift trigger
    # (reference value k 0.5 or 1 sigma) or in its place.
    "cusum": {
        "off": DetectorConfig(),
        "k 0.5": DetectorConfig(cusum_k=0.5),
        "k 1": DetectorConfig(cusum_k=1.0),
        "k 0.5 alone": DetectorConfig(cusum_k=0.5, cusum_replaces_shift=True),
    },
    # Eleventh round: the long-horizon trigger's recent median over fewer hours (its detections
    # are the latest in their windows on the tuning corpus); its bar is learned, so a noisier
    # difference raises its own bar.
    "long-span": {
        "8 h": DetectorConfig(),
        "4 h": DetectorConfig(long_seconds=4 * 3600.0),
        "6 h": DetectorConfig(long_seconds=6 * 3600.0),
    },
}


@dataclass
class FileResult:
    category: str
    name: str
    raw: float
    hits: int
    windows: int
    false_alarms: int
    scored_weeks: float
    starts: list[int]


def _sigmoid(y: float) -> float:
    return -1.0 if y > 3.0 else 2 / (1 + math.exp(5 * y)) - 1.0


def score_file(rows: int, starts: Sequence[int], spans: Sequence[tuple[int, int]]) -> tuple[float, int, int]:
    """score.py's ``score_file``: (raw score, windows hit, false alarms) of one file."""
    probation = min(math.floor(PROBATION * rows), PROBATION * 5000)
    max_tp = _sigmoid(-1.0)
    best: list[float | None] = [None] * len(spans)
    fp_score, fp_count = 0.0, 0
    for i in sorted(starts):
        if i < probation:
            continue
        inside = [k for k, (a, b) in enumerate(spans) if a <= i <= b]
        if inside:
            a, b = spans[inside[0]]
            s = _sigmoid(-(b - i + 1) / (b - a + 1)) * TP_WEIGHT / max_tp
            k = inside[0]
            best[k] = s if best[k] is None else max(best[k], s)  # type: ignore[type-var]
        else:
            before = [(a, b) for a, b in spans if b < i]
            weight = (
                -1.0
                if not before
                else _sigmoid(abs(before[-1][1] - i) / float(before[-1][1] - before[-1][0]))
            )
            fp_score += weight * FP_WEIGHT
            fp_count += 1
    raw = fp_score + sum(-FN_WEIGHT if v is None else v for v in best)
    return raw, sum(v is not None for v in best), fp_count


def corpus_files(corpus: Path) -> list[tuple[str, str]]:
    windows = json.loads((corpus / "windows.json").read_text())
    return sorted((rel.split("/")[0], rel) for rel in windows if rel.split("/")[0] in CATEGORIES)


def run_file(task: tuple[str, str, str, DetectorConfig | None]) -> FileResult:
    """One corpus file (corpus, category, path under data/, config; None = the defaults)."""
    corpus, category, rel, config = task
    windows = json.loads((Path(corpus) / "windows.json").read_text())[rel]
    times, values, written = read_csv(str(Path(corpus) / "data" / rel))
    index = {t: i for i, t in enumerate(written)}
    spans = [(index[a.split(".")[0]], index[b.split(".")[0]]) for a, b in windows]
    # Rows sharing a timestamp: the engine feeds the detector the first (the backtest CLI's path).
    first: dict[object, int] = {}
    for i, t in enumerate(times):
        first.setdefault(t, i)
    rows = list(first.values())
    episodes = detect([times[i] for i in rows], [values[i] for i in rows], config)
    starts = [rows[e.start] for e in episodes]
    raw, hits, false_alarms = score_file(len(written), starts, spans)
    first = min(math.floor(PROBATION * len(times)), int(PROBATION * 5000))
    weeks = (times[-1] - times[first]).total_seconds() / WEEK
    return FileResult(category, rel, raw, hits, len(spans), false_alarms, weeks, starts)


def _run_generated(task: tuple[Labelled, DetectorConfig]) -> tuple[list[int], float]:
    series, config = task
    starts = [e.start for e in detect(series.times, series.values, config)]
    return starts, (series.times[-1] - series.times[0]).total_seconds() / WEEK


@dataclass
class Summary:
    score: float | None  # None: no window to score (a category without anomalies)
    hits: int
    windows: int
    false_alarms: int
    series: int
    false_per_series_week: float

    def row(self) -> str:
        score = "   -  " if self.score is None else f"{self.score:6.1f}"
        return (
            f"{score}  {self.hits:>3}/{self.windows:<3}  {self.false_alarms:>4}  "
            f"{self.false_per_series_week:6.2f}"
        )


def summarise(results: Sequence[FileResult]) -> Summary:
    windows = sum(r.windows for r in results)
    raw = sum(r.raw for r in results)
    score = 100 * (raw + FN_WEIGHT * windows) / ((TP_WEIGHT + FN_WEIGHT) * windows) if windows else None
    false_alarms = sum(r.false_alarms for r in results)
    weeks = sum(r.scored_weeks for r in results)
    return Summary(
        None if score is None else round(score, 1),
        sum(r.hits for r in results),
        windows,
        false_alarms,
        len(results),
        round(false_alarms / weeks, 2) if weeks else 0.0,
    )


def run_corpus(
    pool: ProcessPoolExecutor, corpus: Path, configs: dict[str, DetectorConfig]
) -> dict[str, list[FileResult]]:
    files = corpus_files(corpus)
    tasks = [(str(corpus), cat, rel, config) for config in configs.values() for cat, rel in files]
    results = list(pool.map(run_file, tasks, chunksize=1))
    return {name: results[k * len(files) : (k + 1) * len(files)] for k, name in enumerate(configs)}


def run_generated(
    pool: ProcessPoolExecutor, data: list[Labelled], configs: dict[str, DetectorConfig]
) -> dict[str, dict[str, float]]:
    tasks = [(series, config) for config in configs.values() for series in data]
    runs = list(pool.map(_run_generated, tasks, chunksize=1))
    out = {}
    for k, name in enumerate(configs):
        score = Score()
        weeks = 0.0
        for series, (starts, span) in zip(data, runs[k * len(data) : (k + 1) * len(data)], strict=True):
            score.add(series, starts)
            weeks += span
        summary = score.summary(len(data))
        summary["false_per_series_week"] = round(score.false_alerts / weeks, 2) if weeks else 0.0
        summary["missed_by_kind"] = dict(score.missed)  # type: ignore[assignment]
        out[name] = summary
    return out


def by_category(results: Sequence[FileResult]) -> dict[str, list[FileResult]]:
    return {cat: [r for r in results if r.category == cat] for cat in CATEGORIES}


def leave_one_category_out(runs: dict[str, list[FileResult]]) -> dict[str, tuple[str, Summary]]:
    """Per left-out category: the value chosen on the other four (pooled NAB score; ties to the
    earlier value, i.e. towards the defaults) and its summary on the left-out category."""
    out = {}
    for left_out in CATEGORIES:
        best_name, best_score = "", -math.inf
        for name, results in runs.items():
            others = summarise([r for r in results if r.category != left_out]).score or 0.0
            if others > best_score + 1e-9:
                best_name, best_score = name, others
        out[left_out] = (best_name, summarise(by_category(runs[best_name])[left_out]))
    return out


def print_table(title: str, runs: dict[str, list[FileResult]]) -> None:
    print(title)
    print(f"  {'category':24s}" + "".join(f" | {name:^31s}" for name in runs))
    print(f"  {'':24s}" + " | score  found   FA   FA/s/wk" * len(runs))
    for cat in (*CATEGORIES, "whole corpus"):
        cells = []
        for results in runs.values():
            chosen = results if cat == "whole corpus" else by_category(results)[cat]
            cells.append(summarise(chosen).row())
        print(f"  {cat:24s}" + "".join(f" | {c:31s}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--variants",
        default=",".join(AUDITS),
        help=f"audits and candidate changes (comma-separated), or none; default {','.join(AUDITS)}",
    )
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--generated", type=int, default=24, help="generated irregular series")
    parser.add_argument("--cloudops", type=int, default=30, help="generated cloud-operations series")
    args = parser.parse_args()
    has_corpus = (args.corpus / "windows.json").is_file()
    if not has_corpus:
        # `make bench` runs every script: without the corpus only the generated part can run.
        print(f"no NAB tuning corpus at {args.corpus} (no windows.json): generated series only")
        args.variants = "none"
    chosen = [v for v in args.variants.split(",") if v and v != "none"]
    unknown = set(chosen) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}")
    started = time.perf_counter()
    data = generate_irregular(args.generated)
    cloudops = generate_cloudops(args.cloudops)
    with ProcessPoolExecutor(args.workers) as pool:
        configs: dict[str, DetectorConfig] = {"defaults": DetectorConfig()}
        for variant in chosen:
            for value, config in VARIANTS[variant].items():
                if config != DetectorConfig():
                    configs[f"{variant} {value}"] = config
        runs = run_corpus(pool, args.corpus, configs) if has_corpus else {}
        generated = run_generated(pool, data, configs)
        generated_cloudops = run_generated(pool, cloudops, configs)
    if runs:
        print_table(
            "NAB tuning corpus, the defaults (score.py arithmetic; FA = false alarms):",
            {"defaults": runs["defaults"]},
        )
    print(f"\ngenerated irregular series ({len(data)}, level shifts and seasonality changes labelled):")
    for name, summary in generated.items():
        print(f"  {name:28s} " + "  ".join(f"{k}={v}" for k, v in summary.items()))
    print(
        f"\ngenerated cloud-operations series ({len(cloudops)}: CPU, temperature, requests, network,"
        " disk; lasting shifts, outages, surges, ramps labelled):"
    )
    for name, summary in generated_cloudops.items():
        print(f"  {name:28s} " + "  ".join(f"{k}={v}" for k, v in summary.items()))
    for variant in chosen:
        values = {
            value: runs["defaults" if config == DetectorConfig() else f"{variant} {value}"]
            for value, config in VARIANTS[variant].items()
        }
        print()
        print_table(f"'{variant}', every value on every category (in view, not the honest figure):", values)
        folds = leave_one_category_out(values)
        print(
            f"  leave one category out ('{variant}': chosen on the other four, scored on the left-out one):"
        )
        print(
            f"  {'left out':24s} | chosen     | left-out: score  found   FA   FA/s/wk"
            " | defaults: score  found   FA   FA/s/wk"
        )
        pooled: list[FileResult] = []
        deltas = []
        for cat, (value, summary) in folds.items():
            default = summarise(by_category(runs["defaults"])[cat])
            pooled.extend(by_category(values[value])[cat])
            if summary.score is not None and default.score is not None:
                deltas.append(summary.score - default.score)
            print(f"  {cat:24s} | {value:10s} | {summary.row():38s} | {default.row()}")
        total = summarise(pooled)
        mean = sum(deltas) / len(deltas) if deltas else 0.0
        print(
            f"  pooled left-out corpus: {total.row()}  (defaults {summarise(runs['defaults']).row()}); "
            f"mean left-out change {mean:+.1f}, worst fold {min(deltas, default=0.0):+.1f}"
        )
    print(f"\n({time.perf_counter() - started:.0f} s wall, {args.workers} workers)")


if __name__ == "__main__":
    main()
