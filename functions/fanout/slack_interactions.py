"""Slack's interactivity requests: the incident buttons of a message, and the resolve dialog.

``handle_interaction`` takes the raw form body (``payload=<json>``), already verified
(``webhook_auth.verify_slack``), and is run once per signed request (a replay within the 5 minutes
is refused by the caller). Actions:

- ``ion_ack``: acknowledge the incident as the Slack user (``acknowledged_by`` = the user's name,
  else id), which also sends PagerDuty its ``acknowledge``;
- ``ion_silence_1h``: silence the incident's group for an hour (a double click makes one silence:
  ``incident_silences.py``);
- ``ion_resolve``: open a dialog (``views.open``) asking for a note; its submission
  (``view_submission`` of callback ``ion_resolve``) resolves the incident with that note;
  without a bot token to open it, resolves at once.

After each, the message is updated in place with ``chat.update``: the buttons give way to who did
what and when (and the review draft's link on resolve). Other actions (the URL buttons) are
acknowledged and ignored. Nothing here answers Slack with an error page: an unknown incident is
told to the user in the message's thread.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, ValidationError

from functions.fanout.channels.slack_blocks import (
    ACK_ACTION,
    INCIDENT_BLOCK_ID,
    RESOLVE_ACTION,
    SILENCE_ACTION,
    escape_mrkdwn,
    incident_buttons,
)
from functions.fanout.incident_actions import (
    NoSuchIncident,
    Outcome,
    acknowledge_incident,
    resolve_incident,
)
from functions.fanout.incident_record import Incident, review_url
from functions.fanout.incident_silences import silence_incident, slack_click
from functions.fanout.settings import get_fanout_settings
from functions.fanout.slack_web import call, reply
from shared.logging import get_logger

log = get_logger("fanout.slack_interactions")
STATUS_BLOCK_ID = "ion_incident_status"
RESOLVE_CALLBACK = "ion_resolve"
NOTE_BLOCK, NOTE_ACTION = "note", "note"


class BadInteraction(ValueError):
    """The verified body is not an interaction we can read: answered 400 naming what is wrong."""


class SlackUser(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    username: str | None = None
    name: str | None = None

    def who(self) -> str:
        return self.username or self.name or self.id


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Message(_Loose):
    blocks: list[dict[str, Any]] | None = None


class _State(_Loose):
    values: dict[str, dict[str, dict[str, Any]]] | None = None  # block id → action id → input


class _View(_Loose):
    state: _State | None = None


class _Shape(_Loose):
    """The parts of a payload read here, of the shape Slack sends them: a signed payload of
    another shape is answered 400 naming the part, never a 500."""

    actions: list[Any] | None = None
    container: dict[str, Any] | None = None
    channel: dict[str, Any] | None = None
    message: _Message | None = None
    view: _View | None = None


def parse_payload(body: bytes) -> dict[str, Any]:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
    except UnicodeDecodeError:
        raise BadInteraction("the body is not UTF-8 form data") from None
    raw = form.get("payload")
    if not raw:
        raise BadInteraction("the body has no `payload` field (Slack sends payload=<json>)")
    try:
        payload = json.loads(raw[0])
    except ValueError:
        raise BadInteraction("`payload` is not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") not in ("block_actions", "view_submission"):
        raise BadInteraction("`payload.type` must be block_actions or view_submission")
    try:
        _Shape.model_validate(payload)
    except ValidationError as exc:
        parts = sorted({".".join(str(p) for p in e["loc"][:2]) for e in exc.errors()})
        raise BadInteraction(f"`payload` is not of the shape Slack sends: {', '.join(parts)}") from None
    return payload


def handle_interaction(body: bytes) -> dict[str, Any]:
    payload = parse_payload(body)
    try:
        user = SlackUser.model_validate(payload.get("user"))
    except ValidationError:
        raise BadInteraction("`payload.user.id` is required") from None
    if payload["type"] == "view_submission":
        return _resolve_submitted(payload, user)
    answers = []
    for action in payload.get("actions") or []:
        if not isinstance(action, dict):
            continue
        action_id, incident_id = action.get("action_id"), action.get("value")
        if action_id not in (ACK_ACTION, SILENCE_ACTION, RESOLVE_ACTION):
            continue  # a link button: Slack reports its clicks too
        if not isinstance(incident_id, str) or not incident_id:
            raise BadInteraction(f"action {action_id} carries no incident id in `value`")
        answers.append(_act(action_id, incident_id, user, payload))
    return {"handled": answers}


def _act(action_id: str, incident_id: str, user: SlackUser, payload: dict[str, Any]) -> dict[str, Any]:
    channel, ts = _message_of(payload)
    try:
        if action_id == ACK_ACTION:
            outcome = acknowledge_incident(incident_id, user.who(), "slack")
        elif action_id == SILENCE_ACTION:
            outcome = silence_incident(incident_id, user.who(), click=slack_click(user.id, channel, ts))
        else:
            trigger = payload.get("trigger_id")
            if trigger and _open_resolve_dialog(trigger, incident_id, channel, ts):
                return {"action": action_id, "incident_id": incident_id, "detail": "resolve dialog opened"}
            outcome = resolve_incident(incident_id, user.who(), "slack", note="resolved from Slack")
    except NoSuchIncident:
        reply(channel, ts, f"No incident {escape_mrkdwn(incident_id)} is known (expired or never opened).")
        return {"action": action_id, "incident_id": incident_id, "detail": "no such incident"}
    if not outcome.change.changed and action_id != SILENCE_ACTION:
        reply(channel, ts, f"<@{user.id}>: nothing to do, {escape_mrkdwn(outcome.change.detail)}.")
    _update_message(channel, ts, payload.get("message"), outcome, action_id=action_id, user=user)
    return {"action": action_id, "incident_id": incident_id, "detail": outcome.change.detail}


def _resolve_submitted(payload: dict[str, Any], user: SlackUser) -> dict[str, Any]:
    view = payload.get("view") or {}
    if view.get("callback_id") != RESOLVE_CALLBACK:
        return {"handled": [], "view_submission": True}
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        incident_id = str(meta["incident_id"])
    except (ValueError, KeyError, TypeError):
        raise BadInteraction("the resolve dialog's private_metadata names no incident") from None
    values = ((view.get("state") or {}).get("values") or {}).get(NOTE_BLOCK) or {}
    note = str((values.get(NOTE_ACTION) or {}).get("value") or "").strip() or None
    try:
        outcome = resolve_incident(incident_id, user.who(), "slack", note=note)
    except NoSuchIncident:
        return {
            "handled": [{"incident_id": incident_id, "detail": "no such incident"}],
            "view_submission": True,
        }
    channel, ts = meta.get("channel"), meta.get("ts")
    _update_message(channel, ts, None, outcome, action_id=RESOLVE_ACTION, user=user)
    handled = [{"action": RESOLVE_ACTION, "incident_id": incident_id, "detail": outcome.change.detail}]
    return {"handled": handled, "view_submission": True}


def _message_of(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    container = payload.get("container") or {}
    channel = container.get("channel_id") or (payload.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (payload.get("message") or {}).get("ts")
    return channel, ts


# --- talking back to Slack ------------------------------------------------------------------


def _open_resolve_dialog(trigger_id: str, incident_id: str, channel: str | None, ts: str | None) -> bool:
    view = {
        "type": "modal",
        "callback_id": RESOLVE_CALLBACK,
        "private_metadata": json.dumps({"incident_id": incident_id, "channel": channel, "ts": ts}),
        "title": {"type": "plain_text", "text": "Resolve incident"},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "What fixed it?"},
                "element": {"type": "plain_text_input", "action_id": NOTE_ACTION, "multiline": True},
            }
        ],
    }
    return call("views_open", trigger_id=trigger_id, view=view)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%H:%M UTC") if moment else "?"


def status_line(incident: Incident, action_id: str, user: SlackUser) -> str:
    if incident.state == "resolved":
        who, at = escape_mrkdwn(incident.resolved_by or "?"), _when(incident.resolved_at)
        line = f":white_check_mark: Incident resolved by {who} at {at}"
    elif incident.state == "acknowledged":
        who, at = escape_mrkdwn(incident.acknowledged_by or "?"), _when(incident.acknowledged_at)
        line = f":eyes: Acknowledged by {who} at {at}"
    else:
        line = f":rotating_light: {incident.priority} not acknowledged yet"
    if action_id == SILENCE_ACTION:
        line += f" · :no_bell: silenced for 1 h by <@{user.id}>"
    return line


def _update_message(
    channel: str | None,
    ts: str | None,
    message: dict[str, Any] | None,
    outcome: Outcome,
    *,
    action_id: str,
    user: SlackUser,
) -> None:
    """The message again, its incident buttons replaced by the incident's state (and the buttons
    still useful: none once resolved), the review draft linked once resolved."""
    if not channel or not ts:
        return
    blocks = (message or {}).get("blocks") or _stored_blocks(channel, ts)
    if not blocks:
        reply(channel, ts, status_line(outcome.incident, action_id, user))
        return
    incident = outcome.incident
    kept = [b for b in blocks if b.get("block_id") not in (INCIDENT_BLOCK_ID, STATUS_BLOCK_ID)]
    kept.append(
        {
            "type": "context",
            "block_id": STATUS_BLOCK_ID,
            "elements": [{"type": "mrkdwn", "text": status_line(incident, action_id, user)}],
        }
    )
    if incident.state != "resolved":
        kept.append(incident_buttons(incident.id, acknowledged=incident.state == "acknowledged"))
    elif incident.review is not None:
        url = review_url(get_fanout_settings().public_url, incident.id)
        kept.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Post-incident review draft*: <{url}|open the draft>"},
            }
        )
    text = str((message or {}).get("text") or incident.title)
    call("chat_update", channel=channel, ts=ts, text=text, blocks=kept[:50])


def echo_elsewhere(outcome: Outcome, action_id: str) -> None:
    """An acknowledgement or resolve made elsewhere (the API, PagerDuty) shown in the incident's
    Slack messages as one made here is. A failure is logged, never raised: the change stands."""
    from google.api_core.exceptions import GoogleAPICallError

    from functions.fanout.records import SLACK_MESSAGES, collection, field_filter

    if not get_fanout_settings().slack_bot_token:
        return
    ion = SlackUser(id="ion-ops")
    try:
        query = collection(SLACK_MESSAGES).where(
            filter=field_filter("notification.incident_id", "==", outcome.incident.id)
        )
        for stored in (snapshot.to_dict() or {} for snapshot in query.stream()):
            _update_message(
                stored.get("channel"), stored.get("ts"), None, outcome, action_id=action_id, user=ion
            )
    except GoogleAPICallError:
        log.exception("the Slack messages of %s could not be updated", outcome.incident.id)


def _stored_blocks(channel: str, ts: str) -> list[dict[str, Any]]:
    """The blocks of a message fan-out posted (a dialog's submission does not carry them)."""
    from functions.fanout.channels.slack import message_doc_id
    from functions.fanout.channels.slack_blocks import render_blocks
    from functions.fanout.models import Notification
    from functions.fanout.records import SLACK_MESSAGES
    from shared.firestore import get_firestore
    from shared.messages import AlertTransition

    stored = get_firestore().collection(SLACK_MESSAGES).document(message_doc_id(channel, ts)).get().to_dict()
    if not stored:
        return []
    alerts = [AlertTransition.model_validate(raw) for raw in (stored.get("alerts") or {}).values()]
    parent = Notification.model_validate({**stored["notification"], "alerts": alerts})
    return render_blocks(parent, alerts, get_fanout_settings(), mention=None)
