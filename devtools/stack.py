"""`make run`: the whole of ION Ops locally, on real parts.

Starts the Firestore and Pub/Sub emulators (gcloud CLI), Redis, every capability in
topology.yaml under functions-framework on its port, creates the topics and push subscriptions
pointing at the local functions, runs a local scheduler firing topology.yaml's cron schedules,
prints what runs where and then a line with `ready`. SIGINT or SIGTERM stops everything.
Every part's output goes to the terminal with a `[part]` prefix and to `.run/logs/<part>.log`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from devtools.emulators import (
    GCLOUD_HINT,
    REDIS_HINT,
    MissingTool,
    require,
    start_firestore,
    start_pubsub,
    start_redis,
)
from devtools.processes import ManagedProcess, port_open, python, wait_until_http
from devtools.pubsub_setup import create_topics_and_subscriptions
from devtools.scheduler import SCHEDULER_PRINCIPAL, LocalScheduler, SchedulerApiStandIn
from shared.roles import ROLE_VARIABLES, SCHEDULER
from shared.topology import ROOT, topology

LOG_DIR = Path(os.environ.get("ION_RUN_DIR", ROOT / ".run")) / "logs"


def env_port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def say(message: str) -> None:
    sys.stdout.write(f"[stack] {message}\n")
    sys.stdout.flush()


def stop_with_parent() -> None:
    """`make run` is our parent: if it is killed (SIGTERM to make), stop too instead of lingering."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def cloudrun_standin(port: int, project: str) -> ManagedProcess:
    """The Cloud Run Admin API v2 stand-in, serving the services of the scaling rules."""
    from functions.scaling.rules import active_rules

    services = [f"--service={region}/{rules.service}" for region, rules in active_rules().regions.items()]
    return ManagedProcess(
        "cloudrun-standin",
        [python(), "-m", "devtools.cloudrun_standin", "--port", str(port), "--project", project, *services],
        log_dir=LOG_DIR,
        echo=sys.stdout,
        cwd=ROOT,
        env={"PYTHONUNBUFFERED": "1"},
    )


def point_at_local_ports(ports: dict[str, int]) -> None:
    """Each capability's address, and the link bases notifications and reports carry, on the ports
    this stack serves on (the settings' defaults name the default ports: moved, they would link to
    nothing, or to another stack); a variable already set is kept."""
    for cap, port in ports.items():
        os.environ.setdefault(f"ION_{cap.upper()}_URL", f"http://127.0.0.1:{port}")
    if "fanout" in ports:
        os.environ.setdefault("ION_FANOUT_PUBLIC_URL", f"http://127.0.0.1:{ports['fanout']}")
    if "reports" in ports:
        os.environ.setdefault("ION_REPORTS_PUBLIC_URL", f"http://127.0.0.1:{ports['reports']}")
        os.environ.setdefault("ION_DASHBOARD_URL", f"http://127.0.0.1:{ports['reports']}/dashboards/overview")


