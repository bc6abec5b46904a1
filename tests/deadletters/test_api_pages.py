"""The dead-letter API in process on the Firestore emulator: listing pages bounded in what they
read, and a large letter whose data is expiring."""

from __future__ import annotations

import pytest

from tests.deadletters.test_dead_letters import _letter

pytestmark = pytest.mark.emulators


def test_a_filtered_listing_reads_a_bounded_number_of_letters_and_says_where_to_go_on(  # type: ignore[no-untyped-def]
    fs, monkeypatch
) -> None:
    """The filters are applied to letters read newest first: a topic with no recent letter among
    thousands (an outage's metrics letters) read every letter kept, in one request. Now a request
    reads at most ``MAX_SCANNED`` letters and answers ``next``, the ``after`` of the next page."""
    import functions_framework
    from google.cloud.firestore_v1.query import Query

    from functions.deadletters import store
    from shared.topology import ROOT

    for n in range(30):
        store.store(_letter(str(100 + n), "alerts" if n >= 28 else "metrics", b"x", minutes_ago=n))
    monkeypatch.setattr(store, "MAX_SCANNED", 12, raising=False)
    monkeypatch.setattr(store, "LIST_PAGE", 5)
    read: list[int] = []
    stream = Query.stream

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for snapshot in stream(self, *args, **kwargs):
            read[-1] += 1
            yield snapshot

    monkeypatch.setattr(Query, "stream", counted)
    api = functions_framework.create_app("manage_dead_letters", str(ROOT / "main.py"), "http").test_client()

    found, after, pages = [], None, 0
    while True:
        read.append(0)
        answer = api.get(
            "/v1/dead-letters",
            query_string={"topic": "alerts", "limit": 5, **({"after": after} if after else {})},
        )
        assert answer.status_code == 200, answer.get_json()
        assert read[-1] <= 12
        found += [letter["id"] for letter in answer.get_json()["dead_letters"]]
        after, pages = answer.get_json()["next"], pages + 1
        if after is None:
            break
    assert found == ["128", "129"]
    assert pages == 3  # 12 + 12 + the last 6 letters

    newest = api.get("/v1/dead-letters?limit=2").get_json()
    assert ([d["id"] for d in newest["dead_letters"]], newest["next"]) == (["100", "101"], "101")
    following = api.get("/v1/dead-letters?limit=2&after=101").get_json()
    assert [d["id"] for d in following["dead_letters"]] == ["102", "103"]
    unknown = api.get("/v1/dead-letters?after=999")
    assert unknown.status_code == 422
    assert "after" in unknown.get_json()["detail"]
    empty = api.get("/v1/dead-letters?topic=")
    assert empty.status_code == 422
    assert [error["field"] for error in empty.get_json()["errors"]] == ["topic"]


def test_a_large_letter_whose_data_is_expiring_is_410_not_500(fs) -> None:  # type: ignore[no-untyped-def]
    """A large letter's parts and the letter expire together, but Firestore's TTL deletes each
    document on its own, within a day: in between, reading or re-driving the letter was a 500."""
    import functions_framework

    from functions.deadletters import store
    from shared.topology import ROOT

    store.store(_letter("901", "metrics", b"x" * 800_000))
    assert fs.collection(store.DEAD_LETTERS).document("901").get().to_dict()["data_parts"] == 1
    fs.collection(store.PARTS).document("901:0000").delete()
    api = functions_framework.create_app("manage_dead_letters", str(ROOT / "main.py"), "http").test_client()
    for answer in (api.get("/v1/dead-letters/901"), api.post("/v1/dead-letters/901/redrive")):
        assert answer.status_code == 410, answer.get_json()
        assert "expiring" in answer.get_json()["detail"]
    listed = api.get("/v1/dead-letters").get_json()["dead_letters"]
    assert [d["id"] for d in listed] == ["901"]
