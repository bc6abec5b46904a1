"""`make rehearse`: the deployment, rehearsed. Every function of topology.yaml is started alone as
Cloud Run starts it (functions-framework ``--target``, ``K_SERVICE``, ``FUNCTION_TARGET``,
``PORT``) with exactly the environment and secrets Terraform gives it, and must answer
``/health`` 200, or refuse to start naming each setting it lacks.

The environment is rendered by the terraform CLI itself, offline: terraform/modules/settings has
no resource and no provider, so it is applied in a scratch directory with the root module's
variables (terraform/variables.tf, validations included), the example variables file that the
README's Deploy section shows (terraform/examples/production.tfvars) and the root module's own
call of it (copied from terraform/main.tf). Only what Terraform cannot know before an apply is
filled in here (``RESOURCE_PLACEHOLDERS``: a queue id, an account email, the Redis CA), plus the
secrets' values and the stand-in redirects (``standin_redirects``): the emulators' hosts and the
local stand-ins of Google's APIs, variables a deployed function never has.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.topology import ROOT, topology

TERRAFORM = ROOT / "terraform"
EXAMPLE_VARS = TERRAFORM / "examples" / "production.tfvars"
LOG_DIR = Path(os.environ.get("ION_RUN_DIR", ROOT / ".run")) / "rehearsal"


class RehearsalError(RuntimeError):
    """The rehearsal could not be set up (not a function's failure)."""


# Values of resource attributes the root module passes to modules/settings, known only after an
# apply; shaped as Terraform would give them for `project` and `region`.
def resource_placeholders(project: str, region: str, number: str, redis_ca: str) -> dict[str, str]:
    return {
        "ION_FANOUT_TASKS_QUEUE": f"projects/{project}/locations/{region}/queues/fanout-timers",
        "ION_FANOUT_FLUSH_URL": f"https://manage-alerts-{number}.{region}.run.app/v1/flush/group",
        "ION_FANOUT_TASKS_SERVICE_ACCOUNT": f"ion-ops-fanout-tasks@{project}.iam.gserviceaccount.com",
        "REDIS_CA_CERT": redis_ca,
        "ION_ROLE_SCHEDULER": f"ion-ops-scheduler@{project}.iam.gserviceaccount.com",
        "ION_ROLE_TASKS": f"ion-ops-fanout-tasks@{project}.iam.gserviceaccount.com",
        "ION_ROLE_PUSH": f"ion-ops-push@{project}.iam.gserviceaccount.com",
        "ION_PROJECT_NUMBER": number,
    }


# Arguments of the root's `module "settings"` that are resource attributes, not variables.
ARGUMENT_PLACEHOLDERS = {"redis_url_secret": "redis-url", "resources": "local.resource_settings"}


@dataclass
class Rendered:
    env: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    variables: dict[str, object] = field(default_factory=dict)


def _module_block(main_tf: str, name: str) -> str:
    """The text of ``module "<name>" { ... }`` in main.tf (balanced braces)."""
    start = main_tf.find(f'module "{name}" {{')
    if start < 0:
        raise RehearsalError(f'terraform/main.tf has no module "{name}"')
    depth = 0
    for index in range(start, len(main_tf)):
        if main_tf[index] == "{":
            depth += 1
        elif main_tf[index] == "}":
            depth -= 1
            if depth == 0:
                return main_tf[start : index + 1]
    raise RehearsalError(f'module "{name}" in terraform/main.tf is not closed')


def settings_arguments() -> dict[str, str]:
    """The root's ``module "settings"`` arguments, name -> expression text."""
    block = _module_block((TERRAFORM / "main.tf").read_text(), "settings")
    found = {}
    for line in block.splitlines()[1:-1]:
        match = re.match(r"^\s*([a-z_]+)\s*=\s*(.+?)\s*$", line)
        if match:
            found[match[1]] = match[2]
    return found


def resource_setting_names() -> set[str]:
    """Keys of ``local.resource_settings`` in terraform/main.tf."""
    text = (TERRAFORM / "main.tf").read_text()
    start = text.index("resource_settings = {")
    body = text[start : text.index("\n  }", start)]
    return set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s*=", body, flags=re.M))


def wrapper_config(placeholders: dict[str, str]) -> str:
    """A root configuration calling modules/settings exactly as terraform/main.tf does, with
    resource attributes replaced by placeholders. Refuses an argument it does not know how to
    fill, so a new resource-derived setting cannot slip past the rehearsal."""
    lines = []
    for name, expression in settings_arguments().items():
        if name == "source":
            lines.append(f"  source = {json.dumps(str(TERRAFORM / 'modules' / 'settings'))}")
        elif expression.startswith(("var.", "local.functions")):
            lines.append(f"  {name} = {expression}")
        elif name in ARGUMENT_PLACEHOLDERS:
            value = ARGUMENT_PLACEHOLDERS[name]
            lines.append(f"  {name} = {value if value.startswith('local.') else json.dumps(value)}")
        else:
            raise RehearsalError(
                f'module "settings" argument {name} = {expression} is neither a variable nor a known '
                "resource attribute; add its placeholder to devtools/rehearse.py"
            )
    missing = resource_setting_names() - set(placeholders)
    if missing:
        raise RehearsalError(f"no rehearsal placeholder for resource settings {sorted(missing)}")
    resources = "\n".join(f"    {name} = {json.dumps(value)}" for name, value in sorted(placeholders.items()))
    root = (TERRAFORM / "main.tf").read_text()
    functions = re.search(r"^\s*functions\s*=\s*(.+)$", root, flags=re.M)
    if functions is None:
        raise RehearsalError("terraform/main.tf defines no local.functions")
    return (
        "locals {\n"
        f"  topology  = yamldecode(file({json.dumps(str(ROOT / 'topology.yaml'))}))\n"
        f"  functions = {functions[1]}\n"
        f"  resource_settings = {{\n{resources}\n  }}\n"
        "}\n\n"
        'module "settings" {\n' + "\n".join(lines) + "\n}\n\n"
        'output "env" {\n  value = module.settings.env\n}\n'
        'output "secrets" {\n  value = module.settings.secrets\n}\n'
    )


def _terraform(args: list[str], cwd: Path) -> str:
    binary = shutil.which("terraform")
    if binary is None:
        raise RehearsalError("the terraform CLI is needed to render the deployed settings (terraform 1.6+)")
    env = {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": "/dev/null",
    }
    result = subprocess.run(
        [binary, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise RehearsalError(f"terraform {args[0]} failed:\n{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def render(var_file: Path, placeholders: dict[str, str], workdir: Path | None = None) -> Rendered:
    """What Terraform gives each function, for the variables in ``var_file``."""
    scratch = Path(workdir or tempfile.mkdtemp(prefix="ion-rehearsal-tf-"))
    scratch.mkdir(parents=True, exist_ok=True)
    # The root's variables with their validations; paths relative to terraform/ made absolute.
    variables = (TERRAFORM / "variables.tf").read_text().replace("${path.module}/../", f"{ROOT}/")
    (scratch / "variables.tf").write_text(variables)
    (scratch / "main.tf").write_text(wrapper_config(placeholders))
    _terraform(["init", "-input=false", "-no-color"], scratch)
    _terraform(
        ["apply", "-auto-approve", "-input=false", "-no-color", f"-var-file={var_file.resolve()}"], scratch
    )
    outputs = json.loads(_terraform(["output", "-json"], scratch))
    return Rendered(env=outputs["env"]["value"], secrets=outputs["secrets"]["value"])


def tfvars_value(var_file: Path, name: str) -> str:
    """A top-level string variable of a .tfvars file (project_id, region)."""
    match = re.search(rf'^{name}\s*=\s*"([^"]*)"', var_file.read_text(), flags=re.M)
    return match[1] if match else ""


def main(argv: list[str] | None = None) -> int:
    from devtools.rehearsal_stack import RehearsalStack

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--var-file", type=Path, default=EXAMPLE_VARS, help="Terraform variables (.tfvars)")
    parser.add_argument("--only", action="append", default=[], help="rehearse only these entry points")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="FUNCTION:VARIABLE",
        help="start FUNCTION without VARIABLE (it must refuse to start naming it)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    functions = args.only or sorted(topology().functions)
    with RehearsalStack(args.var_file, log_dir=LOG_DIR) as stack:
        results = stack.rehearse(functions, without=[tuple(w.split(":", 1)) for w in args.without])
    width = max(len(r.function) for r in results)
    for result in results:
        sys.stdout.write(f"{result.function:<{width}}  {result.verdict:<8}  {result.detail}\n")
    failed = [r for r in results if not r.ok]
    sys.stdout.write(
        f"rehearsal: {len(results) - len(failed)} of {len(results)} as expected "
        f"in {time.monotonic() - started:.0f} s; logs in {LOG_DIR}\n"
    )
    return 1 if failed else 0


def random_secret(length: int = 40) -> str:
    return secrets.token_urlsafe(length)[:length]


def made_up_secrets(redis_url: str) -> dict[str, str]:
    """A value of the right shape for every Secret Manager secret Terraform maps into a function
    (the rehearsal's stack and the cold-start bench start functions as deployed with these)."""
    return {
        "ion-api-keys": ",".join(random_secret(40) for _ in range(2)),
        "request-id-secret": random_secret(64),
        "customer-key-secret": random_secret(64),
        "slack-bot-token": "xoxb-" + random_secret(40),
        "pagerduty-routing-key": random_secret(32),
        "smtp-password": random_secret(24),
        "slack-signing-secret": random_secret(32),
        "pagerduty-webhook-secret": random_secret(32),
        "redis-url": redis_url,
    }


if __name__ == "__main__":
    raise SystemExit(main())
