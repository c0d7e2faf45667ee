"""Newest mentions, narrowed by a brand-query-language search over the search index
(SQLite's FTS5 here; a backend may narrow its own way, see `_narrowing`)."""

from __future__ import annotations

from typing import Any

from listener.query import PROCLITICS, And, Not, Or, Phrase, QuerySyntaxError, parse_query
from listener.query import Node as QueryNode
from listener.storage.errors import InvalidSearchQuery
from listener.storage.sql._base import SQLBase
from listener.textnorm import without_accents, words


class SearchMixin(SQLBase):
    @staticmethod
    def _narrowing(node: QueryNode) -> tuple[str, list[str]] | None:
        """SQL keeping at least every mention the query matches (None: it cannot narrow)."""
        return _search_condition(node)

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


_IN_INDEX = "m.id IN (SELECT rowid FROM mentions_search WHERE mentions_search MATCH ?)"
_IN_UNSPACED = (
    "m.id IN (SELECT rowid FROM mentions_search WHERE instr(title, ?) > 0 OR instr(text, ?) > 0)"
)


def _fts_word(word: str, prefix: bool, arabic: bool) -> str:
    """One query word as an FTS5 expression: quoted (so no input is FTS syntax), with the
    Arabic proclitic forms the brand matcher accepts."""
    star = "*" if prefix else ""
    forms = [word] + ([p + word for p in sorted(PROCLITICS)] if arabic else [])
    quoted = ['"' + f.replace('"', '""') + '"' + star for f in forms]
    return quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")"


def _search_condition(node: QueryNode) -> tuple[str, list[str]] | None:
    """SQL that keeps at least every mention the query matches (None: it cannot narrow).

    Exactness is left to Query.matches: the index cannot see inside words of scripts written
    without spaces (found with instr instead), and an exclusion narrows nothing."""
    if isinstance(node, Phrase):
        parts: list[tuple[str, list[str]]] = []
        indexed = []
        for i, w in enumerate(node.words):
            prefix = node.prefix and i == len(node.words) - 1
            if node.unspaced[i]:
                parts.append((_IN_UNSPACED, [w, w]))
            else:
                indexed.append(_fts_word(w, prefix, node.arabic[i]))
        if indexed:
            if len(indexed) == len(node.words) and not any(node.arabic):
                # A plain phrase: FTS5 checks adjacency itself.
                text = '"' + " ".join(w.replace('"', '""') for w in node.words) + '"'
                indexed = [text + ("*" if node.prefix else "")]
            parts.append((_IN_INDEX, [" AND ".join(indexed)]))
        return _joined(parts, "AND")
    if isinstance(node, Not):
        return None
    if isinstance(node, And):
        found = [c for c in map(_search_condition, node.children) if c is not None]
        return _joined(found, "AND") if found else None
    if isinstance(node, Or):
        each = [_search_condition(c) for c in node.children]
        kept = [c for c in each if c is not None]
        return None if len(kept) < len(each) else _joined(kept, "OR")
    raise TypeError(node)


def _joined(parts: list[tuple[str, list[str]]], op: str) -> tuple[str, list[str]] | None:
    if not parts:
        return None
    return (
        "(" + f" {op} ".join(sql for sql, _ in parts) + ")",
        [p for _, params in parts for p in params],
    )
