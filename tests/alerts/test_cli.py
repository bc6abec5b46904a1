"""The backtest and tuning CLIs as operators run them: subprocesses on generated CSVs, JSON out."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from shared.topology import ROOT
from tests.alerts.helpers import noise, times, write_csv


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def backtest(*args: str) -> dict:  # type: ignore[type-arg]
    proc = run("functions.alerts.backtest", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_anomaly_backtest_finds_injected_anomalies_with_timestamps_as_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    n = 3000
    values = noise(n, seed=11)
    for i in range(1500, 1503):
        values[i] += 40  # a spike
    for i in range(2300, n):
        values[i] += 15  # a level shift that stays
    ts = times(n, 300)
    path = tmp_path / "series.csv"
    write_csv(path, ts, values, fmt="%Y-%m-%dT%H:%M:%SZ")
    alerts = backtest("--csv", str(path), "--detector", "anomaly")["alerts"]
    starts = [a["start"] for a in alerts]
    assert len(alerts) == 2, alerts
    assert starts[0] == ts[1500].strftime("%Y-%m-%dT%H:%M:%SZ")
    shift_start = ts[2300].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert shift_start <= starts[1] <= ts[2310].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert alerts[0]["end"] is not None
    assert alerts[0]["end"] > starts[0]


def test_anomaly_backtest_stays_quiet_on_clean_noise(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for seed, interval in ((21, 300), (22, 1800)):
        path = tmp_path / f"clean-{seed}.csv"
        write_csv(path, times(2500, interval), noise(2500, seed=seed))
        assert backtest("--csv", str(path))["alerts"] == []


def test_each_decision_uses_only_rows_before_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    values = noise(2000, seed=5)
    values[1200] += 50
    ts = times(2000, 600)
    full, cut = tmp_path / "full.csv", tmp_path / "cut.csv"
    write_csv(full, ts, values)
    write_csv(cut, ts[:1201], values[:1201])  # ends at the spike
    first = backtest("--csv", str(full))["alerts"]
    assert first
    assert backtest("--csv", str(cut))["alerts"][0]["start"] == first[0]["start"]


def test_threshold_backtest_with_for_and_unsorted_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    values = [1.0] * 10 + [9.0] * 5 + [1.0] * 5 + [9.0] * 2 + [1.0] * 3
    ts = times(len(values), 60)
    rows = list(zip(ts, values, strict=True))
    rows.reverse()
    path = tmp_path / "t.csv"
    write_csv(path, [r[0] for r in rows], [r[1] for r in rows])
    out = backtest("--csv", str(path), "--detector", "threshold", "--threshold", "5", "--for", "2m")
    fmt = "%Y-%m-%d %H:%M:%S"
    assert out == {"alerts": [{"start": ts[12].strftime(fmt), "end": ts[15].strftime(fmt)}]}


def test_bad_input_exits_2_with_a_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    bad.write_text("time,val\n1,2\n")
    proc = run("functions.alerts.backtest", "--csv", str(bad))
    assert proc.returncode == 2
    assert "timestamp and value" in proc.stderr
    assert proc.stdout == ""
    proc = run("functions.alerts.backtest", "--csv", str(tmp_path / "missing.csv"))
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr
    bad.write_text("timestamp,value\nyesterday,2\n")
    assert "not a timestamp" in run("functions.alerts.backtest", "--csv", str(bad)).stderr


def test_tune_cli_recommends_sigma_thresholds_with_backtests(tmp_path) -> None:  # type: ignore[no-untyped-def]
    values = noise(7 * 288, seed=8, level=36.4, sigma=4.2)
    values[1000] = 400.0  # an outlier the baseline must ignore
    path = tmp_path / "p95.csv"
    write_csv(path, times(len(values), 300), values)
    proc = run("functions.alerts.tune", "--csv", str(path), "--op", ">", "--for", "10m")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)["recommendations"][0]
    stats = rec["stats"]
    assert stats["outliers"] >= 1
    assert abs(stats["mean"] - 36.4) < 0.5
    assert abs(stats["std"] - 4.2) < 0.4
    assert stats["p95"] < stats["p99"] < 60
    assert 0 < stats["stability"] <= 100
    low, high, critical = (rec["thresholds"][k] for k in ("low", "high", "critical"))
    assert abs(critical - (stats["mean"] + 3 * stats["std"])) < 1e-9
    assert low < high < critical
    tests = rec["backtests"]
    # Lower thresholds fire at least as often and as long; the critical one almost never holds 10m.
    assert tests["low"]["alerts"] >= tests["high"]["alerts"] >= tests["critical"]["alerts"]
    assert tests["low"]["firing_seconds"] > tests["critical"]["firing_seconds"]
    assert tests["low"]["alerts"] > 0
    assert rec["window"] == "5m"
    assert timedelta(seconds=tests["low"]["longest_seconds"]) >= timedelta(minutes=10)
