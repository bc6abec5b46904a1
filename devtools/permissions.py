"""Every permission proved from the calls each function makes.

The emulators and stand-ins ignore IAM, so no test sees a missing grant. This check does what
GCP's IAM Recommender does from production logs, before the first deploy:

1. **Calls** recorded by ``shared/api_calls.py`` (the test session's, under ``.run/api-calls``;
   the deployment rehearsal's wherever ``ION_RECORD_API_CALLS`` points) become **needs**: each
   method's permissions (``terraform/iam/method_permissions.yaml``) on the deployed resource (a
   resource built from a setting takes the deployed value Terraform gives that setting; the
   recorded project becomes ``PROJECT``).
2. **Grants** are read from the Terraform HCL (``devtools/hcl_eval.py`` evaluates it, modules and
   ``for_each`` included) and ``topology.yaml``: every ``*_iam_member``/``*_iam_binding`` whose
   member is a function's service account, scoped to what it binds (project, a database through
   an IAM condition, topic, queue, service account, Cloud Run service, dataset, table, secret);
   predefined roles' permissions from ``terraform/iam/role_permissions.yaml``, custom roles' from
   ``terraform/iam.tf``. A binding type or condition the check cannot scope fails it.
3. A need no grant of its function allows is a **gap**. A grant no need uses (and a custom role's
   permission no need uses) is **unused**, unless ``terraform/iam/justifications.yaml`` says why.

The needs proved by a full test run are checked in (``terraform/iam/needs.yaml``): the README's
table and the unused-grant check read them; a session that records a need not listed there says
so (``python -m devtools.permissions update`` adds it), and fails only on a gap.

    python -m devtools.permissions check [--calls DIR]   # the recorded calls against the grants
    python -m devtools.permissions update [--calls DIR]  # take their needs into needs.yaml
    python -m devtools.permissions table                 # README's "Grants and the calls that need them"
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from devtools.hcl_eval import EvalError, Instance, Module, is_unknown, load_root, load_tfvars
from shared.api_calls import ApiCall, read_calls, setting_forms
from shared.api_methods import service_account_resource

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
IAM = TERRAFORM / "iam"
CALLS_DIR = ROOT / ".run" / "api-calls"  # the test sessions' (one folder per session)
# The symbolic project the needs and grants are written for: every project id gives the same proof.
PROJECT = "PROJECT"


# --- the checked-in tables -----------------------------------------------------------------------


class MethodEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    permissions: list[str] | None = None
    by_detail: dict[str, list[str]] = Field(default_factory=dict)
    by_recommender: dict[str, list[str]] = Field(default_factory=dict)


class MethodTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: dict[str, str]
    methods: dict[str, MethodEntry]


class RoleTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    copied: str
    roles: dict[str, list[str]]


class Justification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    function: str
    role: str
    scope: str | None = None  # the grant's scope (PROJECT for the project id); any when absent
    why: str


class LocalDefault(BaseModel):
    """Calls a function makes when a setting that Terraform sets is unset (its local default)."""

    model_config = ConfigDict(extra="forbid")
    function: str
    setting: str
    methods: list[str]
    # The records it covers, as resource names where * stands for one path segment.
    resources: list[str] = Field(default_factory=lambda: ["**"])
    why: str

    def covers(self, call: ApiCall) -> bool:
        return (
            call.function == self.function
            and self.setting not in call.settings
            and call.method in self.methods
            and any(_segments_match(pattern, call.resource) for pattern in self.resources)
        )


def _segments_match(pattern: str, resource: str) -> bool:
    if pattern == "**":
        return True
    parts, names = pattern.split("/"), resource.split("/")
    return len(parts) == len(names) and all(p in ("*", n) for p, n in zip(parts, names, strict=True))


class Justifications(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unused_grants: list[Justification] = Field(default_factory=list)
    local_defaults: list[LocalDefault] = Field(default_factory=list)
    unused_custom_role_permissions: dict[str, dict[str, str]] = Field(default_factory=dict)


class NeedEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    permission: str
    resource: str
    because: str  # method[detail]


@cache
def method_table() -> MethodTable:
    return MethodTable.model_validate(yaml.safe_load((IAM / "method_permissions.yaml").read_text()))


@cache
def role_table() -> RoleTable:
    return RoleTable.model_validate(yaml.safe_load((IAM / "role_permissions.yaml").read_text()))


def justifications(path: Path | None = None) -> Justifications:
    path = path or IAM / "justifications.yaml"
    return Justifications.model_validate(yaml.safe_load(path.read_text()) or {})


def example_variables(terraform: Path = TERRAFORM) -> dict[str, Any]:
    """The deployment's example variables (``examples/production.tfvars``, which the README's
    Deploy section and the rehearsal use): the check proves the grants for that shape of values."""
    return load_tfvars(terraform / "examples" / "production.tfvars")


# --- needs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Need:
    function: str
    permission: str
    resource: str
    because: str


@dataclass
class Needs:
    needs: set[Need] = field(default_factory=set)
    # Calls not checked, with why: made only locally, or built from a setting Terraform never sets.
    skipped: list[tuple[ApiCall, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def permissions_of(call: ApiCall) -> list[str]:
    """The permissions a call needs on its resource (raises KeyError naming what is missing)."""
    entry = method_table().methods.get(call.method)
    if entry is None:
        raise KeyError(f"method {call.method} is not in terraform/iam/method_permissions.yaml")
    if entry.by_recommender:
        recommender = call.resource.rsplit("/", 1)[-1]
        if recommender not in entry.by_recommender:
            raise KeyError(f"{call.method}: recommender {recommender} is not in method_permissions.yaml")
        return entry.by_recommender[recommender]
    if call.detail:
        if call.detail not in entry.by_detail:
            raise KeyError(f"{call.method}: detail {call.detail!r} is not in method_permissions.yaml")
        return entry.by_detail[call.detail]
    if entry.permissions is None:
        raise KeyError(f"{call.method} needs a detail (one of {sorted(entry.by_detail)})")
    return entry.permissions


def to_deployed(resource: str, recorded_project: str) -> str:
    """A recorded resource in the deployed project's terms."""
    resource = resource.replace(f"projects/{recorded_project}/", f"projects/{PROJECT}/")
    if resource == f"projects/{recorded_project}":
        resource = f"projects/{PROJECT}"
    return resource.replace(
        f"@{recorded_project}.iam.gserviceaccount.com", f"@{PROJECT}.iam.gserviceaccount.com"
    )


