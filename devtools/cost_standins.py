"""The cost capability's two stand-ins for ``make run``: BigQuery (a generated billing export) and
the Recommender, as child processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOCAL_TABLE = "{project}.billing.gcp_billing_export_v1_LOCAL"


def start_cost_standins(
    bigquery_port: int, recommender_port: int, project: str, *, log_dir: Path, echo: Any = None
) -> tuple[list[Any], dict[str, str]]:
    """For `make run`: this stand-in serving a generated export of the last 62 days and the
    Recommender stand-in, as child processes, and the environment pointing the cost function at
    them."""
    from devtools.processes import ManagedProcess, python, wait_until_port
    from shared.topology import ROOT

    table = LOCAL_TABLE.format(project=project)
    commands = {
        "bigquery": (bigquery_port, ["devtools.bigquery_standin", "--table", table]),
        "recommender": (recommender_port, ["devtools.recommender_standin", "--project", project]),
    }
    procs = []
    for name, (port, args) in commands.items():
        proc = ManagedProcess(
            name,
            [python(), "-m", *args, "--port", str(port)],
            log_dir=log_dir,
            echo=echo,
            cwd=ROOT,
            env={"PYTHONUNBUFFERED": "1"},
        )
        procs.append(proc)
        wait_until_port(port, proc, 60)
    from devtools.billing_export import ION_PROJECTS

    env = {
        "ION_COST_BILLING_TABLE": table,
        # The generated export has another team's project too: ION's are these.
        "ION_COST_PROJECTS": ",".join(ION_PROJECTS),
        "ION_COST_BIGQUERY_ENDPOINT": f"http://127.0.0.1:{bigquery_port}",
        "ION_COST_RECOMMENDER_ENDPOINT": f"http://127.0.0.1:{recommender_port}",
    }
    return procs, env
