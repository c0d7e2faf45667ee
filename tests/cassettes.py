"""vcrpy replay in praw's discipline: replay only, query strings matched as sets (the recorded
parameters must all be sent; we may send more fields), and a cassette that plays nothing fails.
Recording is refused: the cassettes here are real recordings from tweepy's test suite, or
hand-made ones written by `write_cassette` (marked as such in the test that makes them)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import vcr
import yaml

CASSETTES = Path(__file__).parent / "cassettes"


def _query_subset(r1: Any, r2: Any) -> None:
    sent, recorded = dict(parse_qsl(urlsplit(r1.uri).query)), parse_qsl(urlsplit(r2.uri).query)
    missing = [(k, v) for k, v in recorded if sent.get(k) != v]
    assert not missing, f"recorded parameters not sent: {missing}"


SENT: list[Any] = []  # requests the code under test sent, in order (reset by replay())


def _capture(r1: Any, r2: Any) -> None:
    if not SENT or SENT[-1] is not r1:
        SENT.append(r1)


_vcr = vcr.VCR(
    record_mode="none",
    match_on=["capture", "method", "scheme", "host", "path", "query_subset"],
    filter_headers=["authorization"],
    decode_compressed_response=True,
)
_vcr.register_matcher("query_subset", _query_subset)
_vcr.register_matcher("capture", _capture)


PLACEHOLDER_TOKENS = {"", "test-token"}


def record_mode(env: dict[str, str]) -> str:
    """Replay only, unless LISTENER_RECORD=1 and a real credential is present: recording with
    a placeholder token would store a useless 401 as a 'real' response."""
    if env.get("LISTENER_RECORD") != "1":
        return "none"
    if env.get("X_BEARER_TOKEN", "") in PLACEHOLDER_TOKENS:
        raise RuntimeError("recording refused: set a real X_BEARER_TOKEN to record cassettes")
    return "new_episodes"


@contextmanager
def replay(path: Path, allow_repeats: bool = False) -> Iterator[Any]:
    SENT.clear()
    mode = record_mode(dict(os.environ))
    with _vcr.use_cassette(
        str(path), allow_playback_repeats=allow_repeats, record_mode=mode
    ) as cassette:
        yield cassette
    assert cassette.play_count > 0, f"{path.name} played nothing"


def write_cassette(path: Path, interactions: list[dict[str, Any]]) -> Path:
    """A hand-made cassette: each interaction is {uri, status, headers?, body (JSON-able)}."""
    doc = {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": i.get("method", "GET"),
                    "uri": i["uri"],
                    "body": None,
                    "headers": {},
                },
                "response": {
                    "status": {"code": i["status"], "message": ""},
                    "headers": {
                        "content-type": ["application/json"],
                        **{k: [v] for k, v in i.get("headers", {}).items()},
                    },
                    "body": {"string": json.dumps(i["body"])},
                },
            }
            for i in interactions
        ],
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path
