"""Search narrowing through SQLite's FTS5 index (mentions_search)."""

from __future__ import annotations

from listener.query import PROCLITICS, Phrase
from listener.storage.sql.search import Condition, joined

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


def fts_phrase(node: Phrase) -> Condition | None:
    """A phrase through FTS5; words of scripts written without spaces, which the index cannot
    see inside, with instr instead."""
    parts: list[Condition] = []
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
    return joined(parts, "AND")