def needs_of(
    calls: Iterable[ApiCall], deployment: Deployment, recorded_project: str, why: Justifications | None = None
) -> Needs:
    """The needs of ``calls`` on deployed resources; ``recorded_project`` is the project of calls
    recorded without one."""
    out = Needs()
    local_defaults = (why or justifications()).local_defaults
    for call in calls:
        if call.function not in deployment.functions:
            out.skipped.append((call, "not a function Terraform deploys (a test's own)"))
            continue
        if call.local_only:
            out.skipped.append((call, f"local only: {call.local_only}"))
            continue
        default = next((d for d in local_defaults if d.covers(call)), None)
        if default is not None and deployment.setting(call.function, default.setting) is not None:
            out.skipped.append(
                (call, f"made with {default.setting} unset, which Terraform sets: {default.why}")
            )
            continue
        project = call.project or recorded_project
        resource = call.resource
        if call.method == "google.longrunning.Operations/GetOperation":
            resource = resource.rsplit("/", 1)[0] + "/*"  # as the recorder writes it: the id is new each time
        unrelated = False
        for setting, test_value in sorted(call.settings.items()):
            deployed_value = deployment.setting(call.function, setting)
            if deployed_value is None:
                out.skipped.append((call, f"{setting} is a test's own value; Terraform does not set it"))
                unrelated = True
                break
            replaced = _substitute(resource, test_value, deployed_value)
            if replaced is None:
                out.skipped.append((call, f"{setting}: the test's value has no counterpart deployed"))
                unrelated = True
                break
            resource = replaced
        if unrelated:
            continue
        if call.detail == "runtime-account":
            # Updating a service acts as its runtime account: the one Terraform says it runs as.
            account = deployment.runtime_account(to_deployed(resource, project))
            if account is None:
                out.errors.append(f"{call.function}: Terraform does not say which account {resource} runs as")
                continue
            resource = account
        resource = to_deployed(resource, project)
        try:
            permissions = permissions_of(call)
        except KeyError as exc:
            out.errors.append(f"{call.function}: {exc.args[0]}")
            continue
        because = call.method.rsplit("/", 1)[-1] + (f"[{call.detail}]" if call.detail else "")
        for permission in permissions:
            out.needs.add(Need(call.function, permission, resource, because))
    return out


