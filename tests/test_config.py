from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from listener.cli import cli
from listener.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).parent.parent

VALID = """\
brands:
  - name: Acme
    query: 'acme OR "acme corp"'
    competitors: [Globex]
  - name: Globex
sources:
  - name: news
    type: rss
    url: https://example.com/feed.xml
    interval: 10m
notifiers:
  - name: hook
    url: ${HOOK_URL}
alerts:
  - rule: negative_streak
    count: 4
    notify: [console, hook]
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [(p.line, p.path, p.message) for p in info.value.problems]


def test_valid_config_expands_env_and_keeps_the_secret_out_of_repr(monkeypatch):
    monkeypatch.setenv("HOOK_URL", "json://127.0.0.1/secret-token")
    config = parse_config(VALID)
    assert config.sources[0].interval.total_seconds() == 600
    assert config.notifiers[0].url.get_secret_value() == "json://127.0.0.1/secret-token"
    assert "secret-token" not in repr(config)
    assert config.brand("Globex").matcher.matches("GLOBEX is down")


def test_every_problem_is_reported_with_its_path_and_line(monkeypatch):
    monkeypatch.delenv("HOOK_URL", raising=False)
    text = VALID.replace("interval: 10m", "interval: soon\n    colour: red").replace(
        "count: 4", "count: zero"
    )
    found = problems(text)
    assert (
        10,
        "sources[0].interval",
        "'soon' is not a duration; use e.g. 30s, 15m, 1h or 1d",
    ) in found
    assert (11, "sources[0].colour", "unknown key 'colour'") in found
    assert (14, "notifiers[0].url", "environment variable HOOK_URL is not set") in found
    assert any(line == 17 and path == "alerts[0].count" for line, path, _ in found)


def test_references_to_unknown_brands_and_notifiers_are_errors(monkeypatch):
    monkeypatch.setenv("HOOK_URL", "json://127.0.0.1/")
    text = VALID.replace("[Globex]", "[Initech]").replace("[console, hook]", "[pager]")
    found = problems(text + "  - rule: negative_streak\n    brand: Nobody\n")
    assert (4, "brands[0].competitors[0]", "no brand named 'Initech'") in found
    assert any(p == "alerts[0].notify[0]" and "no notifier named 'pager'" in m for _, p, m in found)
    assert (19, "alerts[1].brand", "no brand named 'Nobody'") in found


def test_bad_query_names_the_column():
    found = problems("brands:\n  - name: A\n    query: 'acme AND (\"x\" OR'\n")
    assert found[0][:2] == (3, "brands[0].query")
    assert "column" in found[0][2]


def test_non_http_feed_url_and_unknown_source_type_are_refused():
    found = problems(
        "brands: [{name: A}]\nsources:\n  - {name: s, type: rss, url: 'file:///etc/passwd'}\n"
        "  - {name: t, type: telepathy}\n"
    )
    assert any(p == "sources[0].url" and "http(s)" in m for _, p, m in found)
    assert any(p == "sources[1].type" for _, p, _ in found)


def test_yaml_that_constructs_objects_is_refused():
    found = problems("brands: !!python/object/apply:os.system ['echo pwned']\n")
    assert found[0][0] == 1
    assert "not valid YAML" in found[0][2]


def test_yaml_syntax_error_has_a_line():
    found = problems("brands:\n  - name: A\n   bad: [\n")
    assert found[0][0] is not None
    assert "not valid YAML" in found[0][2]


def test_duplicate_names_are_errors():
    found = problems("brands: [{name: A}, {name: A}]\n")
    assert (1, "brands[1].name", "duplicate name 'A'") in found


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_database_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "sources.yaml").write_text("database: data/x.db\nbrands: [{name: A}]\n")
    assert load_config(tmp_path / "sources.yaml").database_path() == tmp_path / "data/x.db"


def test_the_committed_example_is_valid():
    config = load_config(ROOT / "sources.yaml")
    assert {b.name for b in config.brands} >= {"Spotify", "Deezer"}
    # Runs with no keys: keyless types only, and Bluesky only as keyless account feeds.
    keyless = {"rss", "appstore", "hackernews", "bluesky", "mastodon"}
    assert {s.type for s in config.sources} <= keyless
    assert all(s.accounts for s in config.sources if s.type == "bluesky")
    assert not any(s.mentions for s in config.sources if s.type == "mastodon")


def test_validate_command_prints_problems_and_exits_nonzero(tmp_path, monkeypatch):
    monkeypatch.delenv("HOOK_URL", raising=False)
    path = tmp_path / "sources.yaml"
    path.write_text(VALID)
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert f"{path}:13: notifiers[0].url: environment variable HOOK_URL is not set" in (
        result.output
    )
    monkeypatch.setenv("HOOK_URL", "json://127.0.0.1/")
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 0, result.output
    assert "ok (2 brands, 1 sources" in result.output
