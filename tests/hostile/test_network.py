"""Reaching inside: which addresses a fetch may dial, and for how long.

Every test here talks to loopback only. Addresses elsewhere are handed out by a resolver stub and
"dialled" by a dialer stub that records the address and refuses, so no packet ever leaves the
machine, not even towards an address the code is expected to refuse.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from datetime import timedelta

import httpcore
import pytest
import requests

from listener.pipeline import collect_due
from listener.scheduler import Monitor
from listener.timeutil import utcnow
from sources.base import FetchError
from sources.http import conditional_get, make_client
from sources.net import is_public, system_dialer
from tests.cassettes import CASSETTES, replay
from tests.conftest import rss
from tests.hostile.servers import dribbling_server

LATER = utcnow() + timedelta(days=1)
FEED = rss([{"title": "acme", "guid": "1"}])


class Dialer:
    """Records every address it is asked to dial; dials loopback only, refuses the rest."""

    def __init__(self) -> None:
        self.dialled: list[str] = []

    def __call__(self, ip, port, timeout, local_address, options):
        self.dialled.append(ip)
        if not ipaddress.ip_address(ip).is_loopback:
            raise httpcore.ConnectError(f"test dialer: {ip} is not loopback, not dialled")
        return system_dialer(ip, port, timeout, local_address, options)


def resolver(*answers):
    """Answers the n-th lookup with answers[n] (the last one repeats): a rebinding DNS."""
    calls = []

    def resolve(host, port):
        answer = answers[min(len(calls), len(answers) - 1)]
        calls.append(host)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    resolve.calls = calls
    return resolve


def test_dns_rebinding_dials_the_address_that_was_checked(httpserver):
    httpserver.expect_request("/f.xml").respond_with_data(FEED)
    port = httpserver.port
    # First answer public, every later one loopback: a second lookup would reach 127.0.0.1.
    dns, dial = resolver(["93.184.216.34"], ["127.0.0.1"]), Dialer()
    with (
        make_client(allow_private=False, resolver=dns, dialer=dial) as client,
        pytest.raises(FetchError) as refused,
    ):
        conditional_get(client, f"http://rebind.example:{port}/f.xml")
    assert dns.calls == ["rebind.example"]  # resolved once
    assert dial.dialled == ["93.184.216.34"]  # and the checked address was the one dialled
    assert "not loopback, not dialled" in str(refused.value)
    assert len(httpserver.log) == 0  # 127.0.0.1 never saw the request


def test_a_failed_lookup_refuses_the_request(httpserver):
    httpserver.expect_request("/f.xml").respond_with_data(FEED)
    dns, dial = resolver(socket.gaierror(-2, "Name or service not known")), Dialer()
    with (
        make_client(allow_private=False, resolver=dns, dialer=dial) as client,
        pytest.raises(FetchError) as refused,
    ):
        conditional_get(client, f"http://nowhere.example:{httpserver.port}/f.xml")
    assert "cannot resolve nowhere.example" in str(refused.value)
    assert dial.dialled == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # metadata (AWS)
        "100.100.100.200",  # Alibaba Cloud metadata, in the shared range 100.64.0.0/10
        "100.64.0.1",
        "0.0.0.0",
        "192.0.0.170",
        "198.18.0.1",
        "224.0.0.251",
        "255.255.255.255",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 around 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 around the metadata address
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2001::1",  # Teredo
    ],
)
def test_special_purpose_addresses_are_refused(address, httpserver):
    dns, dial = resolver([address]), Dialer()
    with (
        make_client(allow_private=False, resolver=dns, dialer=dial) as client,
        pytest.raises(FetchError) as refused,
    ):
        conditional_get(client, "http://inside.example/f.xml")
    assert "not a public address" in str(refused.value)
    assert dial.dialled == []


def test_one_private_answer_among_public_ones_refuses_the_name():
    dns, dial = resolver(["93.184.216.34", "127.0.0.1"]), Dialer()
    with (
        make_client(allow_private=False, resolver=dns, dialer=dial) as client,
        pytest.raises(FetchError, match="not a public address"),
    ):
        conditional_get(client, "http://mixed.example/f.xml")
    assert dial.dialled == []


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "2606:4700::1111",
        "64:ff9b::5db8:d822",  # NAT64 around a public address
        "2002:5db8:d822::1",
    ],
)  # 6to4 around a public address
def test_public_addresses_pass_the_check(address):
    assert is_public(ipaddress.ip_address(address))
    dns, dial = resolver([address]), Dialer()
    with (
        make_client(allow_private=False, resolver=dns, dialer=dial) as client,
        pytest.raises(FetchError),  # the stub dialer refuses: no packet is sent
    ):
        conditional_get(client, "http://public.example/f.xml")
    assert dial.dialled == [address]


def test_redirects_are_checked_at_every_hop(httpserver):
    httpserver.expect_request("/start").respond_with_data(
        "", status=302, headers={"Location": "http://inside.example/latest"}
    )
    dns = resolver(["127.0.0.1"])
    seen = []

    def only_the_first_hop(host, port):
        seen.append(host)
        return ["127.0.0.1"] if host == "feeds.example" else dns(host, port)

    with (
        make_client(allow_private=False, resolver=only_the_first_hop, dialer=Dialer()) as c,
        pytest.raises(FetchError, match="not a public address"),
    ):
        conditional_get(c, f"http://127.0.0.1:{httpserver.port}/start")
    assert len(httpserver.log) == 0  # even the first hop is loopback, and refused


def test_private_addresses_are_allowed_by_default(httpserver):
    httpserver.expect_request("/f.xml").respond_with_data(FEED)
    with make_client() as client:  # network.allow_private_addresses defaults to true
        assert conditional_get(client, httpserver.url_for("/f.xml")).body == FEED


def test_x_requests_carry_a_timeout(one_source, store, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "test-token")
    config = one_source("Tweepy", name="x", type="x", query="Tweepy", max_pages=1)
    timeouts = []
    original = requests.adapters.HTTPAdapter.send

    def spy(self, request, **kwargs):
        timeouts.append(kwargs.get("timeout"))
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    with replay(CASSETTES / "x" / "test_client_search_recent_tweets.yaml", allow_repeats=True):
        [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None
    assert timeouts and all(t == (10.0, 30.0) for t in timeouts)  # tweepy itself passes None


def test_shutdown_cuts_a_fetch_stuck_on_a_silent_server(make_config, store):
    with dribbling_server(send_headers_slowly=False) as url:
        config = make_config(
            f"brands: [{{name: Acme}}]\nsources: [{{name: stuck, type: rss, url: '{url}'}}]\n"
        )
        monitor = Monitor(config, shutdown_grace=1.0)
        monitor.start()
        deadline = time.monotonic() + 30
        while "stuck" not in monitor.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert monitor.running() == ["stuck"]
        start = time.monotonic()
        stopper = threading.Thread(target=monitor.stop)
        stopper.start()
        stopper.join(15)
        took = time.monotonic() - start
    assert not stopper.is_alive(), "shutdown waited on the stuck fetch"
    assert took < 10  # the grace period (1 s here, 10 s by default), then the cut
    row = store.db["sources"].get("stuck")
    # A cut fetch is ours, not the source's failure: nothing recorded, fetched next start.
    assert row["consecutive_failures"] == 0 and row["last_error"] is None
