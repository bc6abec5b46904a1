"""Alert fan-out bench, end to end on the local stack (`python -m devtools.stack` on ports of its
own: emulators, every capability, the Cloud Tasks stand-in serving fan-out's group timers, the
local scheduler with its minute ticks) with the Slack, PagerDuty and SMTP stand-ins.

(a) Breach → Slack, per severity: an OTLP/HTTP JSON batch with a breaching gauge point is POSTed
    to ingestion; ingestion publishes `metric-updates`, alert evaluation evaluates the rule at
    once and publishes the transition on `alerts`, fan-out notifies. Measured: from just before
    the POST to the Slack stand-in receiving `chat.postMessage` (same process, same monotonic
    clock); for critical also to the PagerDuty stand-in receiving the event. Each trial is a new
    service, hence a new alert and a new group. Rounds of critical, high, medium from the moment
    the stack is ready: the first breach after start is trial 0, nothing is warmed up or dropped.
    Critical and high go at once (group_wait 0); medium waits its group_wait (30 s), served by a
    Cloud Tasks timer. Medium trials are not waited for one by one: they overlap the later rounds.
    A trial that never arrives (30 s; medium: group_wait + 60 s) is counted as failed and
    shown; the percentiles count it as infinitely late. Goals: p95 <= 5 s for critical and high,
    medium within group_wait + 5 s.
(b) Exactly once: each of N critical transitions is published three times on the `alerts` topic
    (three Pub/Sub messages, as a retrying publisher would) and its first push is also replayed
    twice straight to the push endpoint (as Pub/Sub redelivers). Measured: Slack messages and
    PagerDuty events (the PagerDuty stand-in) per transition. Goal: exactly 1.

    .venv/bin/python bench/fanout.py [--trials 20] [--transitions 20]

The code is split by part: ``fanout_stack.py`` (the stack on free ports, OTLP traffic into it)
and ``fanout_trials.py`` (the trials of (a) and (b) and their figures).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout_stack import Stack, timers_dispatched  # noqa: E402
from bench.fanout_trials import SEVERITIES, breach_rounds, report, triple_redelivery  # noqa: E402
from functions.fanout.routes import load_routing  # noqa: E402
from functions.fanout.settings import DEFAULT_ROUTING_FILE  # noqa: E402
from tests.fanout.pagerduty_standin import PagerDutyStandIn  # noqa: E402
from tests.fanout.slack_standin import SlackStandIn  # noqa: E402
from tests.fanout.smtp_standin import SmtpServer  # noqa: E402

RULES = "rules:\n" + "".join(
    f"""  - name: bench-fanout-{severity}
    metric: bench.fanout.{severity}
    agg: max
    window: 1m
    op: ">"
    threshold: 100
    for: 0s
    severity: {severity}
    group_by: [service]
    annotations:
      summary: "bench {severity} breach {{value}} on {{labels}}"
      runbook: ["nothing to do: this is the fan-out benchmark"]
"""
    for severity in SEVERITIES
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20, help="trials per severity")
    parser.add_argument("--transitions", type=int, default=20)
    args = parser.parse_args()
    medium_wait = load_routing(DEFAULT_ROUTING_FILE).route("medium").group_wait.total_seconds()
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    rules = workdir / "rules.yaml"
    rules.write_text(RULES)
    slack, pd, smtp = SlackStandIn(), PagerDutyStandIn(), SmtpServer()
    project = "ion-ops-bench"
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "ION_RUN_DIR": str(workdir / "run"),
        "ION_RULES_FILE": str(rules),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_CHANNEL": next(iter(slack.channels)),
        "SLACK_API_BASE_URL": slack.base_url,
        "PAGERDUTY_ROUTING_KEY": pd.routing_key,
        "PAGERDUTY_EVENTS_URL": pd.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "ALERT_EMAIL_TO": "oncall@example.com",
        "ION_FANOUT_OUTBOX": str(workdir / "outbox"),
    }
    stack = Stack(env)
    try:
        started = time.monotonic()
        stack.wait_ready()
        print(
            f"stack ready in {time.monotonic() - started:.1f}s (logs in {workdir / 'run' / 'logs'})",
            flush=True,
        )
        trials = breach_rounds(stack, slack, pd, args.trials, medium_wait)
        print(
            f"(a) breach (OTLP at ingestion) -> vendor, local stack, {args.trials} trials per severity, "
            "the first breach after start included (trial 0 = the stack's first alert)"
        )
        met = True
        for severity in SEVERITIES:
            latencies = [t.slack for t in trials if t.severity == severity]
            goal = (
                "goal p95 <= 5 s" if severity != "medium" else f"goal <= group_wait {medium_wait:.0f} s + 5 s"
            )
            p95 = report(f"{severity} -> Slack", latencies, goal)
            met &= p95 <= (5.0 if severity != "medium" else medium_wait + 5.0)
        report(
            "critical -> PagerDuty",
            [t.pagerduty for t in trials if t.severity == "critical"],
            "goal p95 <= 5 s",
        )
        print(f"    group timers (Cloud Tasks stand-in): {timers_dispatched(stack)}")
        counts = triple_redelivery(stack, slack, pd, project, args.transitions)
        slack_counts, pd_counts = [c[0] for c in counts], [c[1] for c in counts]
        print(
            f"(b) {len(counts)} critical transitions, each published 3x on `alerts` "
            "and pushed 2x more directly"
        )
        print(
            f"    Slack messages per transition: min {min(slack_counts)} max {max(slack_counts)}; "
            f"PagerDuty events per transition: min {min(pd_counts)} max {max(pd_counts)}   (goal: exactly 1)"
        )
        once = set(slack_counts) == {1} and set(pd_counts) == {1}
        return 0 if met and once else 1
    finally:
        stack.stop()
        for standin in (slack, pd, smtp):
            standin.close()


if __name__ == "__main__":
    sys.exit(main())