def runtime_needs(deployment: Deployment) -> set[Need]:
    """What the platform does as each function's identity, read from the deployment rather than
    recorded: Cloud Run reads each secret environment variable's secret at instance start."""
    return {
        Need(function, "secretmanager.versions.access", secret, f"runtime: secret env {env}")
        for function, secrets in deployment.secrets().items()
        for env, secret in secrets.items()
    }


def _substitute(resource: str, test_value: str, deployed_value: str) -> str | None:
    """``resource`` with the part built from a setting's test value replaced by its deployed
    value; unchanged when no form of the test value is in it (another setting's substitution
    came first); None when one is but has no deployed counterpart. A comma-separated list pairs
    items by position when both lists have the same length."""

    def within(form: str) -> bool:
        return resource == form or resource.startswith(form + "/")

    tests, deployed = test_value.split(","), deployed_value.split(",")
    if not any(within(form) for item in tests for form in setting_forms(item)):
        return resource
    pairs = list(zip(tests, deployed, strict=True)) if len(tests) == len(deployed) else []
    for test_item, deployed_item in pairs:
        for test_form, deployed_form in zip(
            setting_forms(test_item), setting_forms(deployed_item), strict=False
        ):
            if within(test_form):
                return deployed_form + resource[len(test_form) :]
    return None


# --- grants --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    function: str
    role: str
    scope: str
    permissions: frozenset[str]
    origin: str  # the Terraform address of the binding


def covers(scope: str, resource: str) -> bool:
    """A binding on ``scope`` applies to ``resource`` at or below it (project > database, topic...)."""
    return resource == scope or resource.startswith(scope + "/")


_CONDITION = re.compile(r'^\s*resource\.name\s*==\s*"([^"]+)"\s*$')


