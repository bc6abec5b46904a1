"""Slack's Web API stand-in (chat.postMessage, chat.update, views.open), checking what it receives
as Slack would (token, JSON or form body, channel, Block Kit limits, ``thread_ts``) and answering
like Slack, including ``429`` with ``Retry-After``. It records what it accepted for the tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.fanout.standin_http import JsonHandler, StandInServer

BLOCK_TYPES = {"header", "section", "context", "actions", "divider", "image", "rich_text"}


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


class SlackStandIn(StandInServer):
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


class _SlackHandler(JsonHandler):
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
