"""Roles from the verified caller (issue #24, item 1): each function verifies the Google-signed ID
token (or IAP's JWT) with real signatures from a local signing stand-in, maps its email to the
roles Terraform lists, and refuses a route to a caller without its role: 403 naming the role.
Each abuse of the issue is a test here that answered 2xx before roles existed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import identity, roles
from shared.audit import MARKER
from shared.topology import ROOT
from tests.security.signing import Signer, signing_standin

AUDIENCE = "https://score-health-123456789.us-central1.run.app"
IAP_AUDIENCE = "/projects/123456789/global/backendServices/987654321"
ADMIN = "admin@example.com"
OPERATOR = "oncall@example.com"
VIEWER = "dashboards@example.com"  # a viewer added for dashboards
SCHEDULER = "ion-ops-scheduler@p.iam.gserviceaccount.com"
TASKS = "ion-ops-fanout-tasks@p.iam.gserviceaccount.com"
PUSH = "ion-ops-push@p.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def signer() -> Iterator[Signer]:
    with signing_standin() as found:
        yield found


@pytest.fixture
def configured(signer: Signer, monkeypatch: pytest.MonkeyPatch) -> Signer:
    """The environment Terraform renders: audiences, certs URLs (the stand-in's), role lists."""
    monkeypatch.setenv(identity.AUDIENCES_VARIABLE, f"{AUDIENCE},https://score-health-abc-uc.a.run.app")
    monkeypatch.setenv(identity.CERTS_URL_VARIABLE, signer.certs_url)
    monkeypatch.setenv(identity.IAP_CERTS_URL_VARIABLE, signer.iap_certs_url)
    monkeypatch.setenv(identity.IAP_AUDIENCE_VARIABLE, "/projects/123456789/global/backendServices/*")
    monkeypatch.setenv("ION_ROLE_ADMINS", f"user:{ADMIN}")
    monkeypatch.setenv("ION_ROLE_OPERATORS", f"user:{OPERATOR},domain:sre.example.com")
    monkeypatch.setenv("ION_ROLE_VIEWERS", f"user:{VIEWER}")
    monkeypatch.setenv("ION_ROLE_SCHEDULER", f"serviceAccount:{SCHEDULER}")
    monkeypatch.setenv("ION_ROLE_TASKS", f"serviceAccount:{TASKS}")
    monkeypatch.setenv("ION_ROLE_PUSH", f"serviceAccount:{PUSH}")
    roles.reset()
    yield signer
    roles.reset()


def bearer(signer: Signer, email: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {signer.id_token(email, AUDIENCE, **kwargs)}"}


@pytest.fixture
def app():  # type: ignore[no-untyped-def]
    import functions_framework

    def client(target: str) -> Any:
        return functions_framework.create_app(target, str(ROOT / "main.py"), "http").test_client()

    return client


def _silence(created_by: str = "someone-else@example.com") -> dict[str, Any]:
    return {
        "matchers": [{"name": "severity", "value": "critical"}],
        "endsAt": (datetime.now(UTC) + timedelta(days=365)).isoformat(),
        "createdBy": created_by,
        "comment": "mute every critical page for a year",
    }


# --- The abuses: a caller with run.invoker but not the role ---------------------------------------


def test_a_viewer_cannot_mint_a_customer_key(configured, app) -> None:  # type: ignore[no-untyped-def]
    answer = app("score_health").post("/v1/customers/acme/keys", headers=bearer(configured, VIEWER))
    assert answer.status_code == 403
    body = answer.get_json()
    assert body["required_roles"] == ["admin"]
    assert "admin" in body["detail"]
    assert VIEWER in body["detail"]
    # Nor create a customer, nor read their keys: customers and keys are admin's.
    health = app("score_health")
    assert (
        health.post(
            "/v1/customers", json={"id": "acme", "name": "Acme"}, headers=bearer(configured, OPERATOR)
        ).status_code
        == 403
    )
    assert health.get("/v1/customers/acme/keys", headers=bearer(configured, OPERATOR)).status_code == 403


def test_a_viewer_cannot_silence_every_page(configured, app) -> None:  # type: ignore[no-untyped-def]
    answer = app("manage_alerts").post("/v1/silences", json=_silence(), headers=bearer(configured, VIEWER))
    assert answer.status_code == 403
    assert answer.get_json()["required_roles"] == ["operator"]
    assert "needs" in answer.get_json()["detail"]
    assert "operator" in answer.get_json()["detail"]


def test_a_viewer_cannot_resend_the_leadership_report(configured, app) -> None:  # type: ignore[no-untyped-def]
    answer = app("mail_reports").post("/v1/reports/leadership", json={}, headers=bearer(configured, VIEWER))
    assert answer.status_code == 403
    assert answer.get_json()["required_roles"] == ["scheduler", "operator"]


def test_a_viewer_cannot_redrive_dead_letters(configured, app) -> None:  # type: ignore[no-untyped-def]
    answer = app("manage_dead_letters").post(
        "/v1/dead-letters/42/redrive", headers=bearer(configured, VIEWER)
    )
    assert answer.status_code == 403
    assert answer.get_json()["required_roles"] == ["operator"]


def test_job_identities_reach_only_their_own_routes(configured, app) -> None:  # type: ignore[no-untyped-def]
    alerts = app("manage_alerts")
    # The scheduler's token cannot create a silence, nor the push identity, nor Cloud Tasks'.
    for job in (SCHEDULER, PUSH, TASKS):
        refused = alerts.post("/v1/silences", json=_silence(), headers=bearer(configured, job))
        assert refused.status_code == 403, job
    # The group timer is Cloud Tasks' alone: not the scheduler's, not even an admin's.
    body = {"group_id": "critical-" + "0" * 24, "due_at": datetime.now(UTC).isoformat()}
    for other in (SCHEDULER, ADMIN):
        assert alerts.post("/v1/flush/group", json=body, headers=bearer(configured, other)).status_code == 403
    # Only the push identity may push; a viewer may not, nor the scheduler.
    envelope = {"message": {"data": "", "messageId": "1"}, "subscription": "projects/p/subscriptions/s"}
    fan_out = app("fan_out_alerts")
    for other in (VIEWER, SCHEDULER):
        pushed = fan_out.post("/projects/p/topics/alerts", json=envelope, headers=bearer(configured, other))
        assert pushed.status_code == 403
        assert pushed.get_json()["required_roles"] == ["push"]
    # The push identity passes the role check (the message itself is then judged: not an alert).
    pushed = fan_out.post("/projects/p/topics/alerts", json=envelope, headers=bearer(configured, PUSH))
    assert pushed.status_code not in (401, 403)


def test_who_holds_a_role_is_an_admin_operator_viewer_ladder_and_domains(configured) -> None:  # type: ignore[no-untyped-def]
    assert roles.roles_of(ADMIN) == {"admin", "operator", "viewer"}
    assert roles.roles_of(OPERATOR) == {"operator", "viewer"}
    assert roles.roles_of("ada@sre.example.com") == {"operator", "viewer"}
    assert roles.roles_of("ada@evil-sre.example.com") == set()
    assert roles.roles_of(VIEWER) == {"viewer"}
    assert roles.roles_of(SCHEDULER) == {"scheduler"}
    assert roles.roles_of(identity.ANONYMOUS) == set()


# --- Verification -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["wrong audience", "wrong issuer", "expired", "forged", "unsigned", "not a JWT", "no email"],
)
def test_a_token_that_does_not_verify_is_401(configured, app, case: str) -> None:  # type: ignore[no-untyped-def]
    signer = configured
    if case == "wrong audience":
        token = signer.id_token(ADMIN, "https://someone-else-123.us-central1.run.app")
    elif case == "wrong issuer":
        token = signer.id_token(ADMIN, AUDIENCE, issuer="https://evil.example.com")
    elif case == "expired":
        token = signer.id_token(ADMIN, AUDIENCE, lifetime=-3600)
    elif case == "forged":  # the published key id, another key
        token = signer.id_token(ADMIN, AUDIENCE, signer=signer.forger)
    elif case == "unsigned":
        import base64

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        claims = json.loads(base64.urlsafe_b64decode(signer.id_token(ADMIN, AUDIENCE).split(".")[1] + "=="))
        token = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    elif case == "not a JWT":
        token = "not-a-token"
    else:
        token = signer.id_token("", AUDIENCE)
    answer = app("score_health").post("/v1/customers/acme/keys", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401, answer.get_json()
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    detail = answer.get_json()["detail"]
    expected = {
        "wrong audience": "audience",
        "wrong issuer": "issuer",
        "expired": "expired",
        "forged": "signature",
        "no email": "email",
    }.get(case, "Token refused")
    assert expected in detail


@pytest.mark.emulators
def test_iap_jwt_names_the_person_and_is_verified(configured, app, fs) -> None:  # type: ignore[no-untyped-def]
    alerts = app("manage_alerts")
    ok = alerts.get(
        "/v1/silences/s-none", headers={identity.IAP_JWT_HEADER: configured.iap_jwt(VIEWER, IAP_AUDIENCE)}
    )
    assert ok.status_code == 404  # through the role check: no such silence
    refused = alerts.post(
        "/v1/silences",
        json=_silence(),
        headers={identity.IAP_JWT_HEADER: configured.iap_jwt(VIEWER, IAP_AUDIENCE)},
    )
    assert refused.status_code == 403
    other_project = configured.iap_jwt(VIEWER, "/projects/999/global/backendServices/1")
    assert alerts.get("/v1/silences", headers={identity.IAP_JWT_HEADER: other_project}).status_code == 401
    wrong_issuer = configured.iap_jwt(VIEWER, IAP_AUDIENCE, issuer="https://accounts.google.com")
    assert alerts.get("/v1/silences", headers={identity.IAP_JWT_HEADER: wrong_issuer}).status_code == 401
    # The unsigned header IAP also sets is not an identity any more.
    spoofed = {"X-Goog-Authenticated-User-Email": f"accounts.google.com:{ADMIN}"}
    assert alerts.post("/v1/silences", json=_silence(), headers=spoofed).status_code == 403


def test_the_dev_header_is_refused_when_deployed(configured, app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    health = app("score_health")
    monkeypatch.setenv("K_SERVICE", "score-health")
    answer = health.get("/v1/health/personas", headers={identity.DEV_HEADER: ADMIN})
    assert answer.status_code == 401
    assert identity.DEV_HEADER in answer.get_json()["detail"]
    # And without any token, deployed: 401 naming the role it needs.
    anonymous = health.get("/v1/health/personas")
    assert anonymous.status_code == 401
    assert "viewer" in anonymous.get_json()["detail"]


def test_a_public_route_ignores_tokens_even_deployed(configured, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("K_SERVICE", "route")
    caller = roles.authorize({"Authorization": "Bearer junk", identity.DEV_HEADER: "x"}, ("public",))
    assert caller == identity.Caller(identity.ANONYMOUS, "none")


def test_locally_the_dev_header_names_the_caller(configured, app) -> None:  # type: ignore[no-untyped-def]
    health = app("score_health")
    assert health.post("/v1/customers/acme/keys", headers={identity.DEV_HEADER: VIEWER}).status_code == 403
    # Nobody named, roles configured: anonymous holds none.
    refused = health.post("/v1/customers/acme/keys")
    assert refused.status_code == 403
    assert "anonymous" in refused.get_json()["detail"]


def test_deployed_without_role_lists_the_function_refuses_to_start(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in roles.ROLE_VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(identity.AUDIENCES_VARIABLE, raising=False)
    problems = roles.deployment_problems("manage_alerts")
    assert any(p.startswith("ION_ROLE_OPERATORS is not set") for p in problems)
    assert "ION_AUTH_AUDIENCES is not set" in problems
    monkeypatch.setenv("K_SERVICE", "manage-alerts")
    assert roles.holds(OPERATOR, "operator") is False  # deployed, an unset role is nobody's


# --- With the role: the change is made, recorded with the token's principal --------------------


@pytest.mark.emulators
def test_an_operator_silences_and_the_token_not_the_body_says_who(configured, app, fs, capsys) -> None:  # type: ignore[no-untyped-def]
    alerts = app("manage_alerts")
    created = alerts.post(
        "/v1/silences", json=_silence("ceo@example.com"), headers=bearer(configured, OPERATOR)
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["createdBy"] == OPERATOR
    stored = alerts.get(f"/v1/silences/{created.get_json()['id']}", headers=bearer(configured, VIEWER))
    assert stored.get_json()["createdBy"] == OPERATOR
    entries = [
        entry
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and (entry := json.loads(line)).get(MARKER) is True
    ]
    assert [(e["audit_action"], e["actor"], e["actor_via"]) for e in entries] == [
        ("silence.create", OPERATOR, "id-token")
    ]


@pytest.mark.emulators
def test_admin_issues_and_revokes_keys_recorded_with_the_admin(configured, app, fs, capsys) -> None:  # type: ignore[no-untyped-def]
    from functions.health.settings import get_health_settings

    get_health_settings.cache_clear()
    health = app("score_health")
    admin = bearer(configured, ADMIN)
    assert health.post("/v1/customers", json={"id": "acme", "name": "Acme"}, headers=admin).status_code == 201
    issued = health.post("/v1/customers/acme/keys", headers=admin)
    assert issued.status_code == 201
    key_id = issued.get_json()["key_id"]
    assert health.delete(f"/v1/customers/acme/keys/{key_id}", headers=admin).status_code == 200
    entries = [
        entry
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and (entry := json.loads(line)).get(MARKER) is True
    ]
    assert [(e["audit_action"], e["actor"]) for e in entries] == [
        ("customer.create", ADMIN),
        ("customer_key.issue", ADMIN),
        ("customer_key.revoke", ADMIN),
    ]
    get_health_settings.cache_clear()


# --- The default rule, which other capabilities' new routes get without saying ---------------------


def test_the_default_rule() -> None:
    assert roles.default_roles("/v1/incidents", ["GET"]) == ("viewer",)
    assert roles.default_roles("/v1/incidents/<id>/ack", ["POST"]) == ("operator",)
    assert roles.default_roles("/v1/incidents/<id>", ["PATCH"]) == ("operator",)
    assert roles.default_roles("/v1/reports/<name>", ["POST"], scheduled=True) == ("scheduler", "operator")
    assert roles.default_roles("/projects/<p>/topics/<t>", ["POST"]) == ("push",)
    assert roles.default_roles("/v1/customers/<id>/erase", ["POST"]) == ("admin",)
    assert roles.default_roles("/v1/customers", ["GET"]) == ("admin",)
    assert roles.default_roles("/v1/erasure/<id>", ["DELETE"]) == ("admin",)
    with pytest.raises(ValueError, match="unknown role"):
        roles.normalize_roles("superuser")


def test_every_deployed_route_has_a_role_and_scheduled_paths_take_the_scheduler() -> None:
    from devtools.role_table import api_of, role_rows
    from shared.topology import topology

    rows = role_rows()
    assert rows, "no routes"
    spec = topology()
    for schedule in spec.schedules.values():
        api = api_of(spec.functions[schedule.function].capability)
        endpoint = api._map.bind("localhost").match(schedule.path, "POST")[0]
        assert "scheduler" in api.roles()[endpoint], schedule.path
    by_route = {(row[0], row[1], row[2]): row[3] for row in rows}
    assert by_route[("score_health", "POST", "/v1/customers/<customer_id>/keys")] == ("admin",)
    assert by_route[("manage_alerts", "POST", "/v1/flush/group")] == ("tasks",)
    assert by_route[("route", "POST", "/v2/route")] == ("public",)


def test_the_readme_role_table_is_the_generated_one() -> None:
    from devtools.role_table import BEGIN, END, markdown

    readme = (ROOT / "README.md").read_text()
    current = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)].strip()
    assert current == markdown(), "README's role table differs: paste `python -m devtools.role_table`"


@pytest.mark.emulators
def test_a_change_without_its_own_entry_is_audited_unless_a_job_made_it(configured, app, fs, capsys) -> None:  # type: ignore[no-untyped-def]
    alerts = app("manage_alerts")
    capsys.readouterr()
    assert alerts.post("/v1/flush", headers=bearer(configured, SCHEDULER)).status_code == 200
    assert alerts.post("/v1/flush", headers=bearer(configured, OPERATOR)).status_code == 200
    entries = [
        entry
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and (entry := json.loads(line)).get(MARKER) is True
    ]
    assert [(e["audit_action"], e["actor"], e["method"], e["path"], e["status"]) for e in entries] == [
        ("fanout.flush_tick", OPERATOR, "POST", "/v1/flush", 200)
    ]


def test_a_new_route_gets_its_role_without_saying_so(configured) -> None:  # type: ignore[no-untyped-def]
    """What another capability's new route gets: an incident action needs operator, its listing viewer."""
    import flask

    from shared.http import Api

    api = Api("fanout")

    @api.route("/v1/incidents", methods=["GET"])
    def list_incidents(_request: flask.Request) -> list[str]:
        return []

    @api.route("/v1/incidents/<incident_id>/ack", methods=["POST"])
    def ack(_request: flask.Request, incident_id: str) -> dict[str, str]:
        return {"acked": incident_id}

    app = flask.Flask(__name__)
    app.add_url_rule("/<path:_any>", "api", lambda _any: api(flask.request), methods=["GET", "POST"])
    client = app.test_client()
    assert client.get("/v1/incidents", headers=bearer(configured, VIEWER)).status_code == 200
    refused = client.post("/v1/incidents/i1/ack", headers=bearer(configured, VIEWER))
    assert refused.status_code == 403
    assert refused.get_json()["required_roles"] == ["operator"]
    assert client.post("/v1/incidents/i1/ack", headers=bearer(configured, OPERATOR)).get_json() == {
        "acked": "i1"
    }


def test_slack_and_pagerduty_reach_their_signature_checks_without_a_google_identity(  # type: ignore[no-untyped-def]
    configured, app, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack and PagerDuty carry no Google identity: with every role configured, their requests
    to the public incident_webhooks are judged by the vendor's signature (401 naming it), never by
    a role; and that function serves nothing but them and /health."""
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "slack-signing-secret-for-the-test")
    monkeypatch.setenv("PAGERDUTY_WEBHOOK_SECRET", "pagerduty-webhook-secret-for-the-test")
    from functions.fanout.settings import get_fanout_settings

    get_fanout_settings.cache_clear()
    client = app("incident_webhooks")
    slack = client.post(
        "/v1/slack/interactions",
        data="payload=%7B%7D",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(int(datetime.now(UTC).timestamp())),
            "X-Slack-Signature": "v0=" + "0" * 64,
        },
    )
    assert slack.status_code == 401
    assert "signature" in slack.get_json()["detail"].lower()
    assert "role" not in slack.get_json()["detail"].lower()
    pagerduty = client.post(
        "/v1/pagerduty/webhooks",
        data=b'{"event": {}}',
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": "v1=" + "0" * 64},
    )
    assert pagerduty.status_code == 401
    assert "signature" in pagerduty.get_json()["detail"].lower()
    assert "role" not in pagerduty.get_json()["detail"].lower()
    # An operator's route is not served by the public function at all.
    silences = client.post("/v1/silences", json=_silence(), headers=bearer(configured, OPERATOR))
    assert silences.status_code in (404, 405)
    get_fanout_settings.cache_clear()
