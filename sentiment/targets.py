"""Sentiment toward each brand when a mention names several: "Орвия в сто раз лучше Зентры" is
praise for one and a complaint about the other, not one label for both.

Each brand is scored on the sentences that name it. Where one sentence names two brands and
compares them ("A is far better than B", "A on parem kui B"), the comparison decides: the
brand before a "better" word gets the sentence's polarity, the one after it the opposite
(reversed for "worse" words); otherwise both get the sentence's label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import regex

from listener.query import Query
from listener.textnorm import words

# Sentence ends in the scripts our users write; a line break ends one too.
_SENTENCE = regex.compile(r"(?<=[.!?…。！？؟;])\s+|\n+")

# Comparatives by folded word (textnorm.fold), per language: en bg et fi ar ru.
BETTER = frozenset(
    {
        "better",
        "superior",
        "beats",
        "outperforms",
        "по-добър",
        "по-добра",
        "по-добро",
        "по-добри",
        "по-добре",
        "parem",
        "paremad",
        "paremini",
        "parempi",
        "paremmin",
        "parempia",
        "أفضل",
        "احسن",
        "أحسن",
        "лучше",
        "лучший",
        "лучшая",
        "лучшее",
        "превосходит",
    }
)
WORSE = frozenset(
    {
        "worse",
        "inferior",
        "по-лош",
        "по-лоша",
        "по-лошо",
        "по-лоши",
        "halvem",
        "halvemini",
        "huonompi",
        "huonommin",
        "huonompia",
        "أسوأ",
        "اسوأ",
        "хуже",
        "худший",
        "худшая",
        "уступает",
    }
)
# "better" with a negation before it flips the comparison ("not better than").
NEGATIONS = frozenset({"not", "no", "не", "ei", "pole", "لا", "ليس", "ни"})


@dataclass(frozen=True)
class Passage:
    brand: str
    text: str
    # +1: the comparison favours this brand, -1: it disfavours it, 0: no comparison decides
    comparison: int = 0


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def _bulgarian_comparatives(tokens: Sequence[str]) -> list[str]:
    """Bulgarian writes comparatives as по-добър; word splitting makes that "по", "добър"."""
    out: list[str] = []
    for w in tokens:
        if out and out[-1] == "по" and f"по-{w}" in BETTER | WORSE:
            out[-1] = f"по-{w}"
        else:
            out.append(w)
    return out


def _comparison(tokens: Sequence[str], here: int, other: int) -> int:
    """+1 if the words between the two brands say `here` is the better one, -1 if worse."""
    lo, hi = sorted((here, other))
    between = _bulgarian_comparatives(tokens[lo:hi])
    sign = 0
    for i, w in enumerate(between):
        if w in BETTER or w in WORSE:
            sign = 1 if w in BETTER else -1
            if i and between[i - 1] in NEGATIONS:
                sign = -sign
            break
    if sign == 0:
        return 0
    return sign if here < other else -sign


def passages(text: str, matchers: Mapping[str, Query]) -> list[Passage]:
    """For each brand in `matchers` that the text names: the sentences that name it, and
    whether a comparison with another brand in the same sentence decides its polarity."""
    parts = sentences(text) or [text]
    tokenised = [words(s) for s in parts]
    out = []
    for brand, query in matchers.items():
        chosen, comparison = [], 0
        for sentence, tokens in zip(parts, tokenised, strict=True):
            here = query.positions(tokens)
            if not here:
                continue
            chosen.append(sentence)
            for other_brand, other_query in matchers.items():
                if other_brand == brand or comparison:
                    continue
                others = other_query.positions(tokens)
                if others:
                    comparison = _comparison(tokens, here[0], others[0])
        out.append(Passage(brand, " ".join(chosen) if chosen else text, comparison))
    return out


def brand_label(passage_label: str, comparison: int) -> str:
    """A comparison decides ("A is better than B": A positive, B negative, whatever the
    sentence as a whole reads as); otherwise the brand's passage's own label."""
    return {1: "positive", -1: "negative"}.get(comparison, passage_label)
