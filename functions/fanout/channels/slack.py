"""Slack through slack-sdk's WebClient (``SLACK_API_BASE_URL`` moves it to a stand-in).

Firing alerts of a notification are one ``chat.postMessage`` in Block Kit (severity, summary,
value against threshold, runbook steps, links to the dashboard and the silence API; rendered by
``slack_blocks.py``), with the route's mention, in the route's channel (a label route's
``slack_channel``, else ``SLACK_CHANNEL``). The message's channel and ``ts`` are stored per alert
fingerprint in Firestore, so that the alert's resolve is posted in that message's thread
and the message itself is re-rendered with ``chat.update`` to show it resolved; a repeat ("still
firing") goes in the thread too, broadcast to the channel.

Every Slack call is a journal step (``Retrier.step``), recorded before those Firestore writes: if
one of them fails, the retry finds the post done, reuses its ``ts`` and only writes again.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from functions.fanout.channels.base import DeliveryError, Retrier, parse_retry_after, step_key
from functions.fanout.channels.registry import register, require
from functions.fanout.channels.slack_blocks import (
    MAX_ALERTS_PER_MESSAGE,
    MAX_ALERTS_SHOWN,
    NOTHING_OMITTED,
    Omitted,
    fallback_text,
    render_blocks,
)
from functions.fanout.models import Notification, doc_id
from functions.fanout.records import KEEP
from functions.fanout.records import SLACK_MESSAGES as MESSAGES
from functions.fanout.records import SLACK_THREADS as THREADS
from functions.fanout.settings import FanoutSettings
from shared.clock import utcnow
from shared.firestore import get_firestore
from shared.logging import get_logger
from shared.messages import AlertTransition

if TYPE_CHECKING:
    from slack_sdk import WebClient

RETRYABLE_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
log = get_logger("fanout.slack")


class ThreadRef(BaseModel):
    fingerprint: str
    channel: str
    ts: str
    message_id: str
    expire_at: datetime | None = None


def message_doc_id(channel: str, ts: str) -> str:
    return hashlib.sha256(f"{channel}:{ts}".encode()).hexdigest()[:32]


@register("slack", requires=("slack_bot_token", "slack_channel"))
class SlackChannel:
    name = "slack"

    def __init__(self, settings: FanoutSettings, client: WebClient | None = None) -> None:
        require("slack", settings)
        self.settings = settings
        self.channel_id = str(settings.slack_channel)
        if client is None:
            from slack_sdk import WebClient

            base = settings.slack_api_base_url
            client = WebClient(
                token=settings.slack_bot_token,
                base_url=base if base.endswith("/") else base + "/",
                timeout=int(settings.request_timeout_seconds),
                retry_handlers=[],  # our Retrier bounds every retry
            )
        self.client = client

    # --- sending ---------------------------------------------------------------------------

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]:
        receipt: dict[str, Any] = {"posted": [], "threaded": [], "updated": []}
        alerts = notification.alerts[:MAX_ALERTS_SHOWN]
        # A resolved alert past those still gets its own message marked resolved: one chat.update
        # per message (Slack's Tier 3, 50+ a minute), no thread reply (chat.postMessage, about 1 a
        # second in a channel): no message is left saying FIRING. 429s wait out Retry-After within
        # the retry budget; past it the delivery is dead-lettered and its re-drive goes on from
        # the journal, so none is lost. (A repeat re-announces alerts still firing: none.)
        beyond = [a for a in notification.alerts[len(alerts) :] if a.state == "resolved"]
        beyond = [] if notification.reminder else beyond
        refs = self._refs([a.fingerprint for a in [*alerts, *beyond]])
        silent: dict[str, list[AlertTransition]] = defaultdict(list)
        for alert in beyond:
            if ref := refs.get(alert.fingerprint):
                silent[ref.message_id].append(alert)
        # A group bigger than five messages: the last message says how many no message shows.
        note = Omitted(
            len(notification.alerts) - len(alerts) + notification.alerts_left_out,
            sum(map(len, silent.values())),
        )
        if notification.reminder:
            if notification.slack_channel:
                # An escalation to a wider channel: a message of its own there, with the mention.
                ts = self._post_top_level(
                    notification,
                    alerts,
                    retrier,
                    mention=notification.mention,
                    channel=notification.slack_channel,
                    omitted=note,
                )
                receipt["posted"].append(ts)
                return receipt
            self._thread_replies(notification, alerts, refs, retrier, receipt, repeat=True, omitted=note)
            return receipt
        firing = [a for a in alerts if a.state == "firing"]
        resolved = [a for a in alerts if a.state == "resolved"]
        for start in range(0, len(firing), MAX_ALERTS_PER_MESSAGE):
            chunk = firing[start : start + MAX_ALERTS_PER_MESSAGE]
            last = start + MAX_ALERTS_PER_MESSAGE >= len(firing) and not resolved
            ts = self._post_top_level(
                notification,
                chunk,
                retrier,
                mention=notification.mention,
                omitted=note if last else NOTHING_OMITTED,
            )
            self._remember(notification, ts, chunk, self.home(notification))
            receipt["posted"].append(ts)
        self._thread_replies(
            notification, resolved, refs, retrier, receipt, repeat=False, omitted=note, silent=silent
        )
        return receipt

    def _post_top_level(
        self,
        notification: Notification,
        alerts: list[AlertTransition],
        retrier: Retrier,
        *,
        mention: str | None,
        channel: str | None = None,
        omitted: Omitted = NOTHING_OMITTED,
    ) -> str:
        blocks = render_blocks(notification, alerts, self.settings, mention=mention, omitted=omitted)
        text = fallback_text(notification, alerts, mention)
        answer = retrier.step(
            step_key("post", *(a.transition_id for a in alerts)),
            "slack chat.postMessage",
            lambda: {
                "ts": str(
                    self._api(
                        "chat_postMessage",
                        channel=channel or self.home(notification),
                        text=text,
                        blocks=blocks,
                        unfurl_links=False,
                    )["ts"]
                )
            },
        )
        return str(answer["ts"])

    def home(self, notification: Notification) -> str:
        """Where the group's messages go: its label route's channel, else ``SLACK_CHANNEL``
        (replies go to the thread's own channel, wherever it is)."""
        return notification.route_slack_channel or self.channel_id

    def _thread_replies(
        self,
        notification: Notification,
        alerts: list[AlertTransition],
        refs: dict[str, ThreadRef],
        retrier: Retrier,
        receipt: dict[str, Any],
        *,
        repeat: bool,
        omitted: Omitted,
        silent: dict[str, list[AlertTransition]] | None = None,
    ) -> None:
        """Each alert's reply in its message's thread; the last message sent says ``omitted``.
        A resolve also marks its message resolved, with the ``silent`` alerts of that message
        (resolved, past what the notification shows); a message with silent alerts only is
        marked resolved without a reply."""
        silent = dict(silent or {})
        by_parent: dict[str, list[AlertTransition]] = defaultdict(list)
        orphans: list[AlertTransition] = []
        for alert in alerts:
            ref = refs.get(alert.fingerprint)
            (by_parent[ref.message_id] if ref else orphans).append(alert)
        for index, (message_id, chunk) in enumerate(by_parent.items()):
            ref = refs[chunk[0].fingerprint]
            mention = notification.mention if repeat else None
            last = index == len(by_parent) - 1 and not orphans
            said = omitted if last else NOTHING_OMITTED
            blocks = render_blocks(notification, chunk, self.settings, mention=mention, omitted=said)
            text = fallback_text(notification, chunk, mention)
            retrier.step(
                step_key("thread", message_id, *(a.transition_id for a in chunk)),
                "slack chat.postMessage (thread)",
                lambda ref=ref, blocks=blocks, text=text: {
                    "ts": str(
                        self._api(
                            "chat_postMessage",
                            channel=ref.channel,
                            thread_ts=ref.ts,
                            text=text,
                            blocks=blocks,
                            reply_broadcast=repeat,
                            unfurl_links=False,
                        )["ts"]
                    )
                },
            )
            receipt["threaded"].append(ref.ts)
            self._keep(message_id, [refs[a.fingerprint] for a in chunk])
            if not repeat:
                self._update_parent(message_id, ref, [*chunk, *silent.pop(message_id, [])], retrier)
                receipt["updated"].append(ref.ts)
        if orphans:
            # The firing message is unknown (sent before Slack was configured, or dead-lettered).
            ts = self._post_top_level(
                notification,
                orphans,
                retrier,
                mention=notification.mention if repeat else None,
                omitted=omitted,
            )
            receipt["posted"].append(ts)
        for message_id, resolved in silent.items():
            ref = refs[resolved[0].fingerprint]
            self._update_parent(message_id, ref, resolved, retrier)
            receipt["updated"].append(ref.ts)

    def _update_parent(
        self, message_id: str, ref: ThreadRef, resolved: list[AlertTransition], retrier: Retrier
    ) -> None:
        doc = get_firestore().collection(MESSAGES).document(message_id)
        stored = doc.get().to_dict()
        if not stored:
            return
        alerts = {
            key: AlertTransition.model_validate(raw) for key, raw in (stored.get("alerts") or {}).items()
        }
        for alert in resolved:
            alerts[doc_id(alert.fingerprint)] = alert
        ordered = list(alerts.values())
        parent = Notification.model_validate({**stored["notification"], "alerts": ordered})
        blocks = render_blocks(parent, ordered, self.settings, mention=None)
        text = fallback_text(parent, ordered, None)
        retrier.step(
            step_key("update", message_id, *(a.transition_id for a in resolved)),
            "slack chat.update",
            lambda: {
                "ts": str(
                    self._api("chat_update", channel=ref.channel, ts=ref.ts, text=text, blocks=blocks)["ts"]
                )
            },
        )
        # Written again on a retry (the same alerts): the update is idempotent.
        doc.update({"alerts": {key: a.model_dump(mode="json") for key, a in alerts.items()}})

    def _api(self, method: str, **kwargs: Any) -> Any:
        from slack_sdk.errors import SlackApiError, SlackRequestError

        try:
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error") if hasattr(response, "get") else "") or "unknown_error"
            status = int(getattr(response, "status_code", 0) or 0)
            headers = getattr(response, "headers", {}) or {}
            retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
            retryable = status == 429 or status >= 500 or error in RETRYABLE_ERRORS
            raise DeliveryError(
                f"Slack {method} answered {status} {error}", retryable=retryable, retry_after=retry_after
            ) from None
        except (SlackRequestError, OSError) as exc:
            raise DeliveryError(f"Slack {method} request failed: {exc}", retryable=True) from None

    # --- thread references -----------------------------------------------------------------

    def _refs(self, fingerprints: list[str]) -> dict[str, ThreadRef]:
        if not fingerprints:
            return {}
        client = get_firestore()
        refs = [client.collection(THREADS).document(doc_id(fp)) for fp in dict.fromkeys(fingerprints)]
        found: dict[str, ThreadRef] = {}
        for snapshot in client.get_all(refs):
            if snapshot.exists:
                ref = ThreadRef.model_validate(snapshot.to_dict())
                found[ref.fingerprint] = ref
        return found

    def _keep(self, message_id: str, refs: list[ThreadRef]) -> None:
        """A message still replied to is kept ``KEEP`` from now with its alerts' references (at
        most one write each per half of it): an alert firing for longer than ``KEEP`` is repeated
        and then resolved in its thread, and its message marked resolved, not a new message posted
        while the first says it fires for ever."""
        now = utcnow()
        stale = [ref for ref in refs if ref.expire_at is None or ref.expire_at < now + KEEP / 2]
        if not stale:
            return
        from google.api_core.exceptions import GoogleAPICallError

        client = get_firestore()
        kept = {"expire_at": now + KEEP}
        batch = client.batch()
        batch.update(client.collection(MESSAGES).document(message_id), kept)
        for ref in stale:
            batch.update(client.collection(THREADS).document(doc_id(ref.fingerprint)), kept)
        try:
            batch.commit()
        except GoogleAPICallError:  # the reply went out (a document gone, a fault): the next tries again
            log.warning("keeping a Slack message's references failed", exc_info=True)

    def _remember(
        self, notification: Notification, ts: str, alerts: list[AlertTransition], channel: str
    ) -> None:
        # Stored with the message as first rendered, so chat.update can re-render it later.
        client = get_firestore()
        message_id = message_doc_id(channel, ts)
        batch = client.batch()
        batch.set(
            client.collection(MESSAGES).document(message_id),
            {
                "channel": channel,
                "ts": ts,
                "notification": notification.model_dump(mode="json", exclude={"alerts"}),
                "alerts": {doc_id(a.fingerprint): a.model_dump(mode="json") for a in alerts},
                "expire_at": utcnow() + KEEP,
            },
        )
        for alert in alerts:
            batch.set(
                client.collection(THREADS).document(doc_id(alert.fingerprint)),
                {
                    **ThreadRef(
                        fingerprint=alert.fingerprint, channel=channel, ts=ts, message_id=message_id
                    ).model_dump(),
                    "expire_at": utcnow() + KEEP,
                },
            )
        batch.commit()
