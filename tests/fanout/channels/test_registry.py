"""Channels register themselves with the settings they need; a route's channel without them is
delivered by the log channel standing in for it."""

from __future__ import annotations

import pytest

from functions.fanout.channels.email import EmailChannel
from functions.fanout.channels.log import LogChannel
from functions.fanout.channels.pagerduty import PagerDutyChannel
from functions.fanout.channels.registry import build_channel, configured, kinds, missing_settings
from functions.fanout.settings import FanoutSettings


def test_every_channel_module_registers_its_name_and_required_settings() -> None:
    registered = kinds()
    assert {name: kind.requires for name, kind in registered.items()} == {
        "slack": ("slack_bot_token", "slack_channel"),
        "pagerduty": ("pagerduty_routing_key",),
        "email": ("smtp_host", "alert_email_to"),
        # A personal notice's own recipient: mail needs a relay, not the team's list.
        "contact": ("smtp_host",),
    }


def test_missing_settings_are_named_by_their_environment_variables() -> None:
    settings = FanoutSettings(SLACK_BOT_TOKEN="xoxb-1")
    assert missing_settings("slack", settings) == ["SLACK_CHANNEL"]
    assert missing_settings("email", settings) == ["SMTP_HOST", "ALERT_EMAIL_TO"]
    assert not configured("slack", settings)
    with pytest.raises(ValueError, match="email needs SMTP_HOST and ALERT_EMAIL_TO"):
        EmailChannel(settings)


def test_a_configured_channel_is_built_and_an_unconfigured_one_is_logged_instead() -> None:
    settings = FanoutSettings(PAGERDUTY_ROUTING_KEY="rk", ION_FANOUT_OUTBOX="")
    assert isinstance(build_channel("pagerduty", settings), PagerDutyChannel)
    stand_in = build_channel("slack", settings)
    assert isinstance(stand_in, LogChannel)
    assert stand_in.instead_of == "slack"
    log = build_channel("log", settings)
    assert isinstance(log, LogChannel)
    assert log.instead_of is None
