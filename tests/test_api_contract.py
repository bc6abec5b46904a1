"""The API contract: every HTTP function serves ``GET /openapi.json`` (OpenAPI 3.1, built from the
pydantic models its routes validate with), the document is valid OpenAPI, and the function keeps
it: schemathesis generates requests from the document and sends them to the capability served by
functions-framework over HTTP on the emulators, as deployed.

Checks on every answer: ``not_a_server_error``, ``status_code_conformance``,
``content_type_conformance``, ``response_schema_conformance`` and ``response_headers_conformance``,
except where ``tests/contract-allowlist.yaml`` names a check on an operation with its reason. And
as in ``tests/test_fuzz_http.py``: a refused request (4xx) leaves the Firestore emulator exactly as
it was. Stateful runs follow the document's links (create, then get, list or delete what was
created) where a capability has them.

Bounded: a fixed seed (derandomized), a fixed number of examples per operation (fewer for the
scheduled jobs, which do a whole run per request), no example database.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from shared.topology import topology
from tests.test_fuzz_http import _documents

pytestmark = pytest.mark.emulators

# ION_CONTRACT_EXAMPLES raises both for a longer, exploratory run (not part of make test).
EXAMPLES_PER_OPERATION = int(os.environ.get("ION_CONTRACT_EXAMPLES", "8"))
# Scheduled jobs: each request is a whole run (every rule, every customer, a report).
EXAMPLES_PER_JOB = max(3, EXAMPLES_PER_OPERATION // 4)
STATEFUL_EXAMPLES = 6
STATEFUL_STEPS = 6
ALLOWLIST = Path(__file__).parent / "contract-allowlist.yaml"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
HTTP_CAPABILITIES = sorted(
    cap
    for cap in topology().capabilities
    if any(fn.trigger == "http" for fn in topology().functions_of(cap).values())
)
# A 4xx after which stored documents may differ, by design and documented: the import of events
# stores the new ones and refuses (409) those that conflict with what was imported before.
PARTIAL_4XX = {("health", "POST", "/v1/customers/{customer_id}/events", 409)}


# Conditions an allow-list entry may be narrowed to (``when``), on the generated case.
CONDITIONS: dict[str, Callable[[Any], bool]] = {
    # schemathesis keeps path variables percent-encoded
    "newline_in_path": lambda case: any(
        "\n" in unquote(str(v)) for v in (case.path_parameters or {}).values()
    ),
}


def _allowlist() -> list[dict[str, str]]:
    return list(yaml.safe_load(ALLOWLIST.read_text())["entries"] or [])


def _checks() -> dict[str, Callable[..., Any]]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks

    return {
        "not_a_server_error": not_a_server_error,
        **{name: getattr(checks, name) for name in CHECKS if name != "not_a_server_error"},
    }


def _api(capability: str) -> Any:
    return importlib.import_module(f"functions.{capability}.main").api


@pytest.mark.parametrize("capability", HTTP_CAPABILITIES)
def test_the_document_is_valid_openapi_and_covers_every_route(capability: str) -> None:
    from openapi_spec_validator import validate

    from shared.openapi import openapi_path

    api = _api(capability)
    document = api.openapi()
    validate(document)
    assert document["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routed = {(openapi_path(rule)[0], m) for rule, methods in api.routes() for m in methods}
    assert documented == routed
    for path, item in document["paths"].items():
        for method, operation in item.items():
            problems = {s for s in operation["responses"] if s[0] in "45"}
            assert "500" in problems, (method, path)
            assert "application/problem+json" in operation["responses"]["500"]["content"]
            for status in problems:  # a problem, or an answer the route declares (a 503 health report)
                assert operation["responses"][status]["content"], (method, path, status)
            if "parameters" in operation or "requestBody" in operation:
                assert {"400", "404", "422"} & problems, (method, path)  # bad input is documented


def test_the_allowlist_names_real_checks_and_operations() -> None:
    for entry in _allowlist():
        assert {"capability", "method", "path", "check", "reason"} <= set(entry), entry
        assert set(entry) <= {"capability", "method", "path", "check", "reason", "when"}, entry
        assert entry["check"] in CHECKS, entry
        assert entry.get("when", "newline_in_path") in CONDITIONS, entry
        assert entry["reason"].strip(), entry
        if "*" not in (entry["capability"], entry["path"], entry["method"]):
            paths = _api(entry["capability"]).openapi()["paths"]
            assert entry["method"].lower() in paths.get(entry["path"], {}), entry


def _environment(capability: str, tmp_path: Path) -> dict[str, str]:
    env = {"ION_REPORTS_OUTBOX": str(tmp_path / "outbox"), "ION_FANOUT_OUTBOX": str(tmp_path / "outbox")}
    if capability == "cost":  # a local billing export (labelled a fallback), so snapshots can run
        from datetime import UTC, datetime, timedelta

        from devtools.billing_export import generate, write_jsonl

        today = datetime.now(UTC).date()
        rows = generate(today - timedelta(days=10), today, hours=2).rows
        env["ION_COST_BILLING_FILE"] = str(write_jsonl(rows, tmp_path / "billing.jsonl"))
    return env


def _register_protobuf() -> None:
    """OTLP's protobuf body: schemathesis generates it as text (the schema says a string); sent
    as its bytes, which ingestion answers 400 (not a protobuf message) as it must."""
    import schemathesis

    @schemathesis.serializer("application/x-protobuf")
    def _protobuf(_ctx: Any, value: Any) -> bytes:
        return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


class Contract:
    """One served capability: its document, checks per operation and the refusal invariant."""

    def __init__(self, capability: str, url: str, fs: Any) -> None:
        import schemathesis

        self.capability = capability
        self.url = url
        self.fs = fs
        # Positive generation (what the document allows), in the stateful runs too: a value the
        # document forbids is the fuzz's (tests/test_fuzz_http.py) to send.
        mode = os.environ.get("ION_CONTRACT_GENERATION", "positive")  # "all" adds invalid inputs
        config = schemathesis.Config.from_dict({"generation": {"mode": mode}})
        self.schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config, timeout=30)
        self.session = requests.Session()
        self.statuses: dict[str, dict[int, int]] = {}
        every = _checks()
        self.allowed = [e for e in _allowlist() if e["capability"] in (capability, "*")]
        self.checks = every
        self.known: list[dict[str, Any]] = []

    def checks_for(self, case: Any) -> list[Callable[..., Any]]:
        method, path = case.method.upper(), case.operation.path
        excluded = {
            e["check"]
            for e in self.allowed
            if e["method"] in (method, "*")
            and e["path"] in (path, "*")
            and ("when" not in e or CONDITIONS[e["when"]](case))
        }
        return [fn for name, fn in self.checks.items() if name not in excluded]

    def before(self) -> dict[str, Any]:
        return self.known.pop() if self.known else _documents(self.fs)

    def call_and_check(self, case: Any) -> Any:
        method, path = case.method.upper(), case.operation.path
        before = self.before()
        response = case.call(base_url=self.url, session=self.session, timeout=120, allow_redirects=False)
        seen = self.statuses.setdefault(f"{method} {path}", {})
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        case.validate_response(response, checks=self.checks_for(case))
        if 400 <= response.status_code < 500:
            after = _documents(self.fs)
            if (self.capability, method, path, response.status_code) not in PARTIAL_4XX:
                assert after == before, (method, path, response.status_code, response.text[:300])
            self.known.append(after)
        return response


def _follow_links(contract: Contract, document: dict[str, Any], case: Any, response: Any) -> None:
    answer = document["paths"][case.operation.path][case.method.lower()]["responses"]
    links = answer.get(str(response.status_code), {}).get("links", {})
    by_id = {
        operation["operationId"]: (path, method.upper())
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    for link in links.values():
        path, method = by_id[link["operationId"]]
        params = {name: _resolve(expr, response) for name, expr in link["parameters"].items()}
        followed = contract.call_and_check(contract.schema[path][method].Case(path_parameters=params))
        assert followed.status_code < 400, (method, path, params, followed.status_code, followed.text[:300])


def _resolve(expression: str, response: Any) -> Any:
    """An OpenAPI runtime expression of the form ``$response.body#/a/b``."""
    prefix = "$response.body#"
    assert expression.startswith(prefix), expression
    value = response.json()
    for part in expression[len(prefix) :].strip("/").split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _strategy(operation: Any) -> Any:
    """What the document allows; with ION_CONTRACT_GENERATION=all (a longer, exploratory run, not
    part of make test) also what it forbids."""
    from schemathesis import GenerationMode

    if os.environ.get("ION_CONTRACT_GENERATION") == "all":
        return operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
    return operation.as_strategy(GenerationMode.POSITIVE)


