"""Shared fixtures. Tests never touch the network: pytest-socket (pyproject addopts) allows
loopback only, and the Hugging Face Hub is put in offline mode before anything imports it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json
import shutil
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from listener.config import Config, parse_config
from listener.storage import Storage, open_store

FIXTURES = Path(__file__).parent / "fixtures"
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
# The system's Chromium (Debian: `apt-get install chromium`), else Playwright's own download.
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
# A slow or busy machine (CI beside other jobs) must not fail a browser test by timing out.
BROWSER_TIMEOUT_MS = 120_000


def feed_bytes(name: str) -> bytes:
    return (FIXTURES / "feeds" / name).read_bytes()


@pytest.fixture(autouse=True)
def _no_paused_checks() -> Iterator[None]:
    """A platform check paused by one test's failing server never carries into the next."""
    from alerts import replies

    yield
    replies._paused.clear()


@pytest.fixture
def make_config(tmp_path: Path, database: str) -> Callable[[str], Config]:
    """Config from a YAML snippet; the database is the test's (a file in tmp_path, or a
    PostgreSQL database in contract tests)."""

    def make(yaml_text: str) -> Config:
        text = textwrap.dedent(yaml_text)
        if "database:" not in text:
            text = f"database: {database}\n" + text
        return parse_config(text, "sources.yaml", tmp_path)

    return make


@pytest.fixture
def one_source(make_config: Callable[[str], Config], store: Storage) -> Callable[..., Config]:
    """A config with one brand and one source (keys as given), synced into the store."""

    def make(brand: str = "Acme", **source: object) -> Config:
        text = json.dumps({"brand": brand, **source})
        config = make_config(f"brands: [{{name: {brand}}}]\nsources: [{text}]\n")
        store.sync_sources(config.sources)
        return config

    return make


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that stores anything runs once per storage backend, except those marked
    `sqlite_only`: they test the embedded file itself (its lock, its size, its journal)."""
    if "backend" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", BACKENDS[:1] if only_sqlite else BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | None]:
    from tests.postgres import server

    with server() as url:
        yield url


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@contextmanager
def storage_for(backend: str, where: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Where a test's storage lives: a SQLite file in `where`, or a fresh PostgreSQL database
    (skipped, saying why, where no PostgreSQL server can be started)."""
    if backend == "sqlite":
        yield str(where / "listener.db")
        return
    admin = request.getfixturevalue("postgres_server")
    if admin is None:
        pytest.skip("no PostgreSQL server here (install Debian's postgresql package)")
    from tests.postgres import fresh_database

    with fresh_database(admin) as url:
        yield url


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    with storage_for(backend, tmp_path, request) as url:
        yield url


@pytest.fixture
def store(database: str) -> Iterator[Storage]:
    s = open_store(database)
    yield s
    s.close()


def rss(items: list[dict[str, str]], title: str = "Test feed") -> bytes:
    """A minimal RSS 2.0 document (hand-made fixture)."""
    body = "".join(
        "<item>" + "".join(f"<{k}>{v}</{k}>" for k, v in item.items()) + "</item>" for item in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>http://example.com/</link>{body}</channel></rss>"
    ).encode()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright, shared by all tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        if CHROMIUM is None and not Path(p.chromium.executable_path).exists():
            pytest.fail(
                "no Chromium: `apt-get install chromium`, or `.venv/bin/python -m playwright "
                "install chromium` (README's test command does one or the other)"
            )
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            timeout=BROWSER_TIMEOUT_MS,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    # Only loopback: a page that tried to load anything from elsewhere would fail visibly.
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(
                ("http://127.0.0.1", "http://localhost", "http://[::1]", "data:", "about:")
            )
            else route.abort()
        ),
    )
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    context.set_default_navigation_timeout(BROWSER_TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()
