"""What every local stand-in of a Google REST API does the same way: a quiet handler that answers
JSON, served on a thread (tests) or in the foreground until interrupted (``python -m``)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler answering JSON; the server's attributes (``serve(..., name=value)``)
    carry the stand-in's state."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the stand-in's callers log what matters; per-request lines would drown them

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler: type[JsonHandler], port: int, **state: Any) -> ThreadingHTTPServer:
    """The stand-in on 127.0.0.1:``port`` on a daemon thread (call ``shutdown()`` when done)."""
    httpd = _server(handler, port, state)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def serve_until_interrupted(handler: type[JsonHandler], port: int, banner: str, **state: Any) -> int:
    """The stand-in in the foreground (a ``make run`` child process) until Ctrl-C or SIGTERM."""
    httpd = _server(handler, port, state)
    print(banner, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


def _server(handler: type[JsonHandler], port: int, state: dict[str, Any]) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    for name, value in state.items():
        setattr(httpd, name, value)
    return httpd
