"""The pure core and the CLI contract: rows, net cost to the cent, bad rows, forecast, anomalies,
budget figures and the seeds' arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devtools.billing_export import Spike, generate, write_jsonl
from functions.cost.billing import BadRows, load_jsonl
from functions.cost.budget import BASELINE, baseline_shares, crossed
from functions.cost.cost_lines import aggregate
from functions.cost.forecast import forecast_month
from functions.cost.ledger import fold
from functions.cost.snapshot import main, snapshot_from_rows
from shared.topology import ROOT


def row(day: str, service: str, cost: object, credits: list | None = None, **extra: object) -> dict:
    base = {
        "service": {"description": service},
        "sku": {"description": f"{service} usage"},
        # Midday UTC: the same date in Pacific time, the billing account's days.
        "usage_start_time": f"{day}T12:00:00Z",
        "usage_end_time": f"{day}T13:00:00Z",
        "location": {"region": "us-central1"},
        "cost": cost,
        "currency": "USD",
        "credits": credits or [],
        "invoice": {"month": day[:4] + day[5:7]},
        "labels": [],
    }
    base.update(extra)
    return base


def write_lines(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "billing.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "functions.cost.snapshot", *args],
        capture_output=True,
        check=False,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_net_cost_is_exact_to_the_cent_with_credits(tmp_path: Path) -> None:
    # 0.1 ten times is 0.9999999999999999 in binary floats; the row text read as Decimal is exact.
    rows = [row("2026-11-02", "Cloud Run", 0.1) for _ in range(10)]
    rows.append(row("2026-11-02", "Cloud SQL", 5.005, credits=[{"name": "CUD", "amount": -0.5}]))
    rows.append(row("2026-11-03", "Cloud SQL", 0, credits=[{"name": "late CUD", "amount": -0.25}]))
    path = write_lines(tmp_path, rows)
    result = run_cli("--billing", str(path), "--as-of", "2026-11-03")
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["currency"] == "USD"
    assert snap["month_to_date"]["by_service"] == {"Cloud Run": 1.0, "Cloud SQL": 4.26}
    assert snap["month_to_date"]["total"] == 5.26  # 1 + 5.005 - 0.5 - 0.25 = 5.255, half to even
    assert snap["month_to_date"]["credits"] == -0.75
    days = {d["date"]: d for d in snap["daily"]}
    assert days["2026-11-03"]["total"] == -0.25
    loaded = load_jsonl(str(path))
    assert sum((r.net_cost for r in loaded), Decimal(0)) == Decimal("5.255")


def test_contract_shape_and_default_budget(tmp_path: Path) -> None:
    gen = generate(date(2026, 9, 1), date(2026, 11, 12), hours=24, seed=3)
    path = write_jsonl(gen.rows, tmp_path / "export.jsonl")
    result = run_cli("--billing", str(path), "--as-of", "2026-11-12")
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["as_of"] == "2026-11-12"
    assert set(snap["month_to_date"]) >= {"total", "by_service"}
    assert set(snap["forecast_month_end"]) >= {"total", "low", "high"}
    assert snap["budget"]["amount"] == 3000
    assert (
        snap["forecast_month_end"]["low"]
        <= snap["forecast_month_end"]["total"]
        <= snap["forecast_month_end"]["high"]
    )
    assert snap["daily"][-1]["date"] == "2026-11-12"
    assert set(snap["daily"][-1]) >= {"date", "total", "by_service"}
    month_days = [d for d in snap["daily"] if d["date"].startswith("2026-11")]
    assert round(sum(d["total"] for d in month_days), 2) == pytest.approx(
        snap["month_to_date"]["total"], abs=0.06
    )
    assert snap["budget"]["used_pct"] == pytest.approx(snap["month_to_date"]["total"] / 3000 * 100, abs=0.01)
    custom = run_cli("--billing", str(path), "--as-of", "2026-11-12", "--budget", "1500")
    assert json.loads(custom.stdout)["budget"]["used_pct"] == pytest.approx(
        snap["budget"]["used_pct"] * 2, abs=0.02
    )


def test_only_usage_before_the_end_of_the_as_of_day_counts(tmp_path: Path) -> None:
    rows = [
        row("2026-11-05", "Cloud Run", 2),
        row("2026-11-06", "Cloud Run", 3)
        | {"usage_start_time": "2026-11-05T23:00:00Z", "usage_end_time": "2026-11-06T00:00:00Z"},
        row("2026-11-06", "Cloud Run", 100),
    ]
    snap = json.loads(run_cli("--billing", str(write_lines(tmp_path, rows)), "--as-of", "2026-11-05").stdout)
    assert snap["month_to_date"]["total"] == 5.0


def test_bad_rows_are_rejected_naming_each_row(tmp_path: Path) -> None:
    good = row("2026-11-02", "Cloud Run", 1)
    missing_cost = {k: v for k, v in good.items() if k != "cost"}
    rows = [
        good,
        missing_cost,
        "{not json",
        row("2026-11-02", "Cloud Run", "lots"),
        row("2026-11-02", "Cloud Run", 1, credits=[{"name": "refund?", "amount": 2}]),
        row("2026-11-02", "Cloud Run", 1) | {"usage_end_time": "2026-11-01T00:00:00Z"},
        row("2026-11-02", "Cloud Run", 1) | {"currency": "EUR"},
        good,
    ]
    result = run_cli("--billing", str(write_lines(tmp_path, rows)), "--as-of", "2026-11-02")
    assert result.returncode == 2
    assert result.stdout == ""
    err = result.stderr
    assert "6 of 8 billing rows rejected" in err
    for line in (
        "row 2: cost",
        "row 3:",
        "row 4: cost",
        "row 5: credits.0.amount",
        "row 6:",
        "row 7: currency",
    ):
        assert line in err
    assert "row 1:" not in err
    assert "row 8:" not in err


def test_unreadable_file_and_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert run_cli("--billing", str(tmp_path / "absent.jsonl"), "--as-of", "2026-11-02").returncode == 2
    path = write_lines(tmp_path, [row("2026-11-02", "Cloud Run", 1)])
    assert run_cli("--billing", str(path), "--as-of", "2026-13-02").returncode == 2
    assert main(["--billing", str(path), "--as-of", "2026-11-02", "--budget", "0"]) == 2


def test_bad_rows_raise_with_rows_in_order(tmp_path: Path) -> None:
    path = write_lines(tmp_path, ["[1, 2]", json.dumps(row("2026-11-02", "Cloud Run", 1)), "nope"])
    with pytest.raises(BadRows) as info:
        load_jsonl(str(path))
    assert [r.row for r in info.value.rejected] == [1, 3]


def test_forecast_within_5_percent_from_day_10_and_inside_its_band() -> None:
    gen = generate(date(2026, 8, 1), date(2026, 10, 31), hours=24, seed=11, noise=0.05)
    rows = load_rows(gen.rows)
    history = fold(aggregate(rows, ZoneInfo("America/Los_Angeles")), until=date(2026, 10, 31))
    actual = float(sum(c.total for d, c in history.items() if d.month == 10))
    for day in range(10, 31):
        fc = forecast_month(history, date(2026, 10, day))
        assert abs(fc.total - actual) / actual < 0.05, (day, fc.total, actual)
        assert fc.low <= actual <= fc.high or abs(fc.total - actual) / actual < 0.01, (day, fc, actual)


def test_a_3x_spike_is_found_on_its_day_and_a_normal_month_stays_quiet() -> None:
    spike_day = date(2026, 11, 18)
    gen = generate(
        date(2026, 9, 1), date(2026, 11, 20), hours=24, seed=5, spikes=[Spike(spike_day, "Cloud SQL")]
    )
    quiet = generate(date(2026, 9, 1), date(2026, 11, 20), hours=24, seed=5)
    snap = snapshot_from_rows(load_rows(gen.rows), spike_day)
    assert [(a.date, a.service) for a in snap.anomalies] == [(spike_day, "Cloud SQL")]
    gen = generate(
        date(2026, 9, 1), date(2026, 11, 20), hours=24, seed=5, spikes=[Spike(spike_day, "Cloud Logging")]
    )
    snap = snapshot_from_rows(load_rows(gen.rows), spike_day)
    spike = next(a for a in snap.anomalies if a.date == spike_day)
    assert spike.service == "Cloud Logging"
    assert spike.cost == pytest.approx(3 * spike.expected, rel=0.2)
    assert spike.skus[0].sku == "Log Volume"
    assert snapshot_from_rows(load_rows(quiet.rows), spike_day).anomalies == []


@pytest.mark.parametrize("started", [date(2026, 11, 10), date(2026, 11, 14)])
def test_a_service_started_this_month_is_forecast_for_the_days_left(started: date) -> None:
    """A Cloud SQL instance at $27 a day from November 10: its days before it existed counted as
    $0 days, so the median of the last four weeks was 0 and the forecast gave it nothing for the
    rest of the month ($243 for November where $567 will be billed) until it was two weeks old."""
    rows = [row(f"{date(2026, 9, 20) + timedelta(days=i)}", "Cloud Run", 40) for i in range(60)]
    days = (date(2026, 11, 18) - started).days + 1
    rows += [row(f"{started + timedelta(days=i)}", "Cloud SQL", 27) for i in range(days)]
    snap = snapshot_from_rows(load_rows(rows), date(2026, 11, 18))
    by_service = snap.forecast_month_end.by_service
    assert by_service["Cloud SQL"] == pytest.approx(27 * ((date(2026, 11, 30) - started).days + 1))
    assert by_service["Cloud Run"] == pytest.approx(40 * 30)


def test_a_new_service_is_not_an_anomaly_every_day_for_four_weeks() -> None:
    """A Cloud SQL instance at $27 a day from October 20: the weeks before it existed were $0
    days, so each of its first 28 days was an anomaly against a $0 median, 28 notices for one
    planned instance. A service is judged once it has the weeks a baseline needs."""
    rows = [row(f"{date(2026, 9, 1) + timedelta(days=i)}", "Cloud Run", 40) for i in range(80)]
    rows += [row(f"{date(2026, 10, 20) + timedelta(days=i)}", "Cloud SQL", 27) for i in range(40)]
    rows += [row("2026-11-25", "Cloud SQL", 90)]  # five weeks on: a spike is found
    snap = snapshot_from_rows(load_rows(rows), date(2026, 11, 25))
    assert [(a.date, a.service) for a in snap.anomalies] == [(date(2026, 11, 25), "Cloud SQL")]
    assert snap.anomalies[0].expected == 27
    assert snap.anomalies[0].weeks == 5


def test_budget_thresholds_and_variance() -> None:
    assert [t.key for t in crossed(49.99, 99.9)] == []
    assert [t.key for t in crossed(50, 100)] == ["actual-50", "forecast-100"]
    assert [t.key for t in crossed(100.0, 120)] == ["actual-50", "actual-90", "actual-100", "forecast-100"]
    rows = load_rows([row(f"2026-11-{d:02d}", "Cloud Run", 100) for d in range(1, 16)])
    snap = snapshot_from_rows(rows, date(2026, 11, 15))
    assert snap.month_to_date.total == 1500
    assert snap.budget.prorated == 1500  # 15 of 30 days of $3,000
    assert snap.budget.variance_pct == 0
    assert not snap.budget.variance_flag
    assert snap.budget.target_prorated == 900
    assert snap.budget.target_variance_pct == pytest.approx(66.67, abs=0.01)
    assert snap.budget.target_variance_flag
    assert snap.budget.crossed == ["actual-50", "forecast-100"]


def test_seed_figures_computed_not_copied() -> None:
    assert sum(BASELINE.values()) == 2460
    assert baseline_shares() == {"Cloud Run": 48.8, "Cloud SQL": 32.5, "Redis": 12.2, "Other": 6.5}
    rows = load_rows([row(f"2026-11-{d:02d}", "Cloud Run", 30) for d in range(1, 31)])
    snap = snapshot_from_rows(rows, date(2026, 11, 30))
    assert snap.savings.by_line["Cloud Run"].saving == 300
    assert snap.savings.by_line["Cloud SQL"].saving == 800
    assert snap.savings.saving == 2460 - 900


def load_rows(raw: list[dict]) -> list:
    from functions.cost.billing import parse_rows

    return parse_rows(enumerate((json.loads(json.dumps(r, default=str)) for r in raw), start=1))


def test_late_rows_change_the_day_they_belong_to(tmp_path: Path) -> None:
    first = [row("2026-11-10", "Cloud Run", 10)]
    late = [*first, row("2026-11-10", "Cloud Run", 0, credits=[{"name": "late credit", "amount": -1.5}])]
    before = snapshot_from_rows(load_rows(first), date(2026, 11, 12))
    after = snapshot_from_rows(load_rows(late), date(2026, 11, 12))
    assert next(d for d in before.daily if d.date == date(2026, 11, 10)).total == 10
    assert next(d for d in after.daily if d.date == date(2026, 11, 10)).total == 8.5
    assert after.month_to_date.total == 8.5
    assert before.daily[-1].date == date(2026, 11, 12)
    assert before.daily[0].date == date(2026, 11, 10)
    assert len(before.daily) == 3
    assert before.daily[1].total == 0
    assert (date(2026, 11, 12) - timedelta(days=2)) == before.daily[0].date


def test_a_new_export_forecasts_by_run_rate_and_says_so() -> None:
    rows = load_rows([row(f"2026-11-0{d}", "Cloud Run", 10) for d in range(1, 4)])
    fc = snapshot_from_rows(rows, date(2026, 11, 3)).forecast_month_end
    assert fc.method.startswith("run-rate")
    assert fc.total == 300
    assert fc.low == 165
    assert fc.high == 435


def test_labels_as_a_map_and_a_missing_end_are_read() -> None:
    raw = row("2026-11-02", "Cloud Run", 1.5) | {"labels": {"app": "ion"}}
    del raw["usage_end_time"]
    (parsed,) = load_rows([raw])
    assert parsed.label("app") == "ion"
    assert parsed.net_cost == Decimal("1.5")
