"""Brand queries: the keyword language users write in sources.yaml.

    acme OR "acme corp"                 either
    acme AND (refund OR broken)         both
    acme -"acme road runner" NOT coyote exclusions
    яндекс*                             prefix: matches Яндекса, Яндексом (inflected languages)

Matching is on folded words (see textnorm.fold): case-insensitive in every script, Arabic
diacritics ignored, and an Arabic term also matches with its attached proclitics (و, ب, ال...).
Operators are upper-case; lower-case "and"/"or" are ordinary words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import regex

from listener.textnorm import fold, words

_ARABIC = regex.compile(r"\p{Arabic}")
# Scripts written without spaces between words: a whole sentence is one token, so a term
# matches anywhere inside a token (アプリ in このアプリは最高).
_UNSPACED = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}"
    r"\p{Myanmar}]"
)
# Proclitics written as part of the next word: and, so, with, like, for, the, and combinations.
PROCLITICS = frozenset(
    {"و", "ف", "ب", "ك", "ل", "ال", "وال", "فال", "بال", "كال", "لل", "ولل", "وب", "ول", "فب", "فل"}
)


class QuerySyntaxError(ValueError):
    def __init__(self, message: str, column: int | None = None) -> None:
        where = f" at column {column + 1}" if column is not None else ""
        super().__init__(f"{message}{where}")


@dataclass(frozen=True)
class _Token:
    kind: str  # WORD, PHRASE, AND, OR, NOT, LPAREN, RPAREN
    value: str
    column: int


def _word_matches(
    token: str, word: str, prefix: bool, arabic: bool, unspaced: bool = False
) -> bool:
    if token == word or (prefix and token.startswith(word)):
        return True
    if unspaced:
        return word in token
    if arabic and token.endswith(word):
        return token[: -len(word)] in PROCLITICS
    if prefix and arabic:
        return any(token.startswith(p + word) for p in PROCLITICS)
    return False


@dataclass(frozen=True)
class Phrase:
    """One or more words that must appear consecutively; a lone word is a one-word phrase."""

    words: tuple[str, ...]
    prefix: bool = False  # the last word may continue (term*)

    @cached_property
    def arabic(self) -> tuple[bool, ...]:
        return tuple(bool(_ARABIC.search(w)) for w in self.words)

    @cached_property
    def unspaced(self) -> tuple[bool, ...]:
        return tuple(bool(_UNSPACED.search(w)) for w in self.words)

    @cached_property
    def simple(self) -> bool:
        """One word in a script with spaces and no proclitics: a set or prefix test."""
        return len(self.words) == 1 and not self.arabic[0] and not self.unspaced[0]

    def matches(self, tokens: Sequence[str]) -> bool:
        if self.simple:  # the common case, without a Python loop
            word = self.words[0]
            return any(t.startswith(word) for t in tokens) if self.prefix else word in tokens
        return bool(self.starts(tokens, first_only=True))

    def positive(self) -> bool:
        return True

    def starts(self, tokens: Sequence[str], first_only: bool = False) -> list[int]:
        """Token positions where this phrase begins."""
        arabic, unspaced = self.arabic, self.unspaced
        n, last = len(self.words), len(self.words) - 1
        # Every way a word matches a token contains the word: most texts lack one of the
        # phrase's words, and one C-level search says so without the loop below.
        haystack = "\x00".join(tokens)
        if any(w not in haystack for w in self.words):
            return []
        found = []
        for start in range(len(tokens) - n + 1):
            if all(
                _word_matches(
                    tokens[start + i], w, self.prefix and i == last, arabic[i], unspaced[i]
                )
                for i, w in enumerate(self.words)
            ):
                found.append(start)
                if first_only:
                    break
        return found


@dataclass(frozen=True)
class Not:
    child: Node

    def matches(self, tokens: Sequence[str]) -> bool:
        return not self.child.matches(tokens)

    def starts(self, tokens: Sequence[str]) -> list[int]:
        return []  # an excluded term never locates the brand

    def positive(self) -> bool:
        return False


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]

    def matches(self, tokens: Sequence[str]) -> bool:
        return all(c.matches(tokens) for c in self.children)

    def positive(self) -> bool:
        return any(c.positive() for c in self.children)

    def starts(self, tokens: Sequence[str]) -> list[int]:
        return sorted({p for c in self.children for p in c.starts(tokens)})


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]

    @cached_property
    def _plan(self) -> tuple[frozenset[str], tuple[str, ...], tuple[Node, ...]]:
        """Lone words (not Arabic) split out: exact ones as a set, prefixes as a tuple for
        str.startswith, so a long keyword list costs one pass over the tokens, not one each."""
        exact: set[str] = set()
        prefixes: list[str] = []
        rest: list[Node] = []
        for c in self.children:
            if isinstance(c, Phrase) and c.simple:
                (prefixes.append if c.prefix else exact.add)(c.words[0])
            else:
                rest.append(c)
        return frozenset(exact), tuple(prefixes), tuple(rest)

    def matches(self, tokens: Sequence[str]) -> bool:
        exact, prefixes, rest = self._plan
        if exact and not exact.isdisjoint(tokens):
            return True
        if prefixes and any(t.startswith(prefixes) for t in tokens):
            return True
        return any(c.matches(tokens) for c in rest)

    def positive(self) -> bool:
        return all(c.positive() for c in self.children)

    def starts(self, tokens: Sequence[str]) -> list[int]:
        return sorted({p for c in self.children for p in c.starts(tokens)})


Node = Phrase | Not | And | Or


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token("LPAREN" if ch == "(" else "RPAREN", ch, i))
            i += 1
        elif ch == '"':
            end = text.find('"', i + 1)
            if end == -1:
                raise QuerySyntaxError("unterminated quote", i)
            tokens.append(_Token("PHRASE", text[i + 1 : end], i))
            i = end + 1
        elif ch == "-" and i + 1 < len(text) and not text[i + 1].isspace():
            tokens.append(_Token("NOT", "-", i))
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in '()"':
                i += 1
            value = text[start:i]
            kind = value if value in ("AND", "OR", "NOT") else "WORD"
            tokens.append(_Token(kind, value, start))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.end = len(text)

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise QuerySyntaxError("query is empty")
        node = self.parse_or()
        extra = self.peek()
        if extra is not None:
            raise QuerySyntaxError(f"unexpected {extra.value!r}", extra.column)
        return node

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Node:
        children = [self.parse_unary()]
        while (tok := self.peek()) is not None and tok.kind not in ("OR", "RPAREN"):
            if tok.kind == "AND":
                self.take()
            children.append(self.parse_unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_unary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise QuerySyntaxError("query ends where a term was expected", self.end - 1)
        if tok.kind == "NOT":
            self.take()
            return Not(self.parse_unary())
        return self.parse_atom()

    def parse_atom(self) -> Node:
        tok = self.take()
        if tok.kind == "LPAREN":
            node = self.parse_or()
            close = self.peek()
            if close is None or close.kind != "RPAREN":
                raise QuerySyntaxError("unbalanced parenthesis opened", tok.column)
            self.take()
            return node
        if tok.kind in ("WORD", "PHRASE"):
            prefix = tok.kind == "WORD" and tok.value.endswith("*")
            ws = tuple(words(tok.value.rstrip("*") if prefix else tok.value))
            if not ws:
                raise QuerySyntaxError(f"{tok.value!r} has no letters or digits", tok.column)
            return Phrase(ws, prefix)
        raise QuerySyntaxError(f"expected a term, found {tok.value!r}", tok.column)


@dataclass(frozen=True)
class Query:
    text: str
    root: Node

    def matches(self, text: str) -> bool:
        return self.root.matches(words(text))

    def matches_tokens(self, tokens: Sequence[str]) -> bool:
        """Match pre-tokenised text (textnorm.words), to tokenise once for many brands."""
        return self.root.matches(tokens)

    def positions(self, tokens: Sequence[str]) -> list[int]:
        """Where in the tokens the query's terms occur (the brand's name, for a brand query)."""
        return self.root.starts(tokens) if self.root.matches(tokens) else []


def parse_query(text: str) -> Query:
    root = _Parser(text).parse()
    if not root.positive():
        raise QuerySyntaxError("query must require at least one term (it only excludes)")
    return Query(text, root)


__all__ = [
    "PROCLITICS",
    "And",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Query",
    "QuerySyntaxError",
    "fold",
    "parse_query",
]
