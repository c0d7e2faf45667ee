"""Shared fixtures. Tests never touch the network: pytest-socket (pyproject addopts) allows
loopback only, and the Hugging Face Hub is put in offline mode before anything imports it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from listener.config import Config, parse_config
from listener.storage import Store

FIXTURES = Path(__file__).parent / "fixtures"


def feed_bytes(name: str) -> bytes:
    return (FIXTURES / "feeds" / name).read_bytes()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[[str], Config]:
    """Config from a YAML snippet; the database goes to tmp_path."""

    def make(yaml_text: str) -> Config:
        text = textwrap.dedent(yaml_text)
        if "database:" not in text:
            text = f"database: {tmp_path / 'listener.db'}\n" + text
        return parse_config(text, "sources.yaml", tmp_path)

    return make


@pytest.fixture
def one_source(make_config: Callable[[str], Config], store: Store) -> Callable[..., Config]:
    """A config with one brand and one source (keys as given), synced into the store."""

    def make(brand: str = "Acme", **source: object) -> Config:
        text = json.dumps({"brand": brand, **source})
        config = make_config(f"brands: [{{name: {brand}}}]\nsources: [{text}]\n")
        store.sync_sources(config.sources)
        return config

    return make


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "listener.db")
    yield s
    s.close()


def rss(items: list[dict[str, str]], title: str = "Test feed") -> bytes:
    """A minimal RSS 2.0 document (hand-made fixture)."""
    body = "".join(
        "<item>" + "".join(f"<{k}>{v}</{k}>" for k, v in item.items()) + "</item>"
        for item in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>http://example.com/</link>{body}</channel></rss>"
    ).encode()
