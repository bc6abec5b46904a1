"""The local scheduler fires topology schedules as Cloud Scheduler does."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devtools.scheduler import LocalScheduler
from shared.topology import Schedule


def test_next_run_follows_cron_in_its_time_zone() -> None:
    schedules = {
        "weekly": Schedule(function="mail_reports", cron="0 9 * * 1", time_zone="Europe/Paris"),
        "minutely": Schedule(function="evaluate_alerts", cron="* * * * *"),
    }
    scheduler = LocalScheduler(schedules, lambda fn: "http://x", lambda line: None)
    after = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)  # a Monday
    assert scheduler.next_run("minutely", after) == datetime(2026, 11, 23, 12, 1, tzinfo=UTC)
    # Monday 09:00 in Paris (UTC+1 in November) is 08:00 UTC, already past: next Monday.
    assert scheduler.next_run("weekly", after) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_fire_posts_the_body_with_cloud_scheduler_headers() -> None:
    received: list[tuple[str, object, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        schedules = {"job": Schedule(function="f", cron="* * * * *", path="/run", body={"audience": "eng"})}
        lines: list[str] = []
        scheduler = LocalScheduler(schedules, lambda fn: url, lines.append)
        status = scheduler.fire("job", datetime(2026, 1, 1, tzinfo=UTC))
    finally:
        server.shutdown()
    assert status == 204
    path, headers, body = received[0]  # headers: case-insensitive Message
    assert path == "/run"
    assert body == {"audience": "eng"}
    assert headers["X-CloudScheduler"] == "true"
    assert headers["X-CloudScheduler-JobName"] == "job"
    assert headers["X-CloudScheduler-ScheduleTime"] == "2026-01-01T00:00:00Z"
    assert lines == ["job -> f 204"]