def main() -> int:
    started_at = time.monotonic()
    stop_with_parent()
    project = os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "ion-ops-local")
    firestore_port = env_port("ION_FIRESTORE_PORT", 8681)
    pubsub_port = env_port("ION_PUBSUB_PORT", 8682)
    redis_port = env_port("ION_REDIS_PORT", 6380)
    scheduler_api_port = env_port("ION_SCHEDULER_API_PORT", 8683)
    bigquery_port = env_port("ION_BIGQUERY_PORT", 8690)
    missing = []
    for tool, hint in (("gcloud", GCLOUD_HINT), ("java", GCLOUD_HINT), ("redis-server", REDIS_HINT)):
        try:
            require(tool, hint)
        except MissingTool as exc:
            missing.append(str(exc))
    if missing:
        for line in missing:
            say(line)
        return 1
    topo = topology()
    capabilities = sorted({fn.capability for fn in topo.functions.values()})
    ports = {cap: topo.capabilities[cap].local_port() for cap in capabilities}

    cloudrun_port = env_port("ION_CLOUDRUN_STANDIN_PORT", 8091)
    busy = [
        p
        for p in [firestore_port, pubsub_port, redis_port, scheduler_api_port, cloudrun_port, *ports.values()]
        if port_open(p)
    ]
    # Fan-out's group timers go through a Cloud Tasks API stand-in unless a queue is configured.
    cloudtasks_port = env_port("ION_CLOUDTASKS_PORT", 8692)
    local_queue = "fanout" in ports and "ION_FANOUT_TASKS_QUEUE" not in os.environ
    if local_queue and port_open(cloudtasks_port):
        busy.append(cloudtasks_port)
    if "cost" in ports and "ION_COST_BILLING_TABLE" not in os.environ:
        busy += [p for p in (bigquery_port, env_port("ION_RECOMMENDER_PORT", 8691)) if port_open(p)]
    if busy:
        say(f"ports already in use: {busy}; stop what holds them or set the port variables (README)")
        return 1

    os.environ.update(
        {
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{firestore_port}",
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
            "REDIS_URL": os.environ.get("REDIS_URL", f"redis://127.0.0.1:{redis_port}/0"),
        }
    )
    point_at_local_ports(ports)
    # Scaling applies through a local Cloud Run Admin API v2 stand-in (still dry-run by default).
    os.environ.setdefault("ION_SCALING_CLOUDRUN_ENDPOINT", f"http://127.0.0.1:{cloudrun_port}")

    processes: list[ManagedProcess] = []
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    scheduler: LocalScheduler | None = None
    scheduler_api: SchedulerApiStandIn | None = None
    try:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        # The emulators and Redis start together; each wait is bounded.
        starters = [
            lambda: start_firestore(firestore_port, log_dir=LOG_DIR, echo=sys.stdout),
            lambda: start_pubsub(pubsub_port, project, log_dir=LOG_DIR, echo=sys.stdout),
            lambda: start_redis(redis_port, log_dir=LOG_DIR, echo=sys.stdout),
        ]
        errors: list[BaseException] = []

        def run(starter):  # type: ignore[no-untyped-def]
            try:
                processes.append(starter())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(s,)) for s in starters]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

        # The scheduler exists before the functions so that its Cloud Scheduler API stand-in's
        # address is in their environment; it fires only once everything is up.
        scheduler = LocalScheduler(
            topo.schedules,
            lambda fn: f"http://127.0.0.1:{ports[topo.functions[fn].capability]}",
            lambda line: say(f"scheduler: {line}"),
        )
        scheduler_api = SchedulerApiStandIn(
            scheduler, project, os.environ.get("FUNCTION_REGION", "us-central1"), scheduler_api_port
        ).start()
        os.environ.setdefault("ION_SCHEDULER_API_URL", scheduler_api.url)
        if "cost" in ports and "ION_COST_BILLING_TABLE" not in os.environ:
            # The cost capability reads a generated billing export and recommendations from stand-ins.
            from devtools.cost_standins import start_cost_standins

            standins, standin_env = start_cost_standins(
                bigquery_port,
                env_port("ION_RECOMMENDER_PORT", 8691),
                project,
                log_dir=LOG_DIR,
                echo=sys.stdout,
            )
            processes.extend(standins)
            os.environ.update(standin_env)
        if "scaling" in ports:
            processes.append(cloudrun_standin(cloudrun_port, project))
        if local_queue:
            from devtools.cloudtasks_standin import start_fanout_queue

            queue_proc, queue_env = start_fanout_queue(
                cloudtasks_port,
                project,
                os.environ.get("FUNCTION_REGION", "us-central1"),
                f"http://127.0.0.1:{ports['fanout']}",
                log_dir=LOG_DIR,
                echo=sys.stdout,
            )
            processes.append(queue_proc)
            os.environ.update(queue_env)
        # The local scheduler names itself with the dev identity header (shared/roles.py), so only
        # it holds the scheduler role; the human roles stay unset: every local caller holds them.
        os.environ.setdefault(ROLE_VARIABLES[SCHEDULER], SCHEDULER_PRINCIPAL)
        for cap, port in ports.items():
            processes.append(
                ManagedProcess(
                    cap,
                    [python(), "-m", "devtools.serve", cap, "--port", str(port)],
                    log_dir=LOG_DIR,
                    echo=sys.stdout,
                    cwd=ROOT,
                    env={"PYTHONUNBUFFERED": "1"},
                )
            )
        for cap, port in ports.items():
            proc = next(p for p in processes if p.name == cap)
            wait_until_http(f"http://127.0.0.1:{port}/", proc, 60)

        subscriptions = create_topics_and_subscriptions(
            topo, project, lambda cap: f"http://127.0.0.1:{ports[cap]}"
        )
        threading.Thread(target=scheduler.run, name="scheduler", daemon=True).start()

        rows = [
            ("firestore emulator", f"127.0.0.1:{firestore_port}"),
            ("pubsub emulator", f"127.0.0.1:{pubsub_port}"),
            ("redis", f"127.0.0.1:{redis_port}"),
            ("cloud scheduler api (stand-in)", scheduler_api.url),
        ]
        for label, var in (
            ("bigquery stand-in", "ION_COST_BIGQUERY_ENDPOINT"),
            ("recommender stand-in", "ION_COST_RECOMMENDER_ENDPOINT"),
        ):
            if os.environ.get(var):
                rows.append((label, os.environ[var]))
        if "scaling" in ports:
            rows.append(("cloud run admin stand-in", f"http://127.0.0.1:{cloudrun_port}"))
        if local_queue:
            rows.append(("cloud tasks stand-in (fan-out timers)", f"http://127.0.0.1:{cloudtasks_port}"))
        for cap, port in ports.items():
            names = ", ".join(n for n in topo.functions_of(cap))
            rows.append((f"{cap} ({names})", f"http://127.0.0.1:{port}"))
        for sub, endpoint in subscriptions:
            rows.append((f"push {sub.rsplit('/', 1)[1]}", endpoint))
        for name, schedule in topo.schedules.items():
            rows.append((f"schedule {name}", f"{schedule.cron} -> {schedule.function}{schedule.path}"))
        width = max(len(r[0]) for r in rows)
        for label, where in rows:
            say(f"{label.ljust(width)}  {where}")
        say(f"logs in {LOG_DIR}")
        say(f"ready in {time.monotonic() - started_at:.1f}s (Ctrl-C stops everything)")

        while not stopping.wait(1.0):
            for proc in processes:
                if not proc.alive():
                    say(proc.describe_failure())
                    return 1
        return 0
    except MissingTool as exc:
        say(str(exc))
        return 1
    finally:
        if scheduler is not None:
            scheduler.stop()
        if scheduler_api is not None:
            scheduler_api.stop()
        for proc in reversed(processes):
            proc.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
