"""X (Twitter) API v2 via tweepy: recent search, or mentions of the brand's own account.

Billing: X charges per post read, so each source can carry a monthly read budget; the reads used
are kept in the source's cursor (stored with the mentions in one transaction).
"""

from __future__ import annotations

import builtins
import html
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, model_validator
from requests.adapters import HTTPAdapter

from listener import secrets
from listener.timeutil import time_or_none, utcnow
from sources import register
from sources.base import (
    Entry,
    FetchError,
    FetchResult,
    SourceConfig,
    SourceState,
    normalise_each,
)
from sources.rss import content_hash

TWEET_FIELDS = [
    "created_at",
    "lang",
    "author_id",
    "public_metrics",
    "conversation_id",
    "referenced_tweets",
    "note_tweet",
]
USER_FIELDS = ["username", "name", "public_metrics"]
EXPANSIONS = ["author_id", "referenced_tweets.id", "referenced_tweets.id.author_id"]
SEARCH_WINDOW = timedelta(days=7)
# tweepy's DEBUG log prints request headers, bearer token included: never let it log DEBUG.
logging.getLogger("tweepy").setLevel(logging.INFO)
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0


class TimeoutHTTPAdapter(HTTPAdapter):
    """A requests adapter with a default timeout, as lemon24/reader does for its session."""

    def __init__(self, *args: Any, timeout: float | tuple[float, float], **kwargs: Any) -> None:
        self.timeout = timeout
        super().__init__(*args, **kwargs)

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


# X answers 403 with this code when the account's access tier lacks the endpoint.
NO_ACCESS_CODES = {453}


class XSource(SourceConfig):
    type: Literal["x"]
    query: str | None = Field(default=None, description="X search query (recent search)")
    mentions_of: str | None = Field(
        default=None, description="numeric user id of the brand's account: its mentions"
    )
    bearer_token_env: str = Field(
        default="X_BEARER_TOKEN", description="environment variable holding the bearer token"
    )
    max_results: int = Field(default=100, ge=10, le=100, description="posts per page")
    max_pages: int = Field(default=10, ge=1, description="pages per fetch at most")
    monthly_read_budget: int | None = Field(
        default=None, ge=1, description="posts read per calendar month (UTC) at most"
    )

    @model_validator(mode="after")
    def _one_target(self) -> XSource:
        if (self.query is None) == (self.mentions_of is None):
            raise ValueError("give exactly one of `query` or `mentions_of`")
        return self

    def endpoint(self) -> str:
        return f"x:search:{self.query}" if self.query else f"x:mentions:{self.mentions_of}"


def month_key(now: datetime) -> str:
    return now.strftime("%Y-%m")


def next_month(now: datetime) -> datetime:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def _entry(tweet: dict[str, Any], users: dict[str, dict[str, Any]], retweets: int) -> Entry:
    author = users.get(tweet.get("author_id", ""), {})
    handle = author.get("username")
    created = tweet.get("created_at")
    raw = {"tweet": tweet, "author": author, "retweets_seen": retweets}
    # A long post's `text` is cut at 280 characters; `note_tweet` holds all of it. X escapes
    # &, < and > as HTML entities in both: "AT&amp;T" must read (and match) as "AT&T".
    note = tweet.get("note_tweet") or {}
    text = html.unescape(note.get("text") or tweet.get("text", ""))
    return Entry(
        external_id=tweet["id"],
        url=f"https://x.com/{handle or 'i/web'}/status/{tweet['id']}",
        author=handle,
        title="",
        text=text,
        html=None,
        language=None if tweet.get("lang") in (None, "und", "zxx") else tweet["lang"],
        published_at=time_or_none(created),
        content_hash=content_hash(text, handle),
        reach=(author.get("public_metrics") or {}).get("followers_count"),
        raw=raw,
        hint_trusted=True,  # X detects each post's language itself
    )


