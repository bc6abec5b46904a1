"""The routing bench's HTTP part: /v2/route (open and production paths) and a bare
functions-framework handler, each served by gunicorn and loaded by wrk in interleaved rounds."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    kind: str,
    port: int,
    source_dir: Path,
    env_extra: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Serve under functions-framework's gunicorn application, as deployed; on
    ``cpus`` only when given (its worker inherits the master's CPUs), then with the threads
    functions-framework gives an instance of that many CPUs (4 each): a deployed ``route`` has
    one vCPU, so 4 threads, not the 8 it would take from this machine's two (``THREADS`` set in
    the environment wins, as it does deployed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    if cpus and "THREADS" not in os.environ:
        env["THREADS"] = str(4 * len(cpus))
    # As the functions-framework command serves a deployed function: its target alone, no
    # local dispatcher in front (devtools.serve's routes every capability's paths).
    target, source = ("route", ROOT / "main.py") if kind == "routing" else ("bare", source_dir / "bare.py")
    code = (
        "from functions_framework import create_app\n"
        "from functions_framework._http.gunicorn import GunicornApplication\n"
        f"app = create_app({target!r}, {str(source)!r}, 'http')\n"
        f"GunicornApplication(app, '127.0.0.1', {port}, False, control_socket_disable=True).run()\n"
    )
    argv = [sys.executable, "-c", code]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,  # noqa: PLW1509 - no threads yet
    )
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
    cpus: set[int] | None = None,
    warm_seconds: int = 2,
) -> dict[str, float]:
    script = script_dir / "post.lua"
    escaped = body.replace("\\", "\\\\").replace("'", "\\'")
    lua = f"wrk.method = 'POST'\nwrk.body = '{escaped}'\nwrk.headers['Content-Type'] = 'application/json'\n"
    if api_key:
        lua += f"wrk.headers['X-API-Key'] = '{api_key}'\n"
    script.write_text(lua)
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    argv = [*pin, wrk_bin, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    at = len(pin) + 3  # the -d argument
    warm = subprocess.run(
        [*argv[:at], f"-d{warm_seconds}s", *argv[at + 1 :]], check=True, capture_output=True, text=True
    )
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
        float(found.group(1))
        for text in (warm.stdout, out)
        if (found := re.search(r"(\d+) requests in", text))
    )  # warm-up included
    return figures


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and every process under it."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(used.get(p, 0.0) for p in tree)


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children (wrk runs)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


def deployed_settings(backends_env: dict[str, str]) -> dict[str, str]:
    """The production path as deployed: an operator key, the Redis rate limit at its defaults
    (50 tokens/s, burst 100, so one key driven by wrk is mostly refused), metrics on."""
    return {
        **backends_env,
        "ION_API_KEYS": OPERATOR_KEY,
        "ION_REQUEST_ID_SECRET": "bench-request-id-secret",
        "ION_METRICS_ENABLED": "true",
        "ION_METRICS_BACKGROUND_FLUSH": "true",
    }


def raised_limit_settings(backends_env: dict[str, str]) -> dict[str, str]:
    """The deployed settings with the limit an operator would set for a key sending this much
    (2,000/s, burst 4,000): every request admitted, with the lease the default rule gives that
    limit (a tenth of a second of the rate: 200 tokens per Redis round trip)."""
    return {
        **deployed_settings(backends_env),
        "ION_RATE_LIMIT_PER_SECOND": "2000",
        "ION_RATE_LIMIT_BURST": "4000",
    }


def production_settings(backends_env: dict[str, str]) -> dict[str, str]:
    """The production path with every request admitted and the most Redis round trips: a limit
    high enough that none is refused, and the lease the default limit gets (5 tokens per Redis
    round trip, not the 100,000 this rate would lease)."""
    return {
        **deployed_settings(backends_env),
        "ION_RATE_LIMIT_PER_SECOND": "1000000",
        "ION_RATE_LIMIT_BURST": "1000000",
        "ION_RATE_LIMIT_LEASE_TOKENS": "5",
    }


# (label, path, body, settings or None for the bare handler, API key)
Target = tuple[str, str, str, "dict[str, str] | None", "str | None"]

BARE = "bare handler"
OPEN = "open: /v2/route (key)"


def bench_http(
    duration: int, connection_counts: list[int], rounds: int, production: bool, pin: bool = True
) -> None:
    wrk_bin = ensure_wrk()
    if wrk_bin is None:
        print("HTTP part skipped: wrk is not installed (Debian: `sudo apt-get install -y wrk`).")
        return
    # Pinned: the server under test alone on CPU 0 (a deployed instance has its CPU to itself);
    # wrk, redis-server and the emulators on the others (elsewhere when deployed).
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus: set[int] | None = None
    others: set[int] | None = None
    if pin and len(cpus) >= 2:
        server_cpus, others = {cpus[0]}, set(cpus[1:])
        os.sched_setaffinity(0, others)  # this process and what it starts: the backends, wrk
    elif pin:
        print("one CPU: the server under test cannot be pinned apart; running unpinned")
    backends = ProductionBackends() if production else None
    try:
        _bench_http(wrk_bin, duration, connection_counts, rounds, backends, server_cpus, others)
    finally:
        if backends is not None:
            backends.stop()
        if others is not None:
            os.sched_setaffinity(0, set(cpus))


def _targets(backends: ProductionBackends | None) -> list[Target]:
    open_env = {"ION_METRICS_ENABLED": "false", "ION_API_KEYS": ""}
    targets: list[Target] = [
        # The same request as the open path (functions-framework matches both paths by its
        # catch-all rule; "/" would skip its path converter, which every real path pays).
        (BARE, "/v2/route", ROUTE_BODY, None, None),
        (OPEN, "/v2/route", ROUTE_BODY, open_env, None),
        ("open: /v2/route (message, L1 hit)", "/v2/route", MESSAGE_BODY, open_env, None),
    ]
    if backends is not None:
        production_env = production_settings(backends.env)
        deployed, raised = deployed_settings(backends.env), raised_limit_settings(backends.env)
        customer = backends.customer_key
        targets += [
            ("production: deployed defaults (429s)", "/v2/route", ROUTE_BODY, deployed, OPERATOR_KEY),
            ("production: limit 2000/s, lease 200", "/v2/route", ROUTE_BODY, raised, OPERATOR_KEY),
            ("production: operator key, lease 5", "/v2/route", ROUTE_BODY, production_env, OPERATOR_KEY),
            ("production: customer key, lease 5", "/v2/route", ROUTE_BODY, production_env, customer),
        ]
    return targets


def _bench_http(  # noqa: PLR0917 - the runs and their table
    wrk_bin: str,
    duration: int,
    connection_counts: list[int],
    rounds: int,
    backends: ProductionBackends | None,
    server_cpus: set[int] | None,
    other_cpus: set[int] | None,
) -> None:
    from devtools.processes import free_port

    targets = _targets(backends)
    if backends is not None:
        backends.subscribe()
        evals_before = backends.redis_calls("evalsha")
    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    requests_sent = 0
    loads: list[float] = []
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        (tmp_dir / "bare.py").write_text(BARE_SOURCE)
        try:
            # Every server is started once and kept, as a deployed instance is (min instances 1):
            # a fresh process per run added its own luck (memory layout, hash seed) to each run.
            for kind, path, body, env, api_key in targets:
                port = free_port()
                servers[kind] = (
                    serve("bare" if env is None else "routing", port, tmp_dir, env, server_cpus),
                    port,
                )
                ready(f"http://127.0.0.1:{port}{path}", body, api_key)
            # Many short rounds, each running every target once in a rotated order, so that the
            # machine's drift hits them alike; each run is compared with the bare handler's run of
            # the same round, and the verdict reads the median of those paired ratios.
            for round_ in range(rounds):
                for connections in connection_counts:
                    shift = round_ % len(targets)
                    for kind, path, body, _env, api_key in targets[shift:] + targets[:shift]:
                        proc, port = servers[kind]
                        loads.append(os.getloadavg()[0])
                        figures = _measured_run(
                            wrk_bin,
                            proc,
                            f"http://127.0.0.1:{port}{path}",
                            body,
                            api_key,
                            duration,
                            connections,
                            tmp_dir,
                            other_cpus,
                            backends,
                        )
                        if api_key:
                            requests_sent += int(figures["requests"])
                        results.setdefault((connections, kind), []).append(figures)
        finally:
            for proc, _port in servers.values():
                stop(proc)
    placement = (
        f"server on CPU {sorted(server_cpus)} with "
        f"{os.environ.get('THREADS', 4 * len(server_cpus))} gunicorn threads, "
        f"wrk, redis-server and emulators on {sorted(other_cpus or ())}"
        if server_cpus
        else "unpinned: server, wrk, redis-server and emulators share every CPU"
    )
    print(
        f"HTTP under wrk ({rounds} rounds of {duration} s per target after 1 s of warm-up, every target once "
        f"a round in a rotated order; loopback; functions-framework gunicorn as deployed, each server "
        f"started once and kept; {placement}; machine load average {min(loads):.1f}-{max(loads):.1f} "
        "during the runs)"
    )
    for connections in connection_counts:
        _print_table(connections, targets, results)
    _print_cpu(connection_counts, targets, results)
    if backends is not None:
        evals = backends.redis_calls("evalsha") - evals_before
        published = backends.published_messages()
        print(
            f"production path checks: {evals:,} rate-limit scripts run in Redis for {requests_sent:,} "
            f"keyed requests (warm-ups included); {published:,} metric batches "
            "published to the Pub/Sub emulator's metrics topic"
        )


def _measured_run(  # noqa: PLR0917 - one wrk run and the CPU it cost
    wrk_bin: str,
    proc: subprocess.Popen[bytes],
    url: str,
    body: str,
    api_key: str | None,
    duration: int,
    connections: int,
    script_dir: Path,
    other_cpus: set[int] | None,
    backends: ProductionBackends | None,
) -> dict[str, float]:
    backend_pids = backends.pids() if backends is not None else []
    cpu_before = (
        cpu_seconds(proc.pid),
        children_cpu_seconds(),
        sum(cpu_seconds(pid) for pid in backend_pids),
    )
    figures = wrk(
        wrk_bin,
        url,
        body,
        duration=duration,
        connections=connections,
        script_dir=script_dir,
        api_key=api_key,
        cpus=other_cpus,
        warm_seconds=1,
    )
    served = figures["requests"]
    figures["server_ms"] = (cpu_seconds(proc.pid) - cpu_before[0]) * 1000 / served
    figures["wrk_ms"] = (children_cpu_seconds() - cpu_before[1]) * 1000 / served
    figures["backends_ms"] = (sum(cpu_seconds(pid) for pid in backend_pids) - cpu_before[2]) * 1000 / served
    return figures


def _print_table(
    connections: int,
    targets: list[Target],
    results: dict[tuple[int, str], list[dict[str, float]]],
) -> None:
    """Each target's runs against the bare handler's run of the same round (throughput) and the
    open path's (p99): the median of the paired ratios, which the verdict reads, and the worst
    and best round beside it."""
    print(f"  -c{connections}:")
    header = ("req/s", "p99 ms", "vs bare", "worst", "best", "p99/open", "worst", "non-2xx")
    print(f"    {'target (medians of the rounds)':40} " + " ".join(f"{h:>8}" for h in header))
    nan = float("nan")
    verdicts = []
    for kind, _path, body, env, _key in targets:
        runs = list(
            zip(
                results[(connections, kind)],
                results[(connections, BARE)],
                results[(connections, OPEN)],
                strict=True,
            )
        )
        ratios = [fig["rps"] / bare["rps"] for fig, bare, _ in runs]
        tails = [fig.get("p99", nan) / opened.get("p99", nan) for fig, _, opened in runs]
        cells = [
            f"{statistics.median(fig['rps'] for fig, _, _ in runs):8,.0f}",
            f"{statistics.median(fig.get('p99', nan) for fig, _, _ in runs):8.1f}",
            f"{statistics.median(ratios):8.2f}",
            f"{min(ratios):8.2f}",
            f"{max(ratios):8.2f}",
            f"{statistics.median(tails):8.2f}",
            f"{max(tails):8.2f}",
            f"{sum(fig['non2xx'] for fig, _, _ in runs):8,.0f}",
        ]
        print(f"    {kind:40} " + " ".join(cells))
        if env is not None and body == ROUTE_BODY and kind != OPEN:
            ratio, tail = statistics.median(ratios), statistics.median(tails)
            verdict = "ok" if ratio >= 0.8 and tail <= 1.5 else "MISSED"
            verdicts.append(
                f"    {kind}: {ratio:.2f} of bare (goal >= 0.80; "
                f"rounds {min(ratios):.2f}-{max(ratios):.2f}), "
                f"p99 {tail:.2f}x the open path's (goal <= 1.5x; worst round {max(tails):.2f}x): {verdict}"
            )
    print("\n".join(verdicts))


def _print_cpu(
    connection_counts: list[int],
    targets: list[Target],
    results: dict[tuple[int, str], list[dict[str, float]]],
) -> None:
    """CPU time per request of each process, over every round: what a deployed instance's
    throughput follows (its CPU is its own), whatever else this machine was running."""
    print(
        "CPU per request (ms, user + system, warm-ups included, all rounds): the server under test, "
        "wrk, and redis-server + the emulators; `bare / server` is the bare handler's server CPU over "
        "this one's: the throughput ratio of an instance with a CPU of its own"
    )
    header = ("target", "server", "wrk", "backends", "bare/server")
    print(f"  {'':5} {header[0]:40} " + " ".join(f"{h:>11}" for h in header[1:]))

    def mean(runs: list[dict[str, float]], field: str) -> float:
        return sum(f[field] for f in runs) / len(runs)

    for connections in connection_counts:
        bare = mean(results[(connections, BARE)], "server_ms")
        for kind, *_ in targets:
            runs = results[(connections, kind)]
            cells = [f"{mean(runs, f):11.3f}" for f in ("server_ms", "wrk_ms", "backends_ms")]
            cells.append(f"{bare / mean(runs, 'server_ms'):11.2f}")
            print(f"  -c{connections:<3} {kind:40} " + " ".join(cells))
