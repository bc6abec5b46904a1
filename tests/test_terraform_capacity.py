"""What Terraform sends a function at once fits what the function can take (topology.yaml's
max_instances x concurrency), so a burst waits in its queue instead of being refused with 429s
that spend its retries."""

from __future__ import annotations

from shared.topology import ROOT, load_topology
from tests.test_topology_and_terraform import load_hcl

TERRAFORM = ROOT / "terraform"


def test_the_timer_queue_never_dispatches_more_than_manage_alerts_can_take_beside_its_schedules() -> None:
    topology = load_topology()
    manage_alerts = topology.functions["manage_alerts"]
    capacity = manage_alerts.max_instances * manage_alerts.concurrency
    scheduled = [name for name, job in topology.schedules.items() if job.function == "manage_alerts"]
    queues = {}
    for block in load_hcl(TERRAFORM / "fanout_timers.tf")["resource"]:
        queues.update(block.get("google_cloud_tasks_queue", {}))
    dispatches = queues["fanout_timers"]["rate_limits"][0]["max_concurrent_dispatches"]
    assert isinstance(dispatches, int)
    assert 1 <= dispatches <= capacity - len(scheduled), (dispatches, capacity, scheduled)
