"""Deadlines topology.yaml may name that the deploy would trip on: a scheduler attempt deadline
outside Cloud Scheduler's range, and the dead-letter sink's push acknowledged sooner than it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.topology import load_topology

SINK = (
    "capabilities: {{deadletters: {{port: 1, port_env: X}}}}\n"
    "functions:\n"
    "  job: {{capability: deadletters, trigger: http, timeout_seconds: 60}}\n"
    "  consume: {{capability: deadletters, trigger: pubsub, topic: t, timeout_seconds: 60}}\n"
    "  sink: {{capability: deadletters, trigger: pubsub, dead_letters: true, timeout_seconds: {sink_timeout}}}\n"
    "topics: {{t: {{ack_deadline_seconds: 60}}}}\n"
    "schedules: {{tick: {{function: job, cron: '* * * * *', attempt_deadline: {deadline}}}}}\n"
)


def _write(tmp_path: Path, sink_timeout: int = 60, deadline: str = "30s") -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(SINK.format(sink_timeout=sink_timeout, deadline=deadline))
    return path


def test_deadlines_in_range_load(tmp_path: Path) -> None:
    assert load_topology(_write(tmp_path)).functions["sink"].dead_letters


@pytest.mark.parametrize("deadline", ["10s", "1801s"])
def test_an_attempt_deadline_cloud_scheduler_refuses_is_refused(tmp_path: Path, deadline: str) -> None:
    with pytest.raises(ValueError, match=f"attempt_deadline {deadline} must be from 15s to 1800s"):
        load_topology(_write(tmp_path, deadline=deadline))


def test_a_dead_letter_sink_running_longer_than_a_topics_ack_deadline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="function sink: topic t's ack_deadline_seconds 60 is below its timeout_seconds 120"
    ):
        load_topology(_write(tmp_path, sink_timeout=120))
