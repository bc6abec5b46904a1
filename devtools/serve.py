"""Serve one capability's entry points on one port under functions-framework.

Locally a capability is one process: its HTTP entry point answers every path, and each of its
Pub/Sub entry points answers the push path ``/projects/P/topics/T`` of its topic, which its
``@pubsub_push`` entry point turns into a CloudEvent exactly as it does when deployed. Deployed, each
entry point is its own Cloud Function and push subscriptions target it the same way.

    python -m devtools.serve routing --port 8081
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from typing import Any

from shared.topology import ROOT, topology

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class CapabilityApp:
    def __init__(self, http_app: Wsgi | None, event_apps: dict[str, Wsgi]) -> None:
        self.http_app = http_app
        self.event_apps = event_apps

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if path.startswith("/projects/") and "/topics/" in path:
            topic = path.rsplit("/topics/", 1)[1].split("/", 1)[0]
            event_app = self.event_apps.get(topic)
            if event_app is not None:
                return event_app(environ, start_response)
        if self.http_app is not None:
            return self.http_app(environ, start_response)
        if path == "/health":  # event-only capabilities still answer the stack's liveness probe
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "ok"}']
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no HTTP entry point in this capability\n"]


def build_app(capability: str) -> CapabilityApp:
    import functions_framework

    source = str(ROOT / "main.py")
    http_app = None
    event_apps: dict[str, Wsgi] = {}
    for name, fn in topology().functions_of(capability).items():
        if fn.served_locally_by:
            continue  # its routes are served by that function on this port
        if fn.trigger == "http":
            if http_app is not None:
                raise SystemExit(f"{capability}: more than one HTTP entry point cannot share a local port")
            http_app = functions_framework.create_app(target=name, source=source, signature_type="http")
        else:
            app = functions_framework.create_app(target=name, source=source, signature_type="http")
            topics = list(topology().dead_letter_topics().values()) if fn.dead_letters else [fn.topic]
            for topic in topics:
                assert topic is not None
                event_apps[topic] = app
    if http_app is None and not event_apps:
        raise SystemExit(f"{capability}: no entry points in topology.yaml")
    return CapabilityApp(http_app, event_apps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("capability")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    os.chdir(ROOT)
    from functions_framework._http.gunicorn import GunicornApplication

    from shared.api_calls_apps import install_from_env

    install_from_env()  # before the apps are made, so each app's calls are its target's

    # Each capability is its own gunicorn arbiter: with the default control socket (one path per
    # user) every one after the first logs "Control server error: Address already in use".
    app = build_app(args.capability)
    GunicornApplication(app, args.host, args.port, False, control_socket_disable=True).run()


if __name__ == "__main__":
    main()