def fold_retweets(
    data: list[dict[str, Any]], includes: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A retweet is not a new opinion: keep its original (from `includes`) once, count RTs."""
    included = {t["id"]: t for t in includes.get("tweets", [])}
    kept: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for tweet in data:
        original = next(
            (r["id"] for r in tweet.get("referenced_tweets", []) if r.get("type") == "retweeted"),
            None,
        )
        if original is None:
            kept.setdefault(tweet["id"], tweet)
            continue
        counts[original] = counts.get(original, 0) + 1
        if original in included:
            kept.setdefault(original, included[original])
    return list(kept.values()), counts


@register
class XCollector:
    type: ClassVar[str] = "x"
    config_model: ClassVar[builtins.type[SourceConfig]] = XSource

    def fetch(self, source: XSource, state: SourceState, client: httpx.Client) -> FetchResult:
        import tweepy

        token = secrets.register_env(source.bearer_token_env)
        if not token:
            raise FetchError(
                f"{source.endpoint()}: set the environment variable "
                f"{source.bearer_token_env} to an X API bearer token"
            )
        api = tweepy.Client(bearer_token=token, return_type=dict, wait_on_rate_limit=False)
        # tweepy passes no timeout to requests: without one a stalled connection hangs forever.
        adapter = TimeoutHTTPAdapter(timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        api.session.mount("https://", adapter)
        api.session.mount("http://", adapter)
        now = utcnow()
        cursor = dict(state.cursor)
        month = month_key(now)
        reads = cursor.get("reads", {}).get(month, 0)
        budget = source.monthly_read_budget
        if budget is not None and reads + source.max_results > budget:
            raise FetchError(
                f"{source.endpoint()}: monthly read budget used ({reads} of {budget} posts); "
                f"paused until {next_month(now):%Y-%m-%d}",
                retry_after=next_month(now) - now,
            )
        params: dict[str, Any] = {
            "max_results": source.max_results,
            "tweet_fields": TWEET_FIELDS,
            "user_fields": USER_FIELDS,
            "expansions": EXPANSIONS,
        }
        # A fetch where a page failed goes on from that page at the next fetch, under the same
        # since_id; only when every page is read does since_id move to the newest post.
        resume = cursor.get("resume") or {}
        since_id = resume.get("since_id") if resume else cursor.get("since_id")
        if since_id:
            params["since_id"] = since_id
        else:
            # Recent search and mentions reach back 7 days; start just inside that window.
            params["start_time"] = now - SEARCH_WINDOW + timedelta(minutes=1)
        data: list[dict[str, Any]] = []
        includes: dict[str, list[dict[str, Any]]] = {"users": [], "tweets": []}
        newest: str | None = resume.get("newest")
        token_: str | None = resume.get("token")
        warnings: list[str] = []
        stopped: FetchError | None = None
        pages = 0
        restarted = False
        while pages < source.max_pages:
            if budget is not None and reads + source.max_results > budget:
                break
            try:
                page = self._page(api, source, params, token_)
            except FetchError as exc:
                if (
                    exc.http_status == 400
                    and not pages
                    and not restarted
                    and ("since_id" in params or token_)
                ):
                    # X answers 400 for a since_id older than its 7-day window (after
                    # downtime, or a month paused by the read budget) or an expired page
                    # token: start again inside the window and say what was missed.
                    restarted = True
                    params.pop("since_id", None)
                    start = now - SEARCH_WINDOW + timedelta(minutes=1)
                    params["start_time"] = start
                    token_, newest = None, None
                    warnings.append(
                        f"coverage gap: X would not go on from the last fetch ({exc}); "
                        f"reading again from {start:%Y-%m-%d %H:%M} UTC, the oldest it "
                        "serves: posts before that were not read"
                    )
                    continue
                if not pages:
                    raise
                stopped = exc
                break
            pages += 1
            reads += page.get("meta", {}).get("result_count", len(page.get("data", [])))
            data += page.get("data", [])
            for key in includes:
                includes[key] += page.get("includes", {}).get(key, [])
            newest = newest or page.get("meta", {}).get("newest_id")
            token_ = page.get("meta", {}).get("next_token")
            if not token_:
                break
        if stopped is not None:
            cursor["resume"] = {
                "token": token_,
                "since_id": params.get("since_id"),
                "newest": newest,
            }
            warnings.append(
                f"stopped after {pages} pages: page {pages + 1} failed "
                f"({stopped}); the rest is read at the next fetch"
            )
        else:
            cursor.pop("resume", None)
            if newest:
                cursor["since_id"] = newest  # stored with every page's posts, one transaction
            if token_:  # the newest posts first: freshness over an old backlog
                warnings.append(
                    f"coverage gap: more new posts than {source.max_pages} pages of "
                    f"{source.max_results} (or the read budget) allow; older ones in between "
                    "were not read (raise max_pages or fetch more often)"
                )
        users = {u["id"]: u for u in includes["users"]}
        tweets, retweets = fold_retweets(data, includes)
        cursor["reads"] = {month: reads}  # every read counted, a failed run's too
        entries, rejected = normalise_each(
            tweets,
            lambda t: _entry(t, users, retweets.get(t["id"], 0)),
            lambda i, t: f"post {str(t.get('id'))[:40]!r}",
        )
        return FetchResult(
            entries,
            SourceState(url=state.url, cursor=cursor),
            http_status=200,
            rejected=rejected,
            warnings=warnings,
            retry_after=stopped.retry_after if stopped else None,
        )

    def _page(
        self, api: Any, source: XSource, params: dict[str, Any], token: str | None
    ) -> dict[str, Any]:
        import tweepy

        extra = {"pagination_token": token} if token else {}
        try:
            if source.query:
                extra = {"next_token": token} if token else {}
                return api.search_recent_tweets(source.query, **params, **extra)
            return api.get_users_mentions(source.mentions_of, **params, **extra)
        except tweepy.TooManyRequests as exc:
            reset = exc.response.headers.get("x-rate-limit-reset")
            wait = (datetime.fromtimestamp(int(reset), UTC) - utcnow()) if reset else None
            raise FetchError(
                f"{source.endpoint()}: HTTP 429 rate limited by X",
                http_status=429,
                retry_after=wait,
            ) from None
        except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
            codes = set(getattr(exc, "api_codes", []) or [])
            status = exc.response.status_code
            why = (
                "this endpoint is not included in the X account's access tier"
                if codes & NO_ACCESS_CODES or status == 403
                else "the bearer token was refused"
            )
            raise FetchError(
                f"{source.endpoint()}: HTTP {status} from X: {why}; source disabled. Fix the "
                "token or the account's plan, then change the source's query to re-enable it.",
                http_status=status,
                disable=True,
            ) from None
        except tweepy.TwitterServerError as exc:
            raise FetchError(
                f"{source.endpoint()}: HTTP {exc.response.status_code} from X",
                http_status=exc.response.status_code,
            ) from None
        except tweepy.HTTPException as exc:
            raise FetchError(
                f"{source.endpoint()}: HTTP {exc.response.status_code} from X: "
                f"{'; '.join(exc.api_messages) or exc}",
                http_status=exc.response.status_code,
            ) from None
        except Exception as exc:  # requests' connection errors, timeouts
            raise FetchError(f"{source.endpoint()}: {type(exc).__name__}: {exc}") from None