def _is_job(path: str, method: str) -> bool:
    if method != "POST":
        return False
    scheduled = {s.path for s in topology().schedules.values()}
    return path in scheduled or path == "/" or path.endswith("/run") or path.startswith("/v1/reports/")


@pytest.mark.parametrize("capability", HTTP_CAPABILITIES)
def test_each_function_keeps_its_contract(  # type: ignore[no-untyped-def]
    capability: str, fs, emulators, serve_capability, tmp_path
) -> None:
    from devtools.pubsub_setup import create_topics_and_subscriptions

    create_topics_and_subscriptions(topology(), emulators.project, lambda _cap: "http://127.0.0.1:9")
    _register_protobuf()
    live = serve_capability(capability, _environment(capability, tmp_path))
    served = requests.get(f"{live.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/json"
    assert served.json() == _api(capability).openapi()
    contract = Contract(capability, live.url, fs)

    operations = [result.ok() for result in contract.schema.get_all_operations()]
    assert operations
    for operation in operations:
        examples = (
            EXAMPLES_PER_JOB if _is_job(operation.path, operation.method.upper()) else EXAMPLES_PER_OPERATION
        )

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_strategy(operation))
        def run(case: Any) -> None:
            contract.call_and_check(case)

        try:
            run()
        except Unsatisfiable:  # an operation whose every input is fixed: called once below
            contract.call_and_check(operation.Case())
    assert sum(sum(s.values()) for s in contract.statuses.values()) >= len(operations)

    # The document's examples, each sent once; an answer with links is followed (create, then get
    # and delete what was created), so the success paths are checked as well as the refusals.
    document = served.json()
    for operation in operations:
        for strategy in operation.get_strategies_from_examples():

            @settings(max_examples=1, deadline=None, derandomize=True, database=None, phases=[Phase.generate])
            @given(case=strategy)
            def example(case: Any) -> None:
                response = contract.call_and_check(case)
                _follow_links(contract, document, case, response)

            example()

    contract.statuses = {}
    machine = contract.schema.as_state_machine()
    if machine.bundles:  # the document has links: follow them (create, then use what was made)

        class Stateful(machine):  # type: ignore[misc, valid-type]
            def call(self, case: Any, **kwargs: Any) -> Any:
                return contract.call_and_check(case)

            def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
                pass  # checked in call

        from hypothesis.stateful import run_state_machine_as_test

        run_state_machine_as_test(
            Stateful,
            settings=settings(
                max_examples=STATEFUL_EXAMPLES,
                stateful_step_count=STATEFUL_STEPS,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
        assert contract.statuses, "the stateful run sent nothing"
