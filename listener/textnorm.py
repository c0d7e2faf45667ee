"""Text normalisation shared by brand matching, full-text search and classification."""

from __future__ import annotations

import unicodedata

import regex
from bs4 import BeautifulSoup

# Arabic harakat, tanween, shadda, sukun, superscript alef, and tatweel: written optionally,
# so "جدًا" and "جدا" must be the same word for matching and search.
_ARABIC_MARKS = regex.compile(r"[\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED\u0640]")
_ALEF_VARIANTS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا"})
# Russian writes "ё" as "е" most of the time; treat them as one letter when searching.
_YO = str.maketrans({"ё": "е"})
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*")
_SPACE = regex.compile(r"\s+")
_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object")


def fold(text: str) -> str:
    """Case-fold and remove spelling variation that should never split a match."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _ARABIC_MARKS.sub("", text)
    return text.translate(_ALEF_VARIANTS).translate(_YO)


def words(text: str) -> list[str]:
    """Folded word tokens, Unicode-aware (Cyrillic, Arabic, Finnish diacritics...)."""
    return _WORD.findall(fold(text))


def html_to_text(html: str | None) -> str:
    """Plain text of an HTML fragment: markup and scripts dropped, entities decoded."""
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return _SPACE.sub(" ", html).strip()
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    return _SPACE.sub(" ", soup.get_text(" ")).strip()
