"""Cold start bench: per entry point of ``main.py`` (its ``DEPLOYMENT_CHECKS``), each repetition in
a fresh Python process, the time to import ``main`` and to serve the first call, and which heavy
packages the capability's handler module (``functions/<cap>/main.py``) brings into ``sys.modules``.

    nice .venv/bin/python bench/cold_start.py                       # every entry point, 5 runs each
    nice .venv/bin/python bench/cold_start.py --runs 3 --only route ingest

Figures are relative (compare entry points, or a branch with another, on one machine): the load
average is printed beside them, as other work may share the machine.

- ``import main``: what every deployed function pays at start. With the terraform CLI, each child
  gets its function's environment as Terraform renders it from the README's example variables
  (``devtools/rehearse.py``; made-up secrets), so the start check runs as deployed; without it,
  ``K_SERVICE`` is unset and only the check's settings module (``DEPLOYMENT_CHECKS``) is imported.
  Every client points at a closed loopback port (emulator hosts): nothing leaves the machine.
- ``first call``: an HTTP entry point gets ``GET`` of a path no app serves through the real entry
  point (the handler module is imported, its app built; routing answers 404, or authorization 401
  first, as route does deployed, with Redis' client loaded: a closed loopback port here). Every
  real route needs Firestore, Redis or a signed token (``/health`` probes Firestore), so this is
  the first request's cost short of its backend. A Pub/Sub push entry point's first event is
  answered by its handler, which needs Firestore: only the import of its handler module is timed.
  Route's telemetry thread imports the Pub/Sub client meanwhile, as deployed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Packages whose import a cold start notices (tens of milliseconds or more); jinja2 comes with
# flask itself, so every function has it. The test's list is not imported: that module imports
# main, which the children must import only under the timer.
HEAVY = (
    "google.cloud.firestore_v1",
    "google.cloud.pubsub_v1",
    "google.cloud.bigquery",
    "google.cloud.monitoring_v3",
    "google.cloud.scheduler_v1",
    "google.cloud.tasks_v2",
    "google.cloud.run_v2",
    "google.cloud.recommender_v1",
    "google.api_core",
    "grpc",
    "redis",
    "slack_sdk",
    "jinja2",
    "opentelemetry",
    "ddsketch",
    "requests",
    "numpy",
    "pandas",
    "scipy",
)
RESULT_MARK = "cold-start-result: "
UNKNOWN_PATH = "/cold-start-bench-unknown-path"


def heavy_loaded() -> list[str]:
    return [name for name in HEAVY if name in sys.modules]


def handler_module(entry: str) -> str:
    """The capability's handler module an entry point imports on its first call."""
    from inspect import getsource

    import main

    source = getsource(getattr(main, entry))
    return next(word for word in source.split() if word.startswith("functions.") and word.endswith(".main"))


def measure_in_this_process(entry: str) -> dict[str, object]:
    """One cold start: called in a fresh interpreter (``--child``)."""
    os.environ.setdefault("ION_LOG_LEVEL", "WARNING")
    started = time.perf_counter()
    import main

    importlib.import_module(main.DEPLOYMENT_CHECKS[entry])
    import_main_ms = 1000 * (time.perf_counter() - started)
    after_main = heavy_loaded()

    module = handler_module(entry)
    function = getattr(main, entry)
    is_push = _is_push(entry)
    import flask

    server = flask.Flask("cold_start_bench")  # functions-framework's part, not timed
    started = time.perf_counter()
    if is_push:
        importlib.import_module(module)
        status = None
    else:
        with server.test_request_context(UNKNOWN_PATH, method="GET"):
            status = function(flask.request).status_code
    first_call_ms = 1000 * (time.perf_counter() - started)
    return {
        "entry": entry,
        "handler": module,
        "push": is_push,
        "import_main_ms": import_main_ms,
        "first_call_ms": first_call_ms,
        "status": status,
        "heavy_after_main": after_main,
        "heavy_after_handler": heavy_loaded(),
    }


def _is_push(entry: str) -> bool:
    from inspect import getsource

    import main

    return getsource(getattr(main, entry)).lstrip().startswith("@pubsub_push")


# Any client a child creates talks to a closed loopback port: no credentials are looked up and
# nothing leaves the machine (the routing telemetry thread creates a Pub/Sub client at start).
NOWHERE = "127.0.0.1:9"
LOCAL_ONLY = {
    "GOOGLE_CLOUD_PROJECT": "ion-ops-bench",
    "FIRESTORE_EMULATOR_HOST": NOWHERE,
    "PUBSUB_EMULATOR_HOST": NOWHERE,
    "ION_LOG_LEVEL": "WARNING",
}


