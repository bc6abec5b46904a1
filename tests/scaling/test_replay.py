"""The replay CLI (CONTRACTS.md, Scaling): output shape, causality, time zones, unusable files."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from functions.scaling.replay import main
from functions.scaling.scoring import score
from functions.scaling.synthetic import TraceSpec, generate, write_csv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trace_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    minutes, requests = generate(TraceSpec(days=4, outage=(2.4, 3.0), long_gaps=[(1.5, 2.0)]))
    path = tmp_path_factory.mktemp("trace") / "trace.csv"
    write_csv(str(path), minutes, requests)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict | None, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else None), out.err


def test_decisions_shape_and_cadence(trace_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = run(capsys, "--csv", str(trace_csv), "--capacity", "200")
    assert code == 0
    assert result is not None
    decisions = result["decisions"]
    stamps = [datetime.fromisoformat(d["timestamp"]) for d in decisions]
    assert decisions[0]["timestamp"] == "2026-03-02T00:00:00Z"  # as the file writes them
    assert stamps == sorted(stamps)
    assert max(b - a for a, b in itertools.pairwise(stamps)) <= timedelta(hours=1)
    assert all(
        isinstance(d["min_instances"], int) and d["max_instances"] >= d["min_instances"] for d in decisions
    )
    assert decisions[0]["min_instances"] == 0  # nothing seen yet: the floor
    assert max(d["min_instances"] for d in decisions) >= 10  # it does provision ahead of the day


def test_prefix_gives_the_same_decisions(
    trace_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = trace_csv.read_text().splitlines()
    cut = tmp_path / "prefix.csv"
    cut.write_text("\n".join(lines[: 1 + 3 * 1440 + 517]) + "\n")  # mid-hour on day 4
    _, full, _ = run(capsys, "--csv", str(trace_csv), "--capacity", "200")
    _, prefix, _ = run(capsys, "--csv", str(cut), "--capacity", "200")
    assert full is not None
    assert prefix is not None
    assert len(prefix["decisions"]) > 800
    assert prefix["decisions"] == full["decisions"][: len(prefix["decisions"])]


def test_changing_a_row_changes_no_decision_before_it(
    trace_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = trace_csv.read_text().splitlines()
    index = 1 + 3 * 1440 + 100
    stamp = lines[index].split(",")[0]
    lines[index] = f"{stamp},90000"
    changed = tmp_path / "changed.csv"
    changed.write_text("\n".join(lines) + "\n")
    _, full, _ = run(capsys, "--csv", str(trace_csv), "--capacity", "200")
    _, other, _ = run(capsys, "--csv", str(changed), "--capacity", "200")
    assert full is not None
    assert other is not None
    at = datetime.fromisoformat(stamp)
    before = [d for d in full["decisions"] if datetime.fromisoformat(d["timestamp"]) <= at]
    assert other["decisions"][: len(before)] == before
    after = other["decisions"][len(before) : len(before) + 2]
    assert after[0]["min_instances"] > full["decisions"][len(before)]["min_instances"]  # up at once


def test_naive_timestamps_in_tz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    minutes, requests = generate(TraceSpec(days=1, zone="Asia/Singapore"))
    path = tmp_path / "local.csv"
    write_csv(str(path), minutes, requests, zone="Asia/Singapore")
    code, result, _ = run(capsys, "--csv", str(path), "--capacity", "200", "--tz", "Asia/Singapore")
    assert code == 0
    assert result is not None
    assert result["decisions"][0]["timestamp"] == "2026-03-02T08:00:00"  # naive, local, as in the file
    assert result["decisions"][1]["timestamp"] == "2026-03-02T08:01:00"  # every minute


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "header"),
        ("time,value\n2026-01-01T00:00:00Z,1\n", "header"),
        ("timestamp,requests\n", "no data rows"),
        ("timestamp,requests\nyesterday,5\n", "line 2"),
        ("timestamp,requests\n2026-01-01T00:00:00Z,many\n", "not a number"),
        ("timestamp,requests\n2026-01-01T00:00:00Z,-3\n", ">= 0"),
        ("timestamp,requests\n2026-01-01T00:00:00Z,1,2\n", "2 columns"),
        ("timestamp,requests\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00,1\n", "mixes"),
    ],
)
def test_unusable_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, _, err = run(capsys, "--csv", str(path), "--capacity", "100")
    assert code == 2
    assert message in err


def test_cli_as_a_module(trace_csv: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "functions.scaling.replay",
            "--csv",
            str(trace_csv),
            "--capacity",
            "200",
            "--rules",
            str(ROOT / "functions/scaling/rules.yaml"),
            "--region",
            "europe-west1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    decisions = json.loads(ok.stdout)["decisions"]
    assert min(d["min_instances"] for d in decisions) >= 1  # EU's floor
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "functions.scaling.replay",
            "--csv",
            str(tmp_path / "nope.csv"),
            "--capacity",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    zero = subprocess.run(
        [sys.executable, "-m", "functions.scaling.replay", "--csv", str(trace_csv), "--capacity", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert zero.returncode == 2
    assert "--capacity" in zero.stderr


def test_scoring_model_by_hand() -> None:
    base = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    minutes = [base + timedelta(minutes=k) for k in range(20)]
    requests = [100.0] * 10 + [450.0] * 10  # needed 1, then 5 (capacity 100)
    reactive = score(minutes, requests, 100, [(base, 0, 1000)])
    # reactive lags 2 minutes: minutes 0-1 (nothing seen yet) and 10-11 are short.
    assert reactive.under_minutes == 4
    assert reactive.instance_minutes == sum([0, 0] + [1] * 10 + [5] * 8)
    capped = score(minutes, requests, 100, [(base, 0, 3)])
    assert capped.under_minutes == 2 + 10
    ahead = score(minutes, requests, 100, [(base, 0, 1000), (base + timedelta(minutes=9), 5, 1000)])
    assert ahead.under_minutes == 2  # only the first two minutes, before anything was seen
