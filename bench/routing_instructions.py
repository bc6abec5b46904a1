"""CPU instructions per request through the whole WSGI application (functions-framework's Flask
app, then ours), counted by valgrind's callgrind: a figure that does not move with the load of a
shared machine, unlike the wrk runs. No sockets: gunicorn's HTTP parsing and the kernel's share
(a Redis round trip's system calls) are not counted, so this is the part of a request that is
Python in the worker, for the bare handler, the open path and the production path.

    .venv/bin/python bench/routing_instructions.py [--requests 200]

Targets (the same bodies and settings as the HTTP bench):
- bare: the bare functions-framework handler of ``routing_http.BARE_SOURCE``;
- open: ``POST /v2/route`` with no API key, metrics off;
- production: an operator key, the rate limit in a real redis-server (all admitted, the lease of
  5 tokens the default limit gets), metrics recorded (published only at exit: not counted);
- refused: the same request over its key's limit, answered 429 from the refusal the instance
  remembers (no Redis round trip), as most of a client's requests over its limit are.

Each target runs in a child process under callgrind with instrumentation off while it starts and
warms up, on for the measured requests only (``callgrind_control -i on``).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.routing_http import BARE_SOURCE, OPERATOR_KEY, production_settings  # noqa: E402
from bench.routing_inprocess import ROUTE_BODY  # noqa: E402

TARGETS = ("bare", "open", "production", "refused")


def _environ(path: str, api_key: str | None) -> dict[str, Any]:
    """A request as gunicorn hands it to the application."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(ROUTE_BODY.encode())),
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_USER_AGENT": "wrk",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if api_key:
        environ["HTTP_X_API_KEY"] = api_key
    return environ


def child(target: str, requests: int, warm: int) -> None:
    """Runs under callgrind: builds the app, warms it, counts ``requests`` requests."""
    import functions_framework

    if target == "bare":
        source = Path(tempfile.mkdtemp()) / "bare.py"
        source.write_text(BARE_SOURCE)
        app = functions_framework.create_app("bare", str(source), "http")
        base = _environ("/v2/route", None)  # the same request as the others (see routing_http)
    else:
        app = functions_framework.create_app("route", str(ROOT / "main.py"), "http")  # as deployed
        base = _environ("/v2/route", None if target == "open" else OPERATOR_KEY)
    body = ROUTE_BODY.encode()
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
        statuses.append(status)

    def one() -> None:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(body)
        answer = app(environ, start_response)
        b"".join(answer)
        getattr(answer, "close", lambda: None)()

    for _ in range(warm):
        one()
    expected = "429" if target == "refused" else "200"
    if not statuses[-1].startswith(expected):
        raise SystemExit(f"{target}: answered {statuses[-1]}, not {expected}")
    control = ["callgrind_control", "-i"]
    subprocess.run([*control, "on", str(os.getpid())], check=True, capture_output=True)
    for _ in range(requests):
        one()
    subprocess.run([*control, "off", str(os.getpid())], check=True, capture_output=True)


def count(target: str, requests: int, warm: int, env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            __file__,
            "--child",
            target,
            "--requests",
            str(requests),
            "--warm",
            str(warm),
        ]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"{target} under callgrind failed: {done.stderr[-2000:]}")
        return int(found.group(1)) / requests


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--child", choices=TARGETS)
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated subset (bare is always run)"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests, args.warm)
        return
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("skipped: valgrind is not installed (Debian: `apt-get install -y valgrind`)")
        return
    from devtools.emulators import start_redis
    from devtools.processes import free_port

    redis_port = free_port()
    redis = start_redis(redis_port, log_dir=ROOT / ".run" / "bench-logs")
    try:
        common = {**os.environ, "PYTHONPATH": str(ROOT), "ION_LOG_LEVEL": "WARNING"}
        settings = {
            "bare": {**common, "ION_METRICS_ENABLED": "false"},
            "open": {**common, "ION_METRICS_ENABLED": "false", "ION_API_KEYS": ""},
            "production": {
                **common,
                **production_settings({"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}),
                # Recorded on every request, published only when the process ends.
                "ION_METRICS_BACKGROUND_FLUSH": "false",
                "ION_METRICS_FLUSH_SECONDS": "1000000",
            },
        }
        # One token a thousand seconds: the first request takes it, the rest are refused from memory.
        settings["refused"] = {
            **settings["production"],
            "ION_RATE_LIMIT_PER_SECOND": "0.001",
            "ION_RATE_LIMIT_BURST": "1",
        }
        chosen = [t for t in TARGETS if t == "bare" or t in args.targets.split(",")]
        figures = {target: count(target, args.requests, args.warm, settings[target]) for target in chosen}
    finally:
        redis.stop()
    print(
        f"instructions per request through the WSGI app (callgrind, {args.requests} requests after "
        f"{args.warm} warm-up, no sockets):"
    )
    for target, instructions in figures.items():
        ratio = figures["bare"] / instructions
        print(f"  {target:12} {instructions:>12,.0f}   bare / this = {ratio:.2f}")


if __name__ == "__main__":
    main()