def deployed_environments() -> dict[str, dict[str, str]] | None:
    """Each function's environment as Terraform renders it from the README's example variables
    (``devtools/rehearse.py``), with a made-up value per secret, so ``import main`` runs the start
    check as deployed; None without the terraform CLI."""
    import shutil
    import tempfile

    if shutil.which("terraform") is None:
        return None
    from devtools.rehearse import EXAMPLE_VARS, made_up_secrets, random_secret, render, resource_placeholders

    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    with tempfile.TemporaryDirectory(prefix="cold-start-tf-") as scratch:
        rendered = render(
            EXAMPLE_VARS,
            resource_placeholders("ion-ops-prod", "us-central1", "123456789012", pem),
            Path(scratch),
        )
    secret_values = made_up_secrets(f"rediss://:{random_secret(32)}@{NOWHERE}/0?ssl_cert_reqs=required")
    return {
        function: {
            **env,
            **{name: secret_values[secret] for name, secret in rendered.secrets[function].items()},
            "K_SERVICE": function.replace("_", "-"),
            "FUNCTION_TARGET": function,
        }
        for function, env in rendered.env.items()
    }


def run_child(entry: str, deployed: dict[str, str] | None) -> dict[str, object]:
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("ION_", "K_", "FUNCTION_"))
    }
    env.update({**(deployed or {}), **LOCAL_ONLY})
    answer = subprocess.run(
        [sys.executable, __file__, "--child", entry],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # The app's own log lines share stdout (and may follow, from exit hooks): take the marked one.
    line = next(line for line in answer.stdout.splitlines() if line.startswith(RESULT_MARK))
    return json.loads(line.removeprefix(RESULT_MARK))  # type: ignore[no-any-return]


def short(name: str) -> str:
    return name.removeprefix("google.cloud.").removeprefix("google.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per entry point")
    parser.add_argument("--only", nargs="*", help="entry points to measure (default: all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(RESULT_MARK + json.dumps(measure_in_this_process(args.child)), flush=True)
        return 0

    import main as entry_points

    entries = args.only or list(entry_points.DEPLOYMENT_CHECKS)
    deployed = deployed_environments()
    load_before = os.getloadavg()
    print(
        f"cold start bench: {os.cpu_count()} cores, load {load_before[0]:.1f}/{load_before[1]:.1f}/"
        f"{load_before[2]:.1f} (1/5/15 min) at start; {args.runs} fresh processes per entry point; "
        "milliseconds, median (max)"
    )
    print(
        "import main as deployed: K_SERVICE set, the start check run on Terraform's rendered settings"
        if deployed
        else "no terraform CLI: import main without K_SERVICE (the settings module imported, not run)"
    )
    columns = f"{'entry point':<26}{'import main':>16}{'first call':>16}  {'kind':<10}"
    print(columns + "heavy packages loaded by then")
    started = time.perf_counter()
    at_start: set[str] = set()
    for entry in entries:
        runs = [run_child(entry, deployed[entry] if deployed else None) for _ in range(args.runs)]
        imports = [float(r["import_main_ms"]) for r in runs]
        firsts = [float(r["first_call_ms"]) for r in runs]
        last = runs[-1]
        at_start.update(last["heavy_after_main"])  # type: ignore[arg-type]
        kind = "push" if last["push"] else f"http {last['status']}"
        heavy = ", ".join(short(n) for n in last["heavy_after_handler"])  # type: ignore[attr-defined]
        print(
            f"{entry:<26}{statistics.median(imports):>9.0f} ({max(imports):>4.0f})"
            f"{statistics.median(firsts):>9.0f} ({max(firsts):>4.0f})  {kind:<10}{heavy}"
        )
    load_after = os.getloadavg()
    loaded_at_start = ", ".join(sorted(at_start)) or "none"
    print(f"\nheavy packages at start (main.py and the settings modules): {loaded_at_start}")
    print(
        f"whole run {time.perf_counter() - started:.0f} s; load {load_after[0]:.1f}/{load_after[1]:.1f}/"
        f"{load_after[2]:.1f} at end. 'first call': HTTP = GET {UNKNOWN_PATH} through the entry point "
        "(the status shown: 404, or 401 where authorization answers first); push = import of the handler "
        "module only (its first event needs Firestore). Heavy packages: after the first call."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
