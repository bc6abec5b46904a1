"""Local stand-ins of the vendors fan-out talks to, each checking what it receives as the vendor
would: Slack's Web API (chat.postMessage, chat.update), PagerDuty's Events API v2 and an SMTP
server (aiosmtpd) receiving real mail. Each records what it accepted, for the tests to assert on.
"""

from __future__ import annotations

import contextlib
import email
import json
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from devtools.processes import free_port

BLOCK_TYPES = {"header", "section", "context", "actions", "divider", "image", "rich_text"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}


class _Server:
    """A threaded HTTP server on a free port, stopped by ``close``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.httpd.standin = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.lock = threading.Lock()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


# --- Slack ------------------------------------------------------------------------------------


@dataclass
class SlackMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    updates: list[dict[str, Any]] = field(default_factory=list)
    received_at: float = field(default_factory=time.monotonic)  # for the benches' latencies

    def all_text(self) -> str:
        return json.dumps({"text": self.text, "blocks": self.blocks})


class SlackStandIn(_Server):
    """Slack's Web API at ``base_url``: Bearer token, JSON or form bodies, ``{"ok": ...}`` answers."""

    def __init__(self, token: str = "xoxb-test-token", channel: str = "C0ALERTS") -> None:
        super().__init__(_SlackHandler)
        self.token = token
        self.channels = {channel}
        self.messages: list[SlackMessage] = []
        self.calls: list[tuple[float, str, int]] = []  # (monotonic time, method, status)
        self.ratelimit_next = 0
        self.retry_after = 1
        self.fail_with: str | None = None
        self.views: list[dict[str, Any]] = []  # modals opened (views.open)
        self._seq = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def top_level(self) -> list[SlackMessage]:
        return [m for m in self.messages if m.thread_ts is None]

    def replies(self, ts: str) -> list[SlackMessage]:
        return [m for m in self.messages if m.thread_ts == ts]

    def find(self, ts: str) -> SlackMessage:
        return next(m for m in self.messages if m.ts == ts)

    def next_ts(self) -> str:
        self._seq += 1
        return f"{int(time.time())}.{self._seq:06d}"


def _slack_problem(blocks: Any) -> str | None:
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            return "invalid_blocks"
        if block["type"] == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text" or not (0 < len(text.get("text", "")) <= 150):
                return "invalid_blocks"
        if block["type"] == "section":
            if "text" not in block and "fields" not in block:
                return "invalid_blocks"
            if len(block.get("fields", [])) > 10 or len((block.get("text") or {}).get("text", "")) > 3000:
                return "invalid_blocks"
            if any(not 0 < len(f.get("text", "")) <= 2000 for f in block.get("fields", [])):
                return "invalid_blocks"  # each field's text: 1 to 2000 characters
        if block["type"] == "context":
            elements = block.get("elements", [])
            if not 0 < len(elements) <= 10 or any(len(e.get("text", "")) > 3000 for e in elements):
                return "invalid_blocks"
        if block["type"] == "actions":
            elements = block.get("elements", [])
            if not 0 < len(elements) <= 25:
                return "invalid_blocks"
            for element in elements:
                if element.get("type") == "button" and _button_problem(element):
                    return "invalid_blocks"
        if len(str(block.get("block_id", ""))) > 255:
            return "invalid_blocks"
    ids = [b["block_id"] for b in blocks if isinstance(b, dict) and "block_id" in b]
    if len(ids) != len(set(ids)):
        return "invalid_blocks"  # Slack: block_id must be unique within a message
    return None


def _button_problem(button: dict[str, Any]) -> bool:
    """Slack's button: plain_text text of at most 75 characters, an action_id of at most 255
    (required for an interactive button), a value of at most 2000, a url (if any) http(s)."""
    text = button.get("text") or {}
    if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 75:
        return True
    url = button.get("url")
    if url is not None and not str(url).startswith(("http://", "https://")):
        return True
    if url is None and not button.get("action_id"):
        return True
    if len(str(button.get("action_id", ""))) > 255 or len(str(button.get("value", ""))) > 2000:
        return True
    return button.get("style") not in (None, "primary", "danger")


