"""Text normalisation shared by brand matching, full-text search and classification."""

from __future__ import annotations

import unicodedata

import regex
from bs4 import BeautifulSoup

# Arabic harakat, tanween, shadda, sukun, superscript alef, and tatweel: written optionally,
# so "جدًا" and "جدا" must be the same word for matching and search.
_ARABIC_MARKS = regex.compile(r"[\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED\u0640]")
# Alef with hamza/madda written as bare alef; Russian "ё" written as "е" most of the time.
# (str.replace, not str.translate: translate with a dict runs per character in Python.)
_SAME_LETTER = (("أ", "ا"), ("إ", "ا"), ("آ", "ا"), ("ٱ", "ا"), ("ё", "е"))
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*")
_SPACE = regex.compile(r"\s+")
_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object")
# Lone surrogates (a JSON "\ud83d" cut in half) cannot be encoded as UTF-8, and NUL is refused
# by PostgreSQL and cut by C tools: both become U+FFFD.
_UNSTORABLE = regex.compile(r"[\ud800-\udfff\x00]")


def clean(text: str) -> str:
    """Text that can be stored and encoded anywhere: unstorable characters become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _UNSTORABLE.sub("\ufffd", text)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def fold(text: str) -> str:
    """Case-fold and remove spelling variation that should never split a match."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _ARABIC_MARKS.sub("", text)
    for variant, letter in _SAME_LETTER:
        text = text.replace(variant, letter)
    return text


_LATIN_ACCENT = regex.compile(r"(?<=\p{Latin})\p{Mn}+")


def without_accents(text: str) -> str:
    """Latin letters without their accents (kärkkäinen -> karkkainen), for search, where a
    user types what the keyboard has. Other scripts keep their marks: in Cyrillic (й) and the
    Indic scripts they make different letters."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _LATIN_ACCENT.sub("", decomposed))


def words(text: str) -> list[str]:
    """Folded word tokens, Unicode-aware (Cyrillic, Arabic, Finnish diacritics...)."""
    return _WORD.findall(fold(text))


# Markup left in text after one pass: the feed escaped its HTML twice (Reddit's .rss does:
# "&lt;!-- SC_OFF --&gt;&lt;div class=md&gt;").
_LEFTOVER_MARKUP = regex.compile(r"<(?:!--|/?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>)")


_BLOCK_TAGS = [
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
]  # fmt: skip


def html_to_text(html: str | None) -> str:
    """Plain text of an HTML fragment: markup and scripts dropped, entities decoded; an
    escaped second layer of markup is removed too."""
    text = _one_layer(html)
    if _LEFTOVER_MARKUP.search(text):
        text = _one_layer(text)
    return text


def _one_layer(html: str | None) -> str:
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return _SPACE.sub(" ", html).strip()
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    # Space where a browser breaks the line, none inside inline markup: "#<span>hoot</span>"
    # reads "#hoot", "<p>a</p><p>b</p>" reads "a b".
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before(" ")
        tag.insert_after(" ")
    return _SPACE.sub(" ", soup.get_text()).strip()
