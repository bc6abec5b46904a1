"""The public function ``incident_webhooks``: deployed, it refuses to start without the secrets
that verify Slack and PagerDuty; it serves their two routes (and /health) and nothing else; its
requests are verified as on manage_alerts."""

from __future__ import annotations

import pytest

from functions.fanout.webhook_auth import Unverified, pagerduty_signature, verify_pagerduty, verify_slack
from tests.fanout.conftest import Fanout, make_transition
from tests.fanout.test_deployment import CHANNELS, start
from tests.incidents.conftest import block_action, pagerduty_request, slack_request


def test_deployed_without_the_webhook_secrets_it_refuses_to_start_naming_them() -> None:
    started = start("incident_webhooks", K_SERVICE="incident-webhooks", **CHANNELS)
    assert started.returncode != 0
    assert "SLACK_SIGNING_SECRET" in started.stderr
    assert "PAGERDUTY_WEBHOOK_SECRET" in started.stderr
    with_secrets = start(
        "incident_webhooks",
        K_SERVICE="incident-webhooks",
        SLACK_SIGNING_SECRET="s" * 32,
        PAGERDUTY_WEBHOOK_SECRET="p" * 32,
        **CHANNELS,
    )
    assert with_secrets.returncode == 0, with_secrets.stderr


def test_signature_checks_without_the_emulator() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    body = b"payload=%7B%7D"
    ts = str(int(now.timestamp()))
    from functions.fanout.webhook_auth import slack_signature

    verify_slack("secret", ts, slack_signature("secret", ts, body), body, now)
    for timestamp, signature in (
        (str(int(now.timestamp()) - 301), slack_signature("secret", str(int(now.timestamp()) - 301), body)),
        (str(int(now.timestamp()) + 301), slack_signature("secret", str(int(now.timestamp()) + 301), body)),
        (ts, slack_signature("other", ts, body)),
        ("yesterday", "v0=00"),
        (None, None),
    ):
        with pytest.raises(Unverified):
            verify_slack("secret", timestamp, signature, body, now)
    good = pagerduty_signature("new", b"{}")
    verify_pagerduty("new", f"v1=deadbeef, {good}", b"{}")  # rotation: any one matching
    for header in (None, "", "v1=deadbeef", pagerduty_signature("old", b"{}"), good.replace("v1=", "v0=")):
        with pytest.raises(Unverified):
            verify_pagerduty("new", header, b"{}")


@pytest.mark.emulators
def test_the_public_function_serves_only_the_webhooks(incidents: Fanout) -> None:
    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    [incident] = incidents.http().get("/v1/incidents").get_json()
    public = incidents.app("incident_webhooks", "http")
    for path in ("/v1/incidents", f"/v1/incidents/{incident['id']}", "/v1/silences", "/v1/flush"):
        assert public.get(path).status_code == 404, path
    assert public.post("/v1/flush").status_code == 404
    assert public.post(f"/v1/incidents/{incident['id']}/ack").status_code == 404
    assert public.get("/health").status_code == 200
    paths = set(public.get("/openapi.json").get_json()["paths"])
    assert paths == {"/v1/slack/interactions", "/v1/pagerduty/webhooks", "/health", "/openapi.json"}

    forged, headers = pagerduty_request("incident.acknowledged", firing.fingerprint, secrets=("guess",))
    assert public.post("/v1/pagerduty/webhooks", data=forged, headers=headers).status_code == 401
    body, headers = slack_request(
        block_action(incidents, "ion_ack", incident["id"]), at=clock.now().timestamp()
    )
    answer = public.post("/v1/slack/interactions", data=body, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    acknowledged = incidents.http().get(f"/v1/incidents/{incident['id']}").get_json()
    assert acknowledged["acknowledged_by"] == "ada"
    body, headers = pagerduty_request("incident.annotated", firing.fingerprint, event_id="01NOTE")
    assert public.post("/v1/pagerduty/webhooks", data=body, headers=headers).status_code == 200
    timeline = incidents.http().get(f"/v1/incidents/{incident['id']}").get_json()["timeline"]
    assert timeline[-1]["kind"] == "note"
    assert "annotated" in timeline[-1]["text"]


@pytest.mark.emulators
def test_without_the_signing_secrets_locally_the_routes_refuse_every_request_naming_them(
    fanout: Fanout,
) -> None:
    slack = fanout.http().post("/v1/slack/interactions", data=b"payload=%7B%7D")
    assert slack.status_code == 401
    assert "SLACK_SIGNING_SECRET" in slack.get_json()["detail"]
    pd = fanout.http().post("/v1/pagerduty/webhooks", json={})
    assert pd.status_code == 401
    assert "PAGERDUTY_WEBHOOK_SECRET" in pd.get_json()["detail"]


def test_locally_manage_alerts_serves_the_webhook_paths_and_a_wrong_host_is_refused() -> None:
    import yaml
    from pydantic import ValidationError

    from devtools.serve import build_app
    from shared.topology import TOPOLOGY_FILE, Topology, load_topology

    topo = load_topology()
    assert topo.functions["incident_webhooks"].public
    assert topo.functions["incident_webhooks"].served_locally_by == "manage_alerts"
    assert not topo.functions["manage_alerts"].public  # internal: only the webhooks are public
    assert build_app("fanout").http_app is not None  # one HTTP app on port 8084, no conflict
    raw = yaml.safe_load(TOPOLOGY_FILE.read_text())
    for wrong in ("fan_out_alerts", "route", "no_such_function"):
        raw["functions"]["incident_webhooks"]["served_locally_by"] = wrong
        with pytest.raises(ValidationError, match="served_locally_by"):
            Topology.model_validate(raw)
