"""The routing bench's HTTP part: /v2/route (open and production paths) and a bare
functions-framework handler, each served by gunicorn and loaded by wrk in interleaved rounds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.routing_backends import ProductionBackends  # noqa: E402
from bench.routing_inprocess import ROUTE_BODY  # noqa: E402

OPERATOR_KEY = "bench-operator-key-0123456789abcdef"

BARE_SOURCE = """
import functions_framework


@functions_framework.http
def bare(request):
    return '{"ok": true}', 200, {"Content-Type": "application/json"}
"""

MESSAGE_BODY = '{"message": "Ugh, the deploy keeps failing with the same error, how do I fix it?"}'


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk missing: installing it with apt-get (Debian package wrk)")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        return shutil.which("wrk")
    return None


def serve(
    kind: str, port: int, source_dir: Path, env_extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Serve under functions-framework's gunicorn application, exactly like devtools.serve."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    if kind == "routing":
        argv = [sys.executable, "-m", "devtools.serve", "routing", "--port", str(port)]
    else:
        code = (
            "import functions_framework, sys\n"
            "from functions_framework._http.gunicorn import GunicornApplication\n"
            f"app = functions_framework.create_app('bare', {str(source_dir / 'bare.py')!r}, 'http')\n"
            f"GunicornApplication(app, '127.0.0.1', {port}, False).run()\n"
        )
        argv = [sys.executable, "-c", code]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from devtools.processes import wait_until_port

    wait_until_port(port, None, 60)
    return proc


def wrk(
    wrk_bin: str,
    url: str,
    body: str,
    *,
    duration: int,
    connections: int,
    script_dir: Path,
    api_key: str | None = None,
) -> dict[str, float]:
    script = script_dir / "post.lua"
    escaped = body.replace("\\", "\\\\").replace("'", "\\'")
    lua = f"wrk.method = 'POST'\nwrk.body = '{escaped}'\nwrk.headers['Content-Type'] = 'application/json'\n"
    if api_key:
        lua += f"wrk.headers['X-API-Key'] = '{api_key}'\n"
    script.write_text(lua)
    argv = [wrk_bin, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    warm = subprocess.run([*argv[:3], "-d2s", *argv[4:]], check=True, capture_output=True, text=True).stdout
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if match:
            value, unit = float(match.group(1)), match.group(2)
            figures[f"p{pct}"] = value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non2xx"] = float(errors.group(1)) if errors else 0.0
    figures["requests"] = sum(
        float(found.group(1)) for text in (warm, out) if (found := re.search(r"(\d+) requests in", text))
    )  # warm-up included
    return figures


def ready(url: str, body: str, api_key: str | None, timeout: float = 90) -> None:
    """The target answers 200 (the key accepted, the path warm) before wrk starts."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", **({"X-API-Key": api_key} if api_key else {})}
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, data=body.encode(), headers=headers), timeout=10
            ) as answer:
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read()[:200]!r}"
            if exc.code in (401, 403, 422):
                break
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{url} never answered 200 (last: {last})")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (routing flushes its metrics, as on Cloud Run), then SIGKILL if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def production_settings(backends_env: dict[str, str]) -> dict[str, str]:
    """The production path's settings: an operator key, the Redis rate limit, metrics on."""
    return {
        **backends_env,
        "ION_API_KEYS": OPERATOR_KEY,
        "ION_REQUEST_ID_SECRET": "bench-request-id-secret",
        # High enough that none is refused; the lease is the one the default limit (50/s, burst
        # 100) gets, 5 tokens per Redis round trip, not the 100,000 this rate would lease.
        "ION_RATE_LIMIT_PER_SECOND": "1000000",
        "ION_RATE_LIMIT_BURST": "1000000",
        "ION_RATE_LIMIT_LEASE_TOKENS": "5",
        "ION_METRICS_ENABLED": "true",
        "ION_METRICS_BACKGROUND_FLUSH": "true",
    }


def bench_http(duration: int, connection_counts: list[int], rounds: int, production: bool) -> None:
    wrk_bin = ensure_wrk()
    if wrk_bin is None:
        print("HTTP part skipped: wrk is not installed (Debian: `sudo apt-get install -y wrk`).")
        return
    from devtools.processes import free_port

    backends = ProductionBackends() if production else None
    try:
        _bench_http(wrk_bin, free_port, duration, connection_counts, rounds, backends)
    finally:
        if backends is not None:
            backends.stop()


