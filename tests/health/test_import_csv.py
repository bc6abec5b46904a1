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


def test_a_file_not_in_utf8_is_refused_naming_the_file_and_line(fs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # An Excel export in Windows-1252: "Müller" is not UTF-8.
    (tmp_path / "c.csv").write_bytes("id,name\nacme,Acme\nmuller,M\u00fcller GmbH\n".encode("cp1252"))
    assert main(["--customers", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'c.csv'}:3: not UTF-8" in err
    assert "Traceback" not in err
    assert fs.collection("customers").count().get()[0][0].value == 0


def test_events_of_an_unknown_customer_write_nothing_at_all(fs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "c.csv").write_text(CUSTOMERS)
    (tmp_path / "e.csv").write_text(EVENTS + "ghost,nps,g1,2026-11-22T10:00:00Z,,,,,,,,5\n")
    argv = ["--customers", str(tmp_path / "c.csv"), "--events", str(tmp_path / "e.csv")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "ghost" in err
    assert "nothing was written" in err
    assert fs.collection("customers").count().get()[0][0].value == 0
    assert fs.collection("customer_events").count().get()[0][0].value == 0


def test_conflicting_duplicates_are_reported_and_nothing_is_written(fs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "c.csv").write_text(CUSTOMERS)
    # n1 twice with other content in one file: which one is the fact is unknown.
    (tmp_path / "e.csv").write_text(EVENTS + "beta,nps,n1,2026-11-22T10:00:00Z,,,,,,,,9\n")
    argv = ["--customers", str(tmp_path / "c.csv"), "--events", str(tmp_path / "e.csv")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'e.csv'}:5: event n1 of beta again with other content than on line 4" in err
    assert fs.collection("customer_events").count().get()[0][0].value == 0
    # A customer twice with other details in one file.
    (tmp_path / "c2.csv").write_text(CUSTOMERS + "acme,Acme Corp,pro,csm@example.com\n")
    assert main(["--customers", str(tmp_path / "c2.csv")]) == 2
    assert "c2.csv:4: customer acme again with other details than on line 2" in capsys.readouterr().err
    assert fs.collection("customers").count().get()[0][0].value == 0
    # Stored with other content: reported before anything of the file is written.
    (tmp_path / "e1.csv").write_text(EVENTS)
    assert main(["--customers", str(tmp_path / "c.csv"), "--events", str(tmp_path / "e1.csv")]) == 0
    capsys.readouterr()
    (tmp_path / "e2.csv").write_text(
        EVENTS.replace(
            "beta,nps,n1,2026-11-22T10:00:00Z,,,,,,,,3", "beta,nps,n1,2026-11-22T10:00:00Z,,,,,,,,8"
        )
        + "acme,nps,n2,2026-11-23T10:00:00Z,,,,,,,,7\n"
    )
    assert main(["--events", str(tmp_path / "e2.csv")]) == 2
    assert "event n1 of beta is stored with other content" in capsys.readouterr().err
    assert fs.collection("customer_events").count().get()[0][0].value == 3  # n2 not written
    # A customer stored with other details.
    (tmp_path / "c3.csv").write_text("id,name\nacme,Acme Renamed\nnew,New\n")
    assert main(["--customers", str(tmp_path / "c3.csv")]) == 2
    assert "customer acme is stored with other details" in capsys.readouterr().err
    assert not fs.collection("customers").document("new").get().exists


def test_created_at_and_first_value_at_are_imported(fs, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "c.csv").write_text(
        "id,name,created_at,first_value_at\nold,Old,2024-03-01T00:00:00Z,2024-03-05T12:00:00+00:00\n"
    )
    assert main(["--customers", str(tmp_path / "c.csv")]) == 0
    stored = fs.collection("customers").document("old").get().to_dict()
    assert stored["created_at"].isoformat().startswith("2024-03-01")
    assert stored["first_value_at"].isoformat().startswith("2024-03-05T12:00")
    (tmp_path / "bad.csv").write_text("id,name,created_at\nx,X,last year\n")
    assert main(["--customers", str(tmp_path / "bad.csv")]) == 2
    assert "bad.csv:2: created_at" in capsys.readouterr().err


@pytest.mark.parametrize("customer_id", ["", "a/b", "Acme"])
def test_an_event_row_without_a_customer_id_names_its_line_and_writes_nothing(  # type: ignore[no-untyped-def]
    fs, tmp_path: Path, capsys, customer_id: str
) -> None:
    # Looking up an empty or slashed id raised (a traceback, exit 1) instead of naming the row.
    (tmp_path / "c.csv").write_text(CUSTOMERS)
    (tmp_path / "e.csv").write_text(EVENTS + f"{customer_id},nps,n9,2026-11-22T10:00:00Z,,,,,,,,9\n")
    assert main(["--customers", str(tmp_path / "c.csv"), "--events", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'e.csv'}:5: customer_id {customer_id!r} does not match" in err
    assert fs.collection("customers").count().get()[0][0].value == 0
    assert fs.collection("customer_events").count().get()[0][0].value == 0
