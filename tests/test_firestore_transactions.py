"""``run_transaction`` on the emulator: writers racing for one document lose nothing, contention is
retried a bounded number of times, and any other error is not retried at all."""

from __future__ import annotations

import threading

import pytest
from google.api_core.exceptions import Aborted

from shared.firestore import run_transaction

pytestmark = pytest.mark.emulators


def test_racing_writers_lose_no_update(fs) -> None:  # type: ignore[no-untyped-def]
    ref = fs.collection("counters").document("hot")
    ref.set({"n": 0})
    writers, increments = 3, 2
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def increment(tx) -> None:  # type: ignore[no-untyped-def]
        current = ref.get(transaction=tx).to_dict()["n"]
        tx.update(ref, {"n": current + 1})

    def writer() -> None:
        try:
            barrier.wait()
            for _ in range(increments):
                run_transaction(increment)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ref.get().to_dict()["n"] == writers * increments


def test_contention_is_retried_a_bounded_number_of_rounds(fs) -> None:  # type: ignore[no-untyped-def]
    calls = []

    def always_aborted(tx) -> None:  # type: ignore[no-untyped-def]
        calls.append(tx)
        raise Aborted("lock contention")

    with pytest.raises(Aborted):
        run_transaction(always_aborted, rounds=4, base_delay=0.0)
    assert len(calls) == 4


def test_contention_then_success_returns_the_result(fs) -> None:  # type: ignore[no-untyped-def]
    ref = fs.collection("counters").document("flaky")
    calls = []

    def flaky(tx) -> str:  # type: ignore[no-untyped-def]
        calls.append(tx)
        if len(calls) < 3:
            raise Aborted("lock contention")
        tx.set(ref, {"done": True})
        return "written"

    assert run_transaction(flaky, base_delay=0.0) == "written"
    assert len(calls) == 3
    assert ref.get().to_dict() == {"done": True}


def test_other_errors_are_not_retried_and_write_nothing(fs) -> None:  # type: ignore[no-untyped-def]
    ref = fs.collection("counters").document("bad")
    calls = []

    def invalid(tx) -> None:  # type: ignore[no-untyped-def]
        calls.append(tx)
        tx.set(ref, {"half": True})
        raise ValueError("not a valid state")

    with pytest.raises(ValueError, match="not a valid state"):
        run_transaction(invalid)
    assert len(calls) == 1
    assert not ref.get().exists
