"""Which brands a mention belongs to."""

from __future__ import annotations

from collections.abc import Sequence

from listener.config import Brand
from listener.textnorm import words
from sources.base import Entry


def brands_for(entry: Entry, source_brand: str | None, brands: Sequence[Brand]) -> tuple[str, ...]:
    """A source tied to one brand (its alert feed, its app's reviews) needs no match; a general
    feed's entry belongs to every brand whose query it matches, in that brand's languages."""
    if source_brand is not None:
        return (source_brand,)
    tokens = words(f"{entry.title}\n{entry.text}")
    return tuple(
        b.name
        for b in brands
        if (not b.languages or entry.language is None or entry.language in b.languages)
        and b.matcher.matches_tokens(tokens)
    )
