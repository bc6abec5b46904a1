"""The parts a rehearsed function talks to: the Firestore and Pub/Sub emulators, Redis with TLS and
AUTH (as Memorystore is deployed: a ``rediss://`` URL verified against the instance's CA), and the
stand-ins of the Google APIs the functions call (Cloud Run Admin, BigQuery, Recommender, Cloud
Tasks). Each function then runs alone, in its own process, with the environment Terraform renders.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from devtools.emulators import start_firestore_and_pubsub
from devtools.processes import ManagedProcess, free_port, python, wait_until_port
from devtools.rehearse import (
    RehearsalError,
    Rendered,
    made_up_secrets,
    random_secret,
    render,
    resource_placeholders,
    tfvars_value,
)
from shared.topology import ROOT, topology

START_TIMEOUT_SECONDS = 180.0
# What a container has besides what Cloud Run and the function's configuration set.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "ION_RECORD_API_CALLS")


@dataclass(frozen=True)
class Outcome:
    function: str
    ok: bool
    verdict: str  # "healthy", "refused", or what went wrong
    detail: str


def _tls_material(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed, as Memorystore's per-instance CA does."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "redis.pem", folder / "redis.key", folder / "redis.csr"

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], capture_output=True, check=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "2", "-subj", "/CN=ion-rehearsal-redis-ca")  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=redis"
    )
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2")  # fmt: skip
    return ca, cert, key


class RehearsalStack:
    def __init__(self, var_file: Path, *, log_dir: Path) -> None:
        self.var_file = var_file
        self.log_dir = log_dir
        self.project = tfvars_value(var_file, "project_id")
        self.region = tfvars_value(var_file, "region") or "us-central1"
        if not self.project:
            raise RehearsalError(f"{var_file} sets no project_id")
        self.processes: list[ManagedProcess] = []
        self.redirects: dict[str, str] = {}
        self.secret_values: dict[str, str] = {}
        self.rendered: Rendered | None = None

    # --- the parts ------------------------------------------------------------------------

    def __enter__(self) -> RehearsalStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def _standin(self, name: str, module: str, *args: str) -> str:
        port = free_port()
        proc = ManagedProcess(
            name,
            [python(), "-m", module, "--port", str(port), *args],
            log_dir=self.log_dir,
            cwd=ROOT,
            env={"PYTHONUNBUFFERED": "1"},
        )
        self.processes.append(proc)
        wait_until_port(port, proc, 60)
        return f"http://127.0.0.1:{port}"

    def _start(self) -> None:
        from devtools.pubsub_setup import create_topics

        self.log_dir.mkdir(parents=True, exist_ok=True)
        fs_port, ps_port = free_port(), free_port()
        self.processes.extend(
            start_firestore_and_pubsub(fs_port, ps_port, self.project, log_dir=self.log_dir)
        )
        self.redirects["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{fs_port}"
        self.redirects["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{ps_port}"
        create_topics(topology(), self.project, f"127.0.0.1:{ps_port}")

        ca, cert, key = _tls_material(self.log_dir / "tls")
        redis_port, password = free_port(), random_secret(32)
        redis = ManagedProcess(
            "redis-tls",
            ["redis-server", "--port", "0", "--tls-port", str(redis_port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
             "--tls-auth-clients", "no", "--requirepass", password, "--save", "", "--appendonly", "no"],
            log_dir=self.log_dir,
        )  # fmt: skip
        self.processes.append(redis)
        wait_until_port(redis_port, redis, 20)

        self.rendered = render(
            self.var_file,
            resource_placeholders(self.project, self.region, "123456789012", ca.read_text()),
            self.log_dir / "terraform",
        )
        env = self.rendered.env
        scaling = env.get("adjust_scaling", {}).get("ION_SCALING_TARGETS", "")
        services = [
            entry.split("/locations/")[1].replace("/services/", "/") for entry in scaling.split(",") if entry
        ]
        serving_project = scaling.split("/")[1] if scaling else self.project
        table = env.get("snapshot_cost", {}).get("ION_COST_BILLING_TABLE", "")
        account = env.get("snapshot_cost", {}).get("ION_COST_BILLING_ACCOUNT", "")
        self.redirects.update(
            {
                "ION_SCALING_CLOUDRUN_ENDPOINT": self._standin(
                    "cloudrun-standin", "devtools.cloudrun_standin", "--project", serving_project,
                    *(f"--service={s}" for s in services),
                ),
                "ION_COST_BIGQUERY_ENDPOINT": self._standin(
                    "bigquery-standin", "devtools.bigquery_standin", "--table", table
                ),
                "ION_COST_RECOMMENDER_ENDPOINT": self._standin(
                    "recommender-standin", "devtools.recommender_standin", "--project", serving_project,
                    "--billing-account", account,
                ),
                "ION_FANOUT_TASKS_ENDPOINT": self._standin(
                    "cloudtasks-standin", "devtools.cloudtasks_standin", "--project", self.project,
                    "--location", self.region, "--queue", "fanout-timers",
                ),
            }
        )  # fmt: skip
        self.secret_values = made_up_secrets(
            f"rediss://:{password}@127.0.0.1:{redis_port}/0?ssl_cert_reqs=required&ssl_check_hostname=false"
        )

    # --- the functions --------------------------------------------------------------------

    def environment(self, function: str) -> dict[str, str]:
        """The process environment of ``function`` as deployed: Terraform's env, one value per
        secret, what Cloud Run sets, and the stand-in redirects."""
        assert self.rendered is not None
        if function not in self.rendered.env:
            raise RehearsalError(f"Terraform renders no function {function!r}")
        secrets = {}
        for variable, secret_id in self.rendered.secrets[function].items():
            if secret_id not in self.secret_values:
                raise RehearsalError(
                    f"{function} reads secret {secret_id!r}, which the rehearsal has no value for"
                )
            secrets[variable] = self.secret_values[secret_id]
        service = function.replace("_", "-")
        return {
            **{name: os.environ[name] for name in BASE_ENV if name in os.environ},
            **self.rendered.env[function],
            **secrets,
            "K_SERVICE": service,
            "K_REVISION": f"{service}-00001-rehearsal",
            "K_CONFIGURATION": service,
            "FUNCTION_TARGET": function,
            "FUNCTION_SIGNATURE_TYPE": "http",
            "PYTHONUNBUFFERED": "1",
            **self.redirects,
        }

    def start(self, function: str, env: dict[str, str]) -> tuple[ManagedProcess, int]:
        port = free_port()
        proc = ManagedProcess(
            f"fn-{function}",
            [python(), "-m", "functions_framework", "--target", function, "--source", "main.py",
             "--port", str(port), "--host", "127.0.0.1"],
            log_dir=self.log_dir,
            cwd=ROOT,
            env={**env, "PORT": str(port)},
            clear_env=True,
        )  # fmt: skip
        self.processes.append(proc)
        return proc, port

    def rehearse(self, functions: list[str], without: list[tuple[str, ...]] = ()) -> list[Outcome]:  # type: ignore[assignment]
        """Start each function (all at once) and wait for its verdict: healthy (``/health`` 200)
        or refused (exited, naming what it lacks). ``without`` pairs (function, variable) start that
        function without the variable: its expected verdict is a refusal naming it."""
        dropped = {pair[0]: pair[1] for pair in without}
        outcomes = []
        # A few at a time: fourteen interpreters importing at once on two cores would measure the
        # machine, not the functions; each function's deadline runs from its own start.
        wave = max(2, 2 * (os.cpu_count() or 1))
        for first in range(0, len(functions), wave):
            started = {}
            for function in functions[first : first + wave]:
                env = self.environment(function)
                if function in dropped:
                    env.pop(dropped[function], None)
                started[function] = (*self.start(function, env), time.monotonic() + START_TIMEOUT_SECONDS)
            for function, (proc, port, deadline) in started.items():
                outcome = _verdict(function, proc, port, deadline)
                if function in dropped:
                    named = dropped[function] in outcome.detail
                    outcome = Outcome(
                        function,
                        outcome.verdict == "refused" and named,
                        outcome.verdict,
                        f"without {dropped[function]}: {outcome.detail}",
                    )
                outcomes.append(outcome)
                proc.stop()
        return outcomes


def _verdict(function: str, proc: ManagedProcess, port: int, deadline: float) -> Outcome:
    url = f"http://127.0.0.1:{port}/health"
    unhealthy: Outcome | None = None
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            time.sleep(0.2)  # let the output pump take the last lines
            reason = next((line.strip() for line in reversed(proc.tail) if "cannot start" in line), "")
            if reason:
                return Outcome(function, False, "refused", reason)
            return Outcome(function, False, "exited", "".join(proc.tail[-5:]).strip())
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return Outcome(function, answer.status == 200, "healthy", f"/health {answer.status}")
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode("utf-8", "replace")
            outcome = Outcome(function, False, f"http {exc.code}", f"/health {exc.code}: {body}")
            if exc.code != 503:
                return outcome
            # Unhealthy for now (a dependency's probe timed out on a loaded machine): asked again
            # until the deadline, as Cloud Run's startup probe does; still 503 then is the verdict.
            unhealthy = outcome
            time.sleep(1.0)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    return unhealthy or Outcome(
        function, False, "timeout", f"no answer on /health within {START_TIMEOUT_SECONDS:.0f} s"
    )


if __name__ == "__main__":
    sys.exit("run python -m devtools.rehearse")