class Deployment:
    """What Terraform deploys, for one project id: each function's identity, grants, settings."""

    def __init__(self, terraform: Path = TERRAFORM, variables: dict[str, Any] | None = None) -> None:
        values = {**example_variables(terraform), **(variables or {}), "project_id": PROJECT}
        self.root = load_root(terraform, values)
        self.functions: dict[str, Module] = {}
        for module in self.root.modules():
            try:
                entry_point = module.var("entry_point")
            except EvalError:
                continue  # a module that is no function
            self.functions[entry_point] = module
        self.emails = {module.output("service_account"): name for name, module in self.functions.items()}
        self.errors: list[str] = []

    def setting(self, function: str, name: str) -> str | None:
        module = self.functions.get(function)
        if module is None:
            return None
        try:
            env = module.var("env")
        except EvalError as exc:
            self.errors.append(f"{function}: its environment cannot be evaluated: {exc}")
            return None
        value = env.get(name) if isinstance(env, dict) else None
        if value is None or is_unknown(value):
            return None
        return str(value)

    def runtime_account(self, service: str) -> str | None:
        """The service account a Cloud Run service we scale runs as (``var.scaling_targets``; the
        services are not deployed here, so the variable is where Terraform knows it)."""
        try:
            targets = self.root.var("scaling_targets")
        except EvalError:
            return None
        for target in targets or []:
            name = f"projects/{target['project']}/locations/{target['region']}/services/{target['service']}"
            if name == service:
                return f"projects/{target['project']}/serviceAccounts/{target['service_account']}"
        return None

    def secrets(self) -> dict[str, dict[str, str]]:
        """Each function's secret environment: the runtime reads them as the function's identity."""
        out: dict[str, dict[str, str]] = {}
        for name, module in self.functions.items():
            secrets = module.var("secrets") or {}
            out[name] = {env: f"projects/{PROJECT}/secrets/{secret}" for env, secret in secrets.items()}
        return out

    def custom_roles(self) -> dict[str, frozenset[str]]:
        roles = {}
        for instance in self._instances(lambda kind: kind == "google_project_iam_custom_role"):
            roles[instance.get("id")] = frozenset(instance.attribute("permissions") or [])
        return roles

    def _instances(self, kinds: Any) -> Iterable[Instance]:
        yield from self.root.resources(kinds)
        for module in self.root.modules():
            yield from module.resources(kinds)

    def grants(self) -> dict[str, list[Grant]]:
        custom = self.custom_roles()
        predefined = role_table().roles
        out: dict[str, list[Grant]] = defaultdict(list)
        for instance in self._instances(lambda kind: kind.endswith(("_iam_member", "_iam_binding"))):
            members = instance.attribute("members") or [instance.attribute("member")]
            functions = [self.emails.get(str(m).removeprefix("serviceAccount:")) for m in members if m]
            functions = [f for f in functions if f]
            if not functions:
                continue
            role = instance.attribute("role")
            if role in custom:
                permissions = custom[role]
            elif role in predefined:
                permissions = frozenset(predefined[role])
            else:
                self.errors.append(
                    f"{instance.address}: role {role} is not in terraform/iam/role_permissions.yaml"
                )
                continue
            try:
                scope = self.scope(instance)
            except EvalError as exc:
                self.errors.append(f"{instance.address}: {exc}")
                continue
            for function in functions:
                out[function].append(Grant(function, str(role), scope, permissions, instance.address))
        return dict(out)

    def scope(self, binding: Instance) -> str:
        kind = binding.type
        a = binding.attribute
        project = a("project") or PROJECT
        if kind in ("google_project_iam_member", "google_project_iam_binding"):
            conditions = binding.nested("condition")
            if not conditions:
                return f"projects/{project}"
            match = _CONDITION.match(str(conditions[0].get("expression", "")))
            if match is None:
                raise EvalError(
                    f"condition {conditions[0].get('expression')!r} cannot be scoped by the check"
                )
            return match.group(1)
        if kind == "google_pubsub_topic_iam_member":
            return _full(a("topic"), f"projects/{project}/topics/")
        if kind == "google_pubsub_subscription_iam_member":
            return _full(a("subscription"), f"projects/{project}/subscriptions/")
        if kind == "google_cloud_tasks_queue_iam_member":
            return _full(a("name"), f"projects/{project}/locations/{a('location')}/queues/")
        if kind == "google_service_account_iam_member":
            account = _known(a("service_account_id"), "service_account_id")
            return account if account.startswith("projects/") else service_account_resource(account)
        if kind == "google_cloud_run_v2_service_iam_member":
            return _full(a("name"), f"projects/{project}/locations/{a('location')}/services/")
        if kind == "google_cloud_run_service_iam_member":
            return _full(a("service"), f"projects/{project}/locations/{a('location')}/services/")
        if kind == "google_bigquery_dataset_iam_member":
            return _full(a("dataset_id"), f"projects/{project}/datasets/")
        if kind == "google_bigquery_table_iam_member":
            dataset = _known(a("dataset_id"), "dataset_id").rsplit("/", 1)[-1]
            return _full(a("table_id"), f"projects/{project}/datasets/{dataset}/tables/")
        if kind == "google_secret_manager_secret_iam_member":
            return _full(a("secret_id"), f"projects/{project}/secrets/")
        if kind == "google_billing_account_iam_member":
            return f"billingAccounts/{_known(a('billing_account_id'), 'billing_account_id')}"
        raise EvalError(f"the check cannot scope a {kind} (add it to devtools/permissions.py)")


def _known(value: Any, what: str) -> str:
    if value is None or is_unknown(value):
        raise EvalError(f"{what} is {value}: the check cannot tell what it binds")
    return str(value)


def _full(value: Any, prefix: str) -> str:
    text = _known(value, prefix.rsplit("/", 2)[-2])
    return text if text.startswith(("projects/", "billingAccounts/")) else prefix + text


# --- the check -----------------------------------------------------------------------------------


@dataclass
class Report:
    gaps: list[str] = field(default_factory=list)  # a need no grant allows
    unused: list[str] = field(default_factory=list)  # a grant (or custom role permission) no need uses
    errors: list[str] = field(default_factory=list)  # what the check cannot read
    stale_justifications: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return self.errors + self.gaps + self.unused + self.stale_justifications


def gaps(needs: Iterable[Need], grants: dict[str, list[Grant]]) -> list[str]:
    out = []
    for need in sorted(needs, key=lambda n: (n.function, n.resource, n.permission)):
        if not any(
            need.permission in g.permissions and covers(g.scope, need.resource)
            for g in grants.get(need.function, [])
        ):
            out.append(
                f"{need.function}: {need.because} on {need.resource} needs {need.permission}, "
                f"which no grant of {need.function} gives on that resource"
            )
    return out


