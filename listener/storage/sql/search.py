"""Newest mentions, narrowed by a brand-query-language search over the backend's search index
(its `_narrowing`: FTS5 on SQLite, LIKE and trigrams on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from listener.query import And, Not, Or, Phrase, QuerySyntaxError, parse_query
from listener.query import Node as QueryNode
from listener.storage.errors import InvalidSearchQuery
from listener.storage.sql._base import AT, SQLBase
from listener.storage.types import FeedFilter, Model
from listener.textnorm import without_accents, words
from listener.timeutil import iso


class SearchMixin(SQLBase):
    def latest_mentions(
        self, *, brand: str | None = None, search: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Newest mentions with their brands and latest label (any model), optionally
        narrowed by brand and a search (see _newest)."""
        where: list[str] = []
        params: list[Any] = []
        if brand:
            where.append("m.id IN (SELECT mention_id FROM mention_brands WHERE brand = ?)")
            params.append(brand)
        sql = (
            "SELECT m.id, m.source_id, m.url, m.author, m.title, m.text, m.language, "
            "m.published_at, m.fetched_at, m.rating, "
            f"(SELECT {self._concat('brand', ',')} FROM mention_brands WHERE mention_id = m.id) "
            "AS brands, coalesce((SELECT label FROM corrections WHERE mention_id = m.id), "
            "(SELECT label FROM scores WHERE mention_id = m.id ORDER BY scored_at DESC LIMIT 1)"
            ") AS label, (SELECT needs_review FROM scores WHERE mention_id = m.id "
            "ORDER BY scored_at DESC LIMIT 1) AS needs_review FROM mentions m "
        )
        return self._newest(sql, where, params, search, limit, 0)

    def mention_feed(
        self, model: Model, where: FeedFilter, *, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        """A page of the newest mentions that pass every filter, each with its source's kind,
        its brands, the model's label, confidence and review flag, and whether a human
        corrected it. With a brand, the label is that brand's own (as metrics count it)."""
        label = (
            "coalesce(c.label, bs.label, s.label)" if where.brand else "coalesce(c.label, s.label)"
        )
        params: list[Any] = [model[0], model[1] or "", where.brand]
        conditions: list[str] = []
        for clause, value in (
            ("m.id IN (SELECT mention_id FROM mention_brands WHERE brand = ?)", where.brand),
            ("m.source_id = ?", where.source),
            ("coalesce(k.kind, 'social') = ?", where.kind),
            ("m.language = ?", where.language),
            (f"{label} = ?", where.label),
            ("s.needs_review = ?", None if where.needs_review is None else int(where.needs_review)),
            ("m.rating >= ?", where.min_rating),
            ("m.rating <= ?", where.max_rating),
            (f"{AT} >= ?", iso(where.since) if where.since else None),
            (f"{AT} < ?", iso(where.until) if where.until else None),
        ):
            if value is not None:
                conditions.append(clause)
                params.append(value)
        sql = (
            "SELECT m.id, m.source_id, coalesce(k.kind, 'social') AS kind, m.url, m.author, "
            f"m.title, m.text, m.language, {AT} AS at, m.rating, m.reach, "
            f"(SELECT {self._concat('brand', ',')} FROM mention_brands WHERE mention_id = m.id) "
            f"AS brands, {label} AS label, s.score, {self._probabilities()}, s.needs_review, "
            "CASE WHEN c.label IS NULL THEN 0 ELSE 1 END AS corrected "
            "FROM mentions m LEFT JOIN sources k ON k.id = m.source_id "
            "LEFT JOIN scores s ON s.mention_id = m.id AND s.model = ? AND s.revision = ? "
            "LEFT JOIN brand_scores bs ON bs.mention_id = m.id AND bs.brand = ? "
            "AND bs.model = s.model AND bs.revision = s.revision "
            "LEFT JOIN corrections c ON c.mention_id = m.id "
        )
        return self._newest(sql, conditions, params, where.search, limit, offset)

    def _newest(
        self,
        select: str,
        where: list[str],
        params: list[Any],
        search: str | None,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        """`select`'s rows passing `where` and the search, newest first, from `offset` on.
        `search` is in the brand query language (listener.query); a malformed one raises
        InvalidSearchQuery. The full-text index narrows the candidates, and the query itself
        decides, so a search matches exactly what the same brand query would."""
        where = list(where)
        params = list(params)
        # Accents on Latin letters are ignored both ways, as the full-text index does.
        try:
            query = parse_query(without_accents(search)) if search else None
        except QuerySyntaxError as exc:
            raise InvalidSearchQuery(str(exc)) from exc
        if query is not None:
            narrowed = self._narrowing(query.root)
            if narrowed is not None:
                where.append(narrowed[0])
                params.extend(narrowed[1])
        sql = (
            select
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + f"ORDER BY {AT} DESC, m.id DESC LIMIT ? OFFSET ?"
        )
        if query is None:
            return list(self.db.query(sql, [*params, limit, offset]))
        found: list[dict[str, Any]] = []
        at, page = 0, max(limit + offset, 200)
        while len(found) < offset + limit:
            rows = list(self.db.query(sql, [*params, page, at]))
            found += [
                r
                for r in rows
                if query.matches_tokens(
                    words(without_accents(r["title"] or ""))
                    + words(without_accents(r["text"] or ""))
                )
            ]
            if len(rows) < page:
                break
            at += page
        return found[offset : offset + limit]


Condition = tuple[str, list[str]]  # SQL over `m`, and its parameters


def narrowed(node: QueryNode, phrase: Callable[[Phrase], Condition | None]) -> Condition | None:
    """SQL that keeps at least every mention the query matches (None: it cannot narrow), each
    phrase narrowed by `phrase` (the backend's index) and combined as the query combines them.

    Exactness is left to Query.matches: an exclusion narrows nothing, and an OR narrows only
    when each of its branches does."""
    if isinstance(node, Phrase):
        return phrase(node)
    if isinstance(node, Not):
        return None
    if isinstance(node, And):
        found = [c for c in (narrowed(child, phrase) for child in node.children) if c is not None]
        return joined(found, "AND") if found else None
    if isinstance(node, Or):
        each = [narrowed(child, phrase) for child in node.children]
        kept = [c for c in each if c is not None]
        return None if len(kept) < len(each) else joined(kept, "OR")
    raise TypeError(node)


def joined(parts: list[Condition], op: str) -> Condition | None:
    if not parts:
        return None
    return (
        "(" + f" {op} ".join(sql for sql, _ in parts) + ")",
        [p for _, params in parts for p in params],
    )
