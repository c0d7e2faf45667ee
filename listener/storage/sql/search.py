"""Newest mentions, narrowed by a brand-query-language search over the backend's search index
(its `_narrowing`: FTS5 on SQLite, LIKE and trigrams on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from listener.query import And, Not, Or, Phrase, QuerySyntaxError, parse_query
from listener.query import Node as QueryNode
from listener.storage.errors import InvalidSearchQuery
from listener.storage.sql._base import SQLBase
from listener.textnorm import without_accents, words


class SearchMixin(SQLBase):
    def latest_mentions(
        self, *, brand: str | None = None, search: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Newest mentions with their brands and latest label, optionally filtered.

        `search` is in the brand query language (listener.query); a malformed one raises
        InvalidSearchQuery. The full-text index narrows the candidates, and the query itself
        decides, so a search matches exactly what the same brand query would."""
        where: list[str] = []
        params: list[Any] = []
        if brand:
            where.append("m.id IN (SELECT mention_id FROM mention_brands WHERE brand = ?)")
            params.append(brand)
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
            "SELECT m.id, m.source_id, m.url, m.author, m.title, m.text, m.language, "
            "m.published_at, m.fetched_at, m.rating, "
            f"(SELECT {self._concat('brand', ',')} FROM mention_brands WHERE mention_id = m.id) "
            "AS brands, coalesce((SELECT label FROM corrections WHERE mention_id = m.id), "
            "(SELECT label FROM scores WHERE mention_id = m.id ORDER BY scored_at DESC LIMIT 1)"
            ") AS label, (SELECT needs_review FROM scores WHERE mention_id = m.id "
            "ORDER BY scored_at DESC LIMIT 1) AS needs_review FROM mentions m "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY coalesce(m.published_at, m.fetched_at) DESC, m.id DESC LIMIT ? OFFSET ?"
        )
        if query is None:
            return list(self.db.query(sql, [*params, limit, 0]))
        found: list[dict[str, Any]] = []
        offset, page = 0, max(limit, 200)
        while len(found) < limit:
            rows = list(self.db.query(sql, [*params, page, offset]))
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
            offset += page
        return found[:limit]


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
