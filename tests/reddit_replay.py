"""Serve praw's recorded Reddit cassettes (betamax JSON) from a local HTTP server.

A request is answered by the first recorded interaction with the same method and path whose
recorded query parameters were all sent; every answer is logged so tests can check that the
cassette was played and what was asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug import Request, Response

CASSETTES = Path(__file__).parent / "cassettes" / "reddit"


class RedditReplay:
    def __init__(self, *names: str, extra: list[dict[str, Any]] | None = None) -> None:
        self.interactions: list[dict[str, Any]] = list(extra or [])
        for name in names:
            self.interactions += json.loads((CASSETTES / name).read_text())["interactions"]
        self.played: list[str] = []

    def __call__(self, request: Request) -> Response:
        sent = dict(request.args)
        for it in self.interactions:
            rec = it["request"]
            uri = urlsplit(rec["uri"])
            if rec["method"] != request.method or uri.path != request.path:
                continue
            if any(sent.get(k) != v for k, v in parse_qsl(uri.query)):
                continue
            resp = it["response"]
            self.played.append(request.full_path)
            headers = {
                k: v[0]
                for k, v in resp.get("headers", {}).items()
                if k.lower()
                in (
                    "content-type",
                    "x-ratelimit-reset",
                    "x-ratelimit-remaining",
                    "x-ratelimit-used",
                )
            }
            return Response(
                resp["body"].get("string", ""), status=resp["status"]["code"], headers=headers
            )
        return Response(
            f"no recorded interaction for {request.method} {request.full_path}", status=599
        )
