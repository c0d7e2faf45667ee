"""A sources.yaml written by someone else: bounded to read, refused with the line named."""

from __future__ import annotations

import tracemalloc

import pytest

from listener.config import ConfigError, parse_config

LAUGHS = """\
brands: [{name: Acme}]
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_an_alias_bomb_is_refused_before_it_expands():
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as refused:
            parse_config(LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (
        "sources.yaml:3: (top level): YAML aliases expand this file past 200,000 values; "
        "refused" in str(refused.value)
    )
    assert peak < 50 * 1024 * 1024  # was 5.9 GB and climbing


def test_a_self_referring_alias_is_refused():
    with pytest.raises(ConfigError, match=r"sources\.yaml:1: .*refers to the node that contains"):
        parse_config("a: &a [*a]\nbrands: [{name: Acme}]\n")


def test_nesting_deeper_than_the_parser_can_follow_is_refused():
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_config("brands: " + "[" * 5000 + "]" * 5000)


def test_too_many_aliases_are_refused_with_the_line():
    text = "brands: [{name: Acme}]\nx: &x 1\ny: [" + ", ".join(["*x"] * 1500) + "]\n"
    with pytest.raises(ConfigError, match=r"sources\.yaml:3: .*more than 1000 YAML aliases"):
        parse_config(text)


def test_ordinary_aliases_still_work():
    config = parse_config("""\
brands: [{name: Acme}]
notifiers: [{name: hook, url: 'json://127.0.0.1:9/'}]
alerts:
  - {rule: negative_streak, notify: &team [console, hook]}
  - {rule: low_rating, notify: *team}
""")
    assert [r.notify for r in config.alerts] == [["console", "hook"], ["console", "hook"]]
