"""An incident's group silenced for an hour (Slack's **Silence 1 h** button): a silence of its
labels, created by the user, noted on the incident's timeline, in one transaction.

A double click is one silence: Slack posts each click as a request of its own (two signatures, so
no replay), and two requests at once would each create one. A click names itself (``click``: the
Slack user and the message the button is on); a second click of the same user on the same
message within ``ION_FANOUT_SLACK_DOUBLE_CLICK_SECONDS`` (60 s) of the first, while the silence
that one made is still active, answers that silence and changes nothing. The incident's document
is the lock: both clicks read and write it in their transaction, so the second sees the first's
note (its ``ref`` names the click and the silence). Later, or by someone else, or once that
silence is expired, a click makes a new silence, as the silence API does for every request.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from functions.fanout.incident_actions import NoSuchIncident, Outcome
from functions.fanout.incident_record import Change, Incident, TimelineEntry
from functions.fanout.incident_store import INCIDENTS, incident_document
from functions.fanout.incidents import add_note
from functions.fanout.matchers import Matcher
from functions.fanout.records import collection
from functions.fanout.settings import get_fanout_settings
from shared.clock import utcnow
from shared.firestore import run_transaction

SILENCE_FOR = timedelta(hours=1)
REF_PREFIX = "slack-silence/"


def slack_click(user_id: str, channel: str | None, ts: str | None) -> str:
    """What names one click of the button: who clicked, on which message."""
    return f"{user_id}/{channel or '-'}/{ts or '-'}"


def silence_incident(incident_id: str, by: str, *, click: str | None = None) -> Outcome:
    """Silence the incident's group (its labels) for an hour; the silence is noted on the
    timeline. With ``click``, a double click answers the first click's silence (``changed``
    false) instead of making a second."""
    from functions.fanout import silences

    ref = collection(INCIDENTS).document(incident_id)

    def run(tx: Any) -> tuple[Incident, Change] | None:
        snapshot = ref.get(transaction=tx)
        if not snapshot.exists:
            return None
        incident = Incident.model_validate(snapshot.to_dict())
        now = utcnow()
        if click is not None:
            earlier = _first_click(incident, click, now)
            if earlier is not None:
                silence_id = str(earlier.ref).rsplit("/", 1)[1]
                silence = silences.get(silence_id, transaction=tx)
                if silence is not None and silence.state(now) == "active":
                    detail = f"already silenced by {earlier.by} at {_at(earlier.at)} (silence {silence_id})"
                    return incident, Change(False, detail)
        matchers = [Matcher(name=k, value=v) for k, v in sorted(incident.labels.items()) if v]
        silence = silences.new_silence(
            silences.SilenceIn(
                matchers=matchers or [Matcher(name="rule", value=incident.rules[0])],
                startsAt=now,
                endsAt=now + SILENCE_FOR,
                createdBy=by[:200],
                comment=f"silenced from incident {incident.id} for 1 h",
            )
        )
        text = f"silenced for 1 h (silence {silence.id}, until {silence.ends_at.isoformat()})"
        note_ref = f"{REF_PREFIX}{click}/{silence.id}" if click is not None else None
        add_note(incident, by, text, now, ref=note_ref)
        silences.create_in(tx, silence)
        tx.set(ref, incident_document(incident))
        return incident, Change(True, text)

    found = run_transaction(run)
    if found is None:
        raise NoSuchIncident(incident_id)
    return Outcome(*found)


def _first_click(incident: Incident, click: str, now: datetime) -> TimelineEntry | None:
    prefix = f"{REF_PREFIX}{click}/"
    window = timedelta(seconds=get_fanout_settings().slack_double_click_seconds)
    return next(
        (
            entry
            for entry in reversed(incident.timeline)
            if entry.kind == "note" and (entry.ref or "").startswith(prefix) and now - entry.at <= window
        ),
        None,
    )


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