class _SlackHandler(_Handler):
    @staticmethod
    def _open_view(slack: SlackStandIn, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """views.open: a trigger_id (from an interaction) and a modal view with a title of at most
        24 characters, at most 100 blocks and private_metadata of at most 3000 characters."""
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not args.get("trigger_id"):
            return 200, {"ok": False, "error": "invalid_trigger_id"}, {}
        if not isinstance(view, dict) or view.get("type") != "modal":
            return 200, {"ok": False, "error": "invalid_arguments"}, {}
        title = (view.get("title") or {}).get("text", "")
        blocks = view.get("blocks")
        if not 0 < len(title) <= 24 or not isinstance(blocks, list) or len(blocks) > 100:
            return 200, {"ok": False, "error": "invalid_arguments"}, {}
        if len(view.get("private_metadata", "")) > 3000:
            return 200, {"ok": False, "error": "invalid_arguments"}, {}
        slack.views.append({"trigger_id": args["trigger_id"], "view": view})
        return 200, {"ok": True, "view": {"id": f"V{len(slack.views):08d}", **view}}, {}

    def do_POST(self) -> None:
        slack: SlackStandIn = self.server.standin  # type: ignore[attr-defined]
        method = self.path.rsplit("/", 1)[-1]
        raw = self._body()
        with slack.lock:
            status, body, headers = self._handle(slack, method, raw)
            slack.calls.append((time.monotonic(), method, status))
        self._answer(status, body, headers)

    def _handle(
        self, slack: SlackStandIn, method: str, raw: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self.headers.get("Authorization") != f"Bearer {slack.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if slack.ratelimit_next > 0:
            slack.ratelimit_next -= 1
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(slack.retry_after)}
        if slack.fail_with:
            return (
                500 if slack.fail_with == "internal_error" else 200,
                {"ok": False, "error": slack.fail_with},
                {},
            )
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            args = json.loads(raw)
        elif ctype.startswith("application/x-www-form-urlencoded"):
            args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            if isinstance(args.get("blocks"), str):
                args["blocks"] = json.loads(args["blocks"])
        else:
            return 200, {"ok": False, "error": "invalid_form_data"}, {}
        if method == "views.open":
            return self._open_view(slack, args)
        channel = args.get("channel")
        if channel not in slack.channels:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if not args.get("text") and not args.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        if "blocks" in args and (problem := _slack_problem(args["blocks"])):
            return 200, {"ok": False, "error": problem}, {}
        if method == "chat.postMessage":
            thread_ts = args.get("thread_ts")
            if thread_ts is not None and not any(
                m.ts == thread_ts and m.channel == channel for m in slack.messages
            ):
                return 200, {"ok": False, "error": "thread_not_found"}, {}
            message = SlackMessage(
                channel=channel,
                ts=slack.next_ts(),
                text=args.get("text", ""),
                blocks=args.get("blocks", []),
                thread_ts=thread_ts,
                reply_broadcast=bool(args.get("reply_broadcast")),
            )
            slack.messages.append(message)
            return (
                200,
                {"ok": True, "channel": channel, "ts": message.ts, "message": {"text": message.text}},
                {},
            )
        if method == "chat.update":
            target = next(
                (m for m in slack.messages if m.ts == args.get("ts") and m.channel == channel), None
            )
            if target is None:
                return 200, {"ok": False, "error": "message_not_found"}, {}
            target.updates.append({"text": args.get("text", ""), "blocks": args.get("blocks", [])})
            return 200, {"ok": True, "channel": channel, "ts": target.ts, "text": args.get("text", "")}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}


# --- PagerDuty --------------------------------------------------------------------------------


class PagerDutyStandIn(_Server):
    """Events API v2 at ``url``: validates each event and answers 202 like PagerDuty."""

    def __init__(self, routing_key: str = "R0UT1NGKEY0123456789ABCDEFGHIJKL") -> None:
        super().__init__(_PagerDutyHandler)
        self.routing_key = routing_key
        self.events: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # monotonic time of each accepted event (benches)
        self.rejected: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        # An outage for some incidents only: dedup_key -> the status answered for its events.
        self.fail_for: dict[str, int] = {}
        # A slow PagerDuty: each request is answered this many seconds late (and then taken).
        self.delay_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/enqueue"


def pagerduty_errors(event: Any, routing_key: str) -> list[str]:
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    errors = []
    if event.get("routing_key") != routing_key:
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in {"trigger", "acknowledge", "resolve"}:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if action in {"acknowledge", "resolve"} and not dedup:
        errors.append("'dedup_key' is missing or blank")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                errors.append("'payload.summary' is missing, blank or longer than 1024")
            if not payload.get("source"):
                errors.append("'payload.source' is missing or blank")
            if payload.get("severity") not in PD_SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                )
            for optional in ("component", "group", "class"):
                if optional in payload and not isinstance(payload[optional], str):
                    errors.append(f"'payload.{optional}' must be a string when given")
    return errors


class _PagerDutyHandler(_Handler):
    def do_POST(self) -> None:
        pd: PagerDutyStandIn = self.server.standin  # type: ignore[attr-defined]
        raw = self._body()
        if pd.delay_seconds:
            time.sleep(pd.delay_seconds)
        if pd.fail_status:
            self._answer(pd.fail_status, {"status": "unavailable", "message": "try again"})
            return
        try:
            event = json.loads(raw)
        except ValueError:
            self._answer(
                400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["bad JSON"]}
            )
            return
        failing = pd.fail_for.get(event.get("dedup_key")) if isinstance(event, dict) else None
        if failing:
            self._answer(failing, {"status": "unavailable", "message": "try again"})
            return
        errors = pagerduty_errors(event, pd.routing_key)
        with pd.lock:
            if errors:
                pd.rejected.append(event)
            else:
                pd.events.append(event)
                pd.received_at.append(time.monotonic())
        if errors:
            self._answer(
                400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            )
            return
        self._answer(
            202, {"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")}
        )


# --- SMTP -------------------------------------------------------------------------------------


class SmtpServer:
    """aiosmtpd on a free port, keeping every mail it accepts; ``refuse`` makes RCPT answer 550."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.mails: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = False
        self.controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class _SmtpHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.server.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        self.server.mails.append(message)  # type: ignore[arg-type]
        self.server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"