def unused(
    needs: Iterable[Need],
    grants: dict[str, list[Grant]],
    custom: dict[str, frozenset[str]],
    why: Justifications,
) -> tuple[list[str], list[str]]:
    needs = list(needs)
    out: list[str] = []
    used_justifications: set[int] = set()
    used_custom: dict[str, set[str]] = defaultdict(set)
    for function, function_grants in sorted(grants.items()):
        for grant in function_grants:
            used = {
                n.permission
                for n in needs
                if n.function == function
                and n.permission in grant.permissions
                and covers(grant.scope, n.resource)
            }
            if grant.role in custom:
                used_custom[grant.role] |= used
            if used:
                continue
            match = next(
                (
                    i
                    for i, j in enumerate(why.unused_grants)
                    if j.function == function
                    and j.role == grant.role
                    and (j.scope is None or j.scope == grant.scope)
                ),
                None,
            )
            if match is not None:
                used_justifications.add(match)
                continue
            out.append(
                f"{function}: {grant.role} on {grant.scope} ({grant.origin}) is used by no recorded call; "
                "remove it or say why in terraform/iam/justifications.yaml"
            )
    for role, permissions in sorted(custom.items()):
        justified = why.unused_custom_role_permissions.get(role, {})
        for permission in sorted(permissions - used_custom.get(role, set()) - set(justified)):
            out.append(
                f"custom role {role}: {permission} is needed by no recorded call of a function holding it"
            )
    stale = [
        f"justification of {j.function} {j.role} on {j.scope or 'any scope'} matches no unused grant: "
        "remove it"
        for i, j in enumerate(why.unused_grants)
        if i not in used_justifications
    ]
    return out, stale


def check(
    needs: Iterable[Need], deployment: Deployment | None = None, why: Justifications | None = None
) -> Report:
    deployment = deployment or Deployment()
    needs = set(needs) | runtime_needs(deployment)
    grants = deployment.grants()
    report = Report(errors=list(deployment.errors))
    report.gaps = gaps(needs, grants)
    report.unused, report.stale_justifications = unused(
        needs, grants, deployment.custom_roles(), why or justifications()
    )
    return report


# --- the checked-in needs ------------------------------------------------------------------------


def load_needs(path: Path | None = None) -> set[Need]:
    raw = yaml.safe_load((path or IAM / "needs.yaml").read_text()) or {}
    return {
        Need(function, e.permission, e.resource, e.because)
        for function, entries in (raw.get("needs") or {}).items()
        for e in (NeedEntry.model_validate(x) for x in entries)
    }


def dump_needs(needs: Iterable[Need]) -> str:
    by_function: dict[str, list[dict[str, str]]] = defaultdict(list)
    for need in sorted(needs, key=lambda n: (n.function, n.permission, n.resource, n.because)):
        by_function[need.function].append(
            {"permission": need.permission, "resource": need.resource, "because": need.because}
        )
    header = (
        "# Generated by `python -m devtools.permissions update` from the calls a full test session\n"
        "# recorded (shared/api_calls.py): each function's permission needs on deployed resources\n"
        "# (PROJECT: the project id), with the call that needs it. Read by the unused-grant check and\n"
        "# README's grants table; a session recording a need not listed here fails until updated.\n"
    )
    return header + yaml.safe_dump({"needs": dict(by_function)}, sort_keys=False, width=200)


def _minimal(needs: set[Need]) -> set[tuple[str, str, str]]:
    return {(n.function, n.permission, n.resource) for n in needs}


def new_needs(recorded: set[Need], listed: set[Need]) -> list[Need]:
    """Recorded needs whose (function, permission, resource) needs.yaml does not list."""
    known = _minimal(listed)
    return sorted(
        (n for n in recorded if (n.function, n.permission, n.resource) not in known),
        key=lambda n: (n.function, n.permission, n.resource),
    )


# --- the README table ----------------------------------------------------------------------------

TABLE_START = "<!-- grants-table:start (generated by `python -m devtools.permissions table`) -->"
TABLE_END = "<!-- grants-table:end -->"