def _bench_http(  # noqa: PLR0917 - the runs and their table
    wrk_bin: str,
    free_port: Any,
    duration: int,
    connection_counts: list[int],
    rounds: int,
    backends: ProductionBackends | None,
) -> None:
    open_env = {"ION_METRICS_ENABLED": "false", "ION_API_KEYS": ""}
    targets: list[tuple[str, str, str, dict[str, str] | None, str | None]] = [
        ("bare handler", "/", ROUTE_BODY, None, None),
        ("open: /v2/route (key)", "/v2/route", ROUTE_BODY, open_env, None),
        ("open: /v2/route (message, L1 hit)", "/v2/route", MESSAGE_BODY, open_env, None),
    ]
    if backends is not None:
        backends.subscribe()
        production_env = production_settings(backends.env)
        no_lease_env = {**production_env, "ION_RATE_LIMIT_LEASE_TOKENS": "1"}
        targets += [
            ("production: operator key", "/v2/route", ROUTE_BODY, production_env, OPERATOR_KEY),
            ("production: customer key", "/v2/route", ROUTE_BODY, production_env, backends.customer_key),
            ("production: operator key, no lease", "/v2/route", ROUTE_BODY, no_lease_env, OPERATOR_KEY),
        ]
        evals_before = backends.redis_calls("evalsha")
    results: dict[tuple[int, str], dict[str, float]] = {}
    requests_sent = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        (tmp_dir / "bare.py").write_text(BARE_SOURCE)
        # Rounds interleave the targets so that a burst of load from elsewhere on a shared machine
        # hits them alike; each target keeps its best round.
        for _round in range(rounds):
            for connections in connection_counts:
                for kind, path, body, env, api_key in targets:
                    port = free_port()
                    proc = serve("bare" if env is None else "routing", port, tmp_dir, env)
                    try:
                        ready(f"http://127.0.0.1:{port}{path}", body, api_key)
                        figures = wrk(
                            wrk_bin,
                            f"http://127.0.0.1:{port}{path}",
                            body,
                            duration=duration,
                            connections=connections,
                            script_dir=tmp_dir,
                            api_key=api_key,
                        )
                    finally:
                        stop(proc)
                    if api_key:
                        requests_sent += int(figures["requests"]) + 1  # + the readiness check
                    key = (connections, kind)
                    if key not in results or figures["rps"] > results[key]["rps"]:
                        results[key] = figures
    for connections in connection_counts:
        bare = results[(connections, "bare handler")]["rps"]
        print(
            f"HTTP under wrk (-t1 -c{connections}, {duration}s, loopback, functions-framework gunicorn, "
            f"best of {rounds} interleaved rounds):"
        )
        header = ("target", "req/s", "p50 ms", "p90 ms", "p99 ms", "vs bare", "non-2xx")
        print(f"  {header[0]:36} " + " ".join(f"{h:>8}" for h in header[1:]))
        nan = float("nan")
        for (conns, kind), fig in results.items():
            if conns != connections:
                continue
            cells = [f"{fig['rps']:8,.0f}"] + [f"{fig.get(p, nan):8.2f}" for p in ("p50", "p90", "p99")]
            cells += [f"{fig['rps'] / bare:8.0%}", f"{fig['non2xx']:8.0f}"]
            print(f"  {kind:36} " + " ".join(cells))
        for kind in [t[0] for t in targets[1:] if t[2] == ROUTE_BODY]:
            ratio = results[(connections, kind)]["rps"] / bare
            print(f"  {kind} / bare = {ratio:.2f} (goal >= 0.80) {'ok' if ratio >= 0.8 else 'MISSED'}")
    if backends is not None:
        evals = backends.redis_calls("evalsha") - evals_before
        published = backends.published_messages()
        print(
            f"production path checks: {evals:,} rate-limit scripts run in Redis for {requests_sent:,} "
            f"keyed requests (warm-ups and readiness checks included); {published:,} metric batches "
            "published to the Pub/Sub emulator's metrics topic"
        )
