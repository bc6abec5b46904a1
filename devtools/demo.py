"""`make demo`: realistic traffic through the running local stack, so a newcomer sees live
dashboards, an alert and a report within minutes of a fresh clone.

It starts `make run`'s stack itself unless one already answers on the routing port, then, every
few seconds until Ctrl-C (or ``--minutes``):
- routes requests through ``POST /v2/route``: some with a demo customer's own API key (created
  through the health API), some without (the local stack runs in open mode);
- sends the persona service's OTLP/HTTP metrics for three regions, as its OpenTelemetry SDK would:
  request latency histograms and status codes with a daily shape compressed into
  ``--day-minutes`` minutes;
- now and then (every ``--breach-every`` minutes, for 4 minutes) slows one region down past the
  100 ms P95 target, which fires ``latency-p95-high``: fan-out writes it to the outbox (or Slack
  and mail when configured);
- at the start, takes today's cost snapshot (the finance dashboard's figures);
- after the first minute: scores every customer (the demo customer is new, so its onboarding
  check-in fires: a success action fan-out writes to the outbox, said when it lands) and mails the
  leadership (KPI scorecard), customer success and finance reports of the current week so far
  (labelled partial: the last full week is empty on a fresh clone);
- after the first alert, asks the reports function to mail the engineering report of the week so
  far (written to ``outbox/reports`` as an ``.eml`` without ``SMTP_HOST``).

    python -m devtools.demo [--minutes 10] [--day-minutes 12] [--breach-every 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devtools.demo_traffic import breaching, daily_shape, otlp_batch
from devtools.processes import port_open, python
from shared.topology import ROOT, topology

TONES = [
    "frustrated",
    "playful",
    "anxious",
    "analytical",
    "calm",
    "curious",
    "urgent",
    "confused",
    "collaborative",
]
PACES = ["burst", "flowing", "contemplative", "medium"]
INTENTS = ["seek_advice", "problem_solving", "learning", "validation", "planning", "reflection"]
MESSAGES = [
    "I'm stuck on this bug and getting frustrated, can you help me fix it?",
    "Can you explain how recursion works? I want to learn the basics.",
    "We need to coordinate the team on the launch plan for next week.",
    "Please analyse this data and tell me what the numbers say.",
]
TICK_SECONDS = 5.0


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def url_of(capability: str) -> str:
    return f"http://127.0.0.1:{topology().capabilities[capability].local_port()}"


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def route_body(rng: random.Random) -> dict[str, str]:
    if rng.random() < 0.5:
        return {"resonance_key": f"{rng.choice(TONES)}-{rng.choice(PACES)}-{rng.choice(INTENTS)}"}
    return {"message": rng.choice(MESSAGES), "user_id": f"demo-user-{rng.randrange(40)}"}


def customer_key() -> str | None:
    """A demo customer and a fresh key of its own (the key is shown once)."""
    health = url_of("health")
    status, answer = call(
        "POST",
        f"{health}/v1/customers",
        {"id": "demo-acme", "name": "Acme (demo)", "plan": "pro", "contact": {"email": "csm@example.com"}},
    )
    if status not in (200, 201):
        say(f"could not create the demo customer ({status}: {answer}); routing without a customer key")
        return None
    status, answer = call("POST", f"{health}/v1/customers/demo-acme/keys", {})
    return str(answer["api_key"]) if status == 201 else None


class StackProcess:
    """`make run`'s stack in the background, its output in .run/logs/demo-stack.log."""

    def __init__(self) -> None:
        log_dir = Path(os.environ.get("ION_RUN_DIR", ROOT / ".run")) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "demo-stack.log"
        self.proc = subprocess.Popen(
            [python(), "-m", "devtools.stack"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ready = threading.Event()
        threading.Thread(target=self._copy, daemon=True).start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("a") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if "ready in" in line:
                    self.ready.set()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stack did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def cost_snapshot() -> None:
    """Today's cost snapshot from the local billing stand-in (the finance dashboard's figures)."""
    try:
        status, answer = call("POST", f"{url_of('cost')}/v1/cost/snapshot", {})
        say(f"cost snapshot ({status}): {json.dumps(answer)[:160] if status >= 300 else 'stored'}")
    except urllib.error.URLError as exc:
        say(f"no cost snapshot (the cost function did not answer: {exc.reason}); finance says no data")


def business_day(reports: str) -> None:
    """The daily health run (scoring the demo customer registered today: its ``as_of`` is
    tomorrow, the run scores customers registered before its start) and the week so far's
    leadership, customer success and finance reports."""
    from datetime import UTC, datetime, timedelta

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    status, answer = call("POST", f"{url_of('health')}/v1/health/run?as_of={tomorrow}")
    if status == 200 and isinstance(answer, dict):
        say(
            f"customers scored: {answer.get('customers')} {answer.get('categories')}; success actions "
            f"{answer.get('actions_fired')} (fan-out writes them to the outbox)"
        )
    else:
        say(f"health run ({status}): {json.dumps(answer)[:300]}")
    for audience in ("leadership", "customer_success", "finance"):
        report(reports, audience)
    say(f"customer success: {reports}/dashboards/customer_success · finance: {reports}/dashboards/finance")


def _in_root(folder: str) -> Path:
    path = Path(folder)
    return path if path.is_absolute() else ROOT / path  # the stack runs the functions in ROOT


def reports_outbox() -> Path:
    """Where the reports function writes a report it does not mail (its ``ION_REPORTS_OUTBOX``,
    read by its own settings model)."""
    from functions.reports.settings import ReportsSettings

    return _in_root(ReportsSettings().outbox_dir)


def fanout_outbox() -> Path:
    """Where fan-out's log channel writes (its ``ION_FANOUT_OUTBOX``)."""
    from functions.fanout.settings import FanoutSettings

    return _in_root(FanoutSettings().outbox_dir)


def report(reports: str, audience: str) -> None:
    """The audience's report of the current week so far (labelled partial), mailed again if asked twice."""
    status, answer = call("POST", f"{reports}/v1/reports/{audience}", {"partial": True, "resend": True})
    if status == 201 and answer.get("delivery") == "outbox":
        say(
            f"{audience} report {answer['id']}: {reports_outbox() / answer['id']}.eml "
            f"(no SMTP_HOST: written, not mailed) and {reports}/v1/reports/{answer['id']}"
        )
    else:
        say(f"{audience} report ({status}): {json.dumps(answer)[:300]}")


def success_action(path: Path) -> bool:
    """A customer success action (a health notice), not an alert."""
    try:
        return '"action":' in (text := path.read_text()) and '"customer":' in text
    except OSError:
        return False


def outbox_files(folder: Path, since: float) -> list[Path]:
    """Notifications written since ``since``, in wall-clock seconds (as file times are)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if p.stat().st_mtime >= since and "digest" not in p.name)


def rule_fired(path: Path) -> bool:
    """A rule's alert, not a notice (a scale change, a dead letter, a success action)."""
    try:
        alerts = json.loads(path.read_text())["notification"]["alerts"]
        return any(alert.get("kind") != "notice" for alert in alerts)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def outbox_alerts(folder: Path, since: float) -> list[Path]:
    return [p for p in outbox_files(folder, since) if rule_fired(p) and not success_action(p)]


def outbox_actions(folder: Path, since: float) -> list[Path]:
    return [p for p in outbox_files(folder, since) if success_action(p)]


def run(args: argparse.Namespace) -> int:
    stack = None
    if not port_open(topology().capabilities["routing"].local_port()):
        say("starting the local stack (make run); its output goes to .run/logs/demo-stack.log")
        stack = StackProcess()
        stack.wait_ready(300)
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        return drive(args, stopping)
    finally:
        if stack is not None:
            say("stopping the stack")
            stack.stop()


def drive(args: argparse.Namespace, stopping: threading.Event) -> int:
    rng = random.Random(args.seed)
    routing, ingestion, reports = url_of("routing"), url_of("ingestion"), url_of("reports")
    key = customer_key()
    # Before any customer traffic: the snapshot attributes this month's cost to customers' requests.
    cost_snapshot()
    say(f"dashboards: {reports}/dashboards (overview: {reports}/dashboards/overview)")
    outbox = fanout_outbox()
    say(f"alerts: {url_of('alerts')}/v1/alerts · outbox: {outbox} · Ctrl-C stops")
    started, started_at = time.monotonic(), time.time()  # elapsed time; file times are wall-clock
    last_ns = time.time_ns()
    seen_alert = reported = business = seen_action = False
    routed = {"with key": 0, "without key": 0}
    while not stopping.wait(TICK_SECONDS):
        elapsed = time.monotonic() - started
        if args.minutes and elapsed > args.minutes * 60:
            break
        slow = "europe-west1" if breaching(elapsed, args.breach_every) else None
        now_ns = time.time_ns()
        batch = otlp_batch(rng, daily_shape(elapsed, args.day_minutes), slow, last_ns, now_ns)
        status, answer = call_raw(f"{ingestion}/v1/metrics", batch)
        if status >= 300:
            say(f"ingestion answered {status}: {answer}")
        last_ns = now_ns
        for _ in range(max(1, int(8 * daily_shape(elapsed, args.day_minutes)))):
            with_key = key is not None and rng.random() < 0.6
            headers = {"X-API-Key": key} if with_key and key else {}
            status, _answer = call("POST", f"{routing}/v2/route", route_body(rng), headers)
            if status == 200:
                routed["with key" if with_key else "without key"] += 1
        if not business and elapsed > 60:
            business = True
            business_day(reports)
        if business and not seen_action and (actions := outbox_actions(outbox, started_at)):
            seen_action = True
            say(f"success action in the outbox (the CSM's mail and the team's Slack): {actions[0]}")
        if not seen_alert and (alerts := outbox_alerts(outbox, started_at)):
            seen_alert = True
            say(f"first alert after {elapsed:.0f} s: {alerts[0]}")
        if seen_alert and not reported:
            reported = True
            report(reports, "engineering")
        if int(elapsed) % 60 < TICK_SECONDS:
            state = f"slowing {slow} down (a breach)" if slow else "normal"
            say(
                f"{elapsed / 60:.0f} min: routed {routed['with key']} with a customer key, "
                f"{routed['without key']} without; latency {state}"
            )
    return 0


def call_raw(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=0, help="stop after this long (default: Ctrl-C)")
    parser.add_argument("--day-minutes", type=float, default=12, help="minutes per compressed day")
    # 16: the 12 quiet minutes between breaches outlast latency-p95-high's 5-minute window and its
    # 5 minutes of keep_firing_for, so the alert resolves before the next breach (with 8 it never did).
    parser.add_argument("--breach-every", type=float, default=16, help="minutes between breaches (0: none)")
    parser.add_argument("--seed", type=int, default=7)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