def _short(resource: str) -> str:
    resource = resource.replace(f"projects/{PROJECT}/", "").replace(f"projects/{PROJECT}", "project")
    return resource.replace(f"@{PROJECT}.iam.gserviceaccount.com", "")


def grants_table(needs: set[Need] | None = None, deployment: Deployment | None = None) -> str:
    deployment = deployment or Deployment()
    needs = (load_needs() if needs is None else needs) | runtime_needs(deployment)
    why = justifications()
    rows = ["| function | role | on | permissions used | by the calls |", "|---|---|---|---|---|"]
    for function, function_grants in sorted(deployment.grants().items()):
        for grant in sorted(function_grants, key=lambda g: (g.role, g.scope)):
            used = sorted(
                n
                for n in needs
                if n.function == function
                and n.permission in grant.permissions
                and covers(grant.scope, n.resource)
            )
            permissions = sorted({n.permission for n in used})
            calls = sorted({n.because for n in used})
            if not used:
                reason = next(
                    (j.why for j in why.unused_grants if j.function == function and j.role == grant.role), ""
                )
                calls = [f"none recorded: {reason}" if reason else "none recorded"]
            rows.append(
                f"| `{function}` | `{grant.role.rsplit('/', 1)[-1]}` | `{_short(grant.scope)}` | "
                f"{', '.join(f'`{p}`' for p in permissions) or '-'} | {', '.join(calls)} |"
            )
    return "\n".join([TABLE_START, *rows, TABLE_END])


def readme_table(readme: str) -> str | None:
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < 0:
        return None
    return readme[start : end + len(TABLE_END)]


# --- the session's check -------------------------------------------------------------------------


def check_session(
    calls_dir: Path = CALLS_DIR, recorded_project: str | None = None
) -> tuple[list[str], list[str]]:
    """(failures, notes) of a test session's recording. Failures: a call no grant allows, a
    method or detail the table lacks, a binding the check cannot read. Notes (no failure, as a
    rarely taken path must not make runs flaky): needs not yet in needs.yaml."""
    calls = read_calls(calls_dir)
    if not calls:
        return [], []
    project = recorded_project or os.environ.get("GOOGLE_CLOUD_PROJECT", "ion-ops-test")
    deployment = Deployment()
    found = needs_of(calls, deployment, project)
    grants = deployment.grants()  # before reading deployment.errors, which it fills
    failures = deployment.errors + found.errors + gaps(found.needs | runtime_needs(deployment), grants)
    notes = [
        f"{need.function}: {need.because} needs {need.permission} on {need.resource}, not yet in "
        "terraform/iam/needs.yaml (`python -m devtools.permissions update` after a full `make test`)"
        for need in new_needs(found.needs, load_needs())
    ]
    return failures, notes


def _latest(path: Path) -> Path:
    """The folder of the test sessions' calls means its latest session's."""
    if path == CALLS_DIR and path.is_dir():
        sessions = sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        if sessions:
            return sessions[-1]
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["check", "update", "table"])
    parser.add_argument(
        "--calls", type=Path, default=CALLS_DIR, help="recorded calls: a folder or .jsonl file"
    )
    parser.add_argument("--project", default=None, help="the project the calls were recorded in")
    parser.add_argument("--prune", action="store_true", help="update: drop needs this recording lacks")
    args = parser.parse_args(argv)
    if args.command == "table":
        print(grants_table())
        return 0
    calls = read_calls(_latest(args.calls))
    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT", "ion-ops-test")
    deployment = Deployment()
    found = needs_of(calls, deployment, project)
    if args.command == "update":
        needs = found.needs if args.prune else found.needs | load_needs()
        (IAM / "needs.yaml").write_text(dump_needs(needs))
        print(f"{len(calls)} distinct calls -> {len(needs)} needs written to terraform/iam/needs.yaml")
        return 0
    grants = deployment.grants()  # before reading deployment.errors, which it fills
    failures = deployment.errors + found.errors + gaps(found.needs | runtime_needs(deployment), grants)
    print(
        f"{len(calls)} distinct calls recorded, {len(found.needs)} needs, "
        f"{len(found.skipped)} calls not checked"
    )
    for call, why in found.skipped:
        print(f"  not checked: {call.function} {call.method} {call.resource}: {why}")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
