"""Delivery to real local endpoints: an SMTP server (aiosmtpd) and an HTTP webhook."""

from __future__ import annotations

import email
import json
import socket
from datetime import timedelta
from email.policy import default as email_policy

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from werkzeug import Request, Response

from alerts import engine
from alerts.delivery import build_notifiers, deliver_pending, digest_times
from listener.cli import cli
from listener.config import parse_config
from tests.history import MODEL, NOW, History, Post

HOSTILE = (
    "@channel <!here> [click me](http://evil.example) <script>alert(1)</script> "
    "\u202eevil\u202c **bold** `code` | table & co <@U123>"
)


@pytest.fixture
def smtp():
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(email.message_from_bytes(envelope.content, policy=email_policy))
            return "250 OK"

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, received
    controller.stop()


@pytest.fixture
def webhook(httpserver):
    received = []

    def handler(request: Request) -> Response:
        received.append(json.loads(request.data))
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    return f"json://{httpserver.host}:{httpserver.port}/hook", received


def make(tmp_path, notifiers: str, rule: str = "{rule: low_rating, notify: [mail, hook]}"):
    return parse_config(
        f"brands: [{{name: Acme}}]\nnotifiers: {notifiers}\nalerts: [{rule}]\n", base_dir=tmp_path
    )


def test_email_and_webhook_get_a_readable_alert_once(store, tmp_path, smtp, webhook, monkeypatch):
    port, mails = smtp
    hook_url, hooks = webhook
    monkeypatch.setenv(
        "MAIL_URL",
        f"mailto://127.0.0.1:{port}?from=listener@example.com&to=team@example.com&mode=insecure",
    )
    monkeypatch.setenv("HOOK_URL", hook_url)
    config = make(tmp_path, "[{name: mail, url: '${MAIL_URL}'}, {name: hook, url: '${HOOK_URL}'}]")
    History(store).add(
        Post(
            "negative",
            timedelta(hours=1),
            rating=1,
            author="Mia",
            text="Crashes every time I open it",
        )
    )
    channels = build_notifiers(config)
    engine.evaluate(config, store, MODEL, NOW)
    assert deliver_pending(store, channels, now=NOW) == (2, [])
    assert deliver_pending(store, channels, now=NOW) == (0, [])
    [mail] = mails
    assert mail["Subject"] == "Acme: 1★ review"
    body = mail.get_body(("plain",)).get_content()
    assert "Crashes every time I open it" in body and "https://example.com/" in body
    assert hooks[0]["title"] == "Acme: 1★ review" and "— Mia" in hooks[0]["message"]


def test_untrusted_text_cannot_ping_break_markup_or_hide_links(
    store, tmp_path, webhook, monkeypatch
):
    hook_url, hooks = webhook
    monkeypatch.setenv("HOOK_URL", hook_url)
    config = make(
        tmp_path, "[{name: hook, url: '${HOOK_URL}'}]", "{rule: low_rating, notify: [hook]}"
    )
    History(store).add(
        Post("negative", timedelta(hours=1), rating=1, text=HOSTILE, author="<!channel>")
    )
    engine.evaluate(config, store, MODEL, NOW)
    deliver_pending(store, build_notifiers(config), now=NOW)
    message = hooks[0]["message"]
    for bad in (
        "@channel",
        "<!here>",
        "<!channel>",
        "<@U123>",
        "](http",
        "<script>",
        "\u202e",
        "**",
        "`",
    ):
        assert bad not in message, bad
    assert "click me" in message and "evil.example" in message  # still readable


def test_daily_digest_bundles_a_days_alerts_once(store, tmp_path, webhook, monkeypatch):
    hook_url, hooks = webhook
    monkeypatch.setenv("HOOK_URL", hook_url)
    config = make(
        tmp_path,
        "[{name: hook, url: '${HOOK_URL}', digest: '09:00'}]",
        "{rule: low_rating, notify: [hook]}",
    )
    hist = History(store)
    morning = NOW.replace(hour=8)
    hist.add(
        Post("negative", timedelta(hours=1), rating=1),
        Post("negative", timedelta(hours=2), rating=2),
        now=morning,
    )
    engine.evaluate(config, store, MODEL, morning)
    channels, digests = build_notifiers(config), digest_times(config)
    assert deliver_pending(store, channels, digests, now=morning) == (0, [])  # not 09:00 yet
    assert deliver_pending(store, channels, digests, now=morning.replace(hour=9, minute=5)) == (
        2,
        [],
    )
    assert hooks[0]["title"] == "listener daily digest: 2 alerts"
    assert hooks[0]["message"].count("🔔 Acme:") == 2
    later = morning.replace(hour=15)
    hist.add(Post("negative", timedelta(minutes=5), rating=1), now=later)
    engine.evaluate(config, store, MODEL, later)
    assert deliver_pending(store, channels, digests, now=later) == (0, [])  # already today
    tomorrow = morning + timedelta(days=1, hours=1, minutes=1)
    assert deliver_pending(store, channels, digests, now=tomorrow) == (1, [])
    assert len(hooks) == 2


def test_alerts_test_sends_to_every_channel_and_reports_failures(tmp_path, webhook):
    hook_url, hooks = webhook
    (tmp_path / "sources.yaml").write_text(
        f"brands: [{{name: Acme}}]\nnotifiers:\n  - {{name: hook, url: '{hook_url}'}}\n"
        "  - {name: dead, url: 'json://127.0.0.1:9/nothing-listens-here'}\n"
    )
    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "sources.yaml"), "alerts", "test"])
    assert "console: sent" in result.output and "hook: sent" in result.output
    assert "dead: FAILED" in result.output and result.exit_code == 1
    assert hooks[0]["title"] == "listener test: alerts reach this channel"
