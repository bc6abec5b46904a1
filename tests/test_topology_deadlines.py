"""Deadlines topology.yaml may name that the deploy would trip on: a scheduler attempt deadline
outside Cloud Scheduler's range, a scheduler retry that could start while the attempt it replaces
still runs, and the dead-letter sink's push acknowledged sooner than it runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shared.topology import ROOT, load_topology
from tests.test_topology_and_terraform import load_hcl

SINK = (
    "capabilities: {{deadletters: {{port: 1, port_env: X}}}}\n"
    "functions:\n"
    "  job: {{capability: deadletters, trigger: http, timeout_seconds: 60}}\n"
    "  consume: {{capability: deadletters, trigger: pubsub, topic: t, timeout_seconds: 60}}\n"
    "  sink: {{capability: deadletters, trigger: pubsub, dead_letters: true, timeout_seconds: {sink_timeout}}}\n"
    "topics: {{t: {{ack_deadline_seconds: 60}}}}\n"
    "schedules: {{tick: {{function: job, cron: '* * * * *', attempt_deadline: {deadline}{backoff}}}}}\n"
)


def _write(tmp_path: Path, sink_timeout: int = 60, deadline: str = "50s", backoff: str = "") -> Path:
    path = tmp_path / "topology.yaml"
    retry = f", retry_min_backoff: {backoff}" if backoff else ""
    path.write_text(SINK.format(sink_timeout=sink_timeout, deadline=deadline, backoff=retry))
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


# --- no scheduler retry beside a running attempt ------------------------------------------------


@pytest.mark.parametrize(("deadline", "backoff"), [("30s", ""), ("30s", "20s"), ("15s", "44s")])
def test_a_retry_that_could_start_while_its_attempt_runs_is_refused(
    tmp_path: Path, deadline: str, backoff: str
) -> None:
    """Cloud Scheduler abandons an attempt at its deadline without stopping it: the first retry,
    attempt_deadline + retry_min_backoff after the attempt started, must not come before the
    function's timeout (the shape of cost-snapshot's 480 s + 10 s against 540 s on main)."""
    with pytest.raises(ValueError, match=r"schedule tick: a retry could start .* while job may run 60s"):
        load_topology(_write(tmp_path, deadline=deadline, backoff=backoff))


@pytest.mark.parametrize(("deadline", "backoff"), [("60s", ""), ("30s", "30s"), ("15s", "45s"), ("50s", "")])
def test_a_deadline_or_backoff_covering_the_timeout_loads(
    tmp_path: Path, deadline: str, backoff: str
) -> None:
    schedule = load_topology(_write(tmp_path, deadline=deadline, backoff=backoff)).schedules["tick"]
    assert schedule.first_retry_after() >= 60


@pytest.mark.parametrize("backoff", ["0s", "3601s", "1m"])
def test_a_backoff_cloud_scheduler_refuses_is_refused(tmp_path: Path, backoff: str) -> None:
    with pytest.raises(ValueError, match=r"retry_min_backoff|must be in seconds"):
        load_topology(_write(tmp_path, deadline="60s", backoff=backoff))


def test_no_real_schedule_can_retry_while_its_attempt_runs() -> None:
    """Read from the fields (10 s: Terraform's backoff before retry_min_backoff existed)."""
    topo = load_topology()

    def first_retry(name: str) -> float:
        fields = topo.schedules[name].model_dump()
        return sum(
            float(fields.get(key, "10s").rstrip("s")) for key in ("attempt_deadline", "retry_min_backoff")
        )

    overlapping = {
        name: (first_retry(name), topo.functions[schedule.function].timeout_seconds)
        for name, schedule in topo.schedules.items()
        if first_retry(name) < topo.functions[schedule.function].timeout_seconds
    }
    assert overlapping == {}
    # The two named in the defect: each now waits its function's whole timeout.
    assert topo.schedules["cost-snapshot"].attempt_deadline == "540s"
    assert topo.schedules["fanout-digest"].attempt_deadline == "300s"


def _retry_config() -> dict[str, str]:
    main_tf = load_hcl(ROOT / "terraform" / "main.tf")
    jobs = next(
        b["google_cloud_scheduler_job"]["jobs"]
        for b in main_tf["resource"]
        if "google_cloud_scheduler_job" in b
    )
    return jobs["retry_config"][0]


def test_terraform_takes_each_jobs_retry_backoff_from_the_topology() -> None:
    retry = _retry_config()
    assert retry["min_backoff_duration"] == '${try(each.value.retry_min_backoff, "10s")}'
    assert "each.value.retry_min_backoff" in retry["max_backoff_duration"]
    assert load_topology().schedules["fanout-flush"].retry_min_backoff == "180s"


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not installed")
@pytest.mark.parametrize(("backoff", "expected"), [("10s", "60s"), ("60s", "60s"), ("180s", "180s")])
def test_the_max_backoff_is_never_below_the_min(tmp_path: Path, backoff: str, expected: str) -> None:
    """Terraform itself evaluates main.tf's expression (backoffs only grow, so the first retry is
    the earliest one)."""
    # The string as written in main.tf ("${max(...)}s"), the job's backoff put in for each.value's.
    template = _retry_config()["max_backoff_duration"]
    literal = '"' + template.replace("each.value.retry_min_backoff", f'"{backoff}"') + '"'
    result = subprocess.run(
        ["terraform", "console"],
        input=literal + "\n",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": "/dev/null",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().strip('"') == expected
