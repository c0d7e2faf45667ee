"""Alert messages built from hostile mention URLs: delivered to a real local webhook, inert."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts import engine
from alerts.delivery import build_notifiers, deliver_pending
from alerts.inbox import sync_inbox
from listener.config import parse_config
from listener.urls import message_link
from tests.history import MODEL, NOW, History, Post
from tests.test_delivery import webhook  # noqa: F401  (the fixture)

EVIL = (
    "https://x.example/@everyone <!channel> <@U024BE7LH> "
    "[Reset your password](https://evil.example/login)"
)
PINGS_AND_MARKUP = ("@everyone", "<!channel>", "<@U024BE7LH>", "[Reset", "](https", "<", ">")


@pytest.mark.parametrize(
    ("rule", "ago"),
    [("{rule: low_rating, notify: [hook]}", 1), ("{rule: overdue, notify: [hook]}", 72)],
)
def test_a_mention_url_cannot_ping_or_disguise_a_link(
    store,
    tmp_path,
    webhook,  # noqa: F811
    monkeypatch,
    rule,
    ago,
):
    hook_url, hooks = webhook
    monkeypatch.setenv("HOOK_URL", hook_url)
    config = parse_config(
        f"brands: [{{name: Acme}}]\nnotifiers: [{{name: hook, url: "
        f"'${{HOOK_URL}}'}}]\nalerts: [{rule}]\n",
        base_dir=tmp_path,
    )
    History(store).add(
        Post("negative", timedelta(hours=ago), rating=1, url=EVIL, text="charged twice")
    )
    sync_inbox(config, store, MODEL, NOW - timedelta(days=2))  # an item now overdue
    engine.evaluate(config, store, MODEL, NOW)
    assert deliver_pending(store, build_notifiers(config), now=NOW)[0] == 1
    message = hooks[0]["message"]
    for bad in PINGS_AND_MARKUP:
        assert bad not in message, bad
    assert "https://x.example/%40everyone%20%3C%21channel%3E" in message  # still the link


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("javascript:alert(1)", None),
        ("https://bank.example@evil.example/login", "https://evil.example/login"),
        ("https://пример.рф/отзыв", "https://xn--e1afmkfd.xn--p1ai/%D0%BE%D1%82%D0%B7%D1%8B%D0%B2"),
        ("https://ok.example/a_b~c*d", "https://ok.example/a%5Fb%7Ec%2Ad"),
        ("https://ok.example/p?q=1&r=2#top", "https://ok.example/p?q=1&r=2#top"),
    ],
)
def test_links_in_messages(url, shown):
    assert message_link(url) == shown
