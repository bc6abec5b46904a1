"""The CSV import CLI on the Firestore emulator: validated whole before writing, idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions.health.import_csv import main

pytestmark = pytest.mark.emulators

CUSTOMERS = "id,name,plan,contact_email\nacme,Acme,pro,csm@example.com\nbeta,Beta,,\n"
EVENTS = (
    "customer_id,type,event_id,at,ticket_id,status,priority,invoice_id,amount,currency,days_late,score\n"
    "acme,ticket,t1,2026-11-20T10:00:00Z,T-1,open,high,,,,,\n"
    "acme,payment,p1,2026-11-21T10:00:00Z,,paid,,I-1,100,EUR,0,\n"
    "beta,nps,n1,2026-11-22T10:00:00Z,,,,,,,,3\n"
)


def test_import_then_reimport_changes_nothing(fs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "c.csv").write_text(CUSTOMERS)
    (tmp_path / "e.csv").write_text(EVENTS)
    argv = ["--customers", str(tmp_path / "c.csv"), "--events", str(tmp_path / "e.csv")]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["customers"]["created"] == 2
    assert first["events"]["created"] == 3
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["customers"]["unchanged"] == 2
    assert second["events"]["unchanged"] == 3
    assert (
        fs.collection("customers").document("acme").get().to_dict()["contact"]["email"] == "csm@example.com"
    )


def test_a_bad_row_stops_everything_naming_it(fs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "e.csv").write_text(EVENTS + "acme,ticket,t2,yesterday,T-2,open,,,,,,\n")
    (tmp_path / "c.csv").write_text(CUSTOMERS)
    assert main(["--customers", str(tmp_path / "c.csv"), "--events", str(tmp_path / "e.csv")]) == 2
    assert "e.csv:5" in capsys.readouterr().err
    assert fs.collection("customer_events").count().get()[0][0].value == 0
    assert main(["--events", str(tmp_path / "missing.csv")]) == 2
