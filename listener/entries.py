"""What the pipeline does to a collector's entries before they are matched and stored:
checked (text, links, times made storable) and tagged with their language. Pure functions of
the entries and the settings, so a large pass runs them in worker processes (sources.offload),
together with the parsing a collector left undone.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from listener.config import LanguageSettings
from sentiment.language import LanguageDetector
from sources.base import Entry, FetchResult, check_all, parsed

DETECT_CHARS = 2000  # enough to tell a language; keeps detection cheap on long posts


def prepare(result: FetchResult, settings: LanguageSettings) -> FetchResult:
    """Whatever a collector hands over is read (a body it left unparsed) and made storable
    here; an entry that cannot be is dropped with its reason, and the rest of the fetch is
    kept. Then languages are filled."""
    result = parsed(result)
    entries, unusable = check_all(result.entries)
    fill_languages(entries, settings)
    return dataclasses.replace(result, entries=entries, rejected=result.rejected + unusable)


@lru_cache(maxsize=4)
def _detector(codes: tuple[str, ...], accuracy: str, min_distance: float) -> LanguageDetector:
    return LanguageDetector(codes, accuracy=accuracy, min_distance=min_distance)


# Detection overrides a source's language hint only for texts at least this long: on a few
# words a confident-looking guess can still be wrong, and the hint is the better bet.
OVERRIDE_MIN_CHARS = 40


def fill_languages(entries: list[Entry], settings: LanguageSettings) -> None:
    """Detect languages offline (None when unclear). A source's hint is kept as
    `language_hint`; it stands unless detection is sure of another language on a text long
    enough to tell (a feed marked `en` carrying Finnish reviews), or the source's hint is
    trusted (X's per-post `lang`)."""
    todo = [e for e in entries if not (e.language and e.hint_trusted)]
    for e in entries:
        e.language_hint = e.language
        if e.language:
            e.language_source = "hint"
    if not todo:
        return
    detector = _detector(tuple(settings.detect), settings.accuracy, settings.min_distance)
    texts = [f"{e.title}\n{e.text}"[:DETECT_CHARS] for e in todo]
    for e, text, code in zip(todo, texts, detector.detect(texts), strict=True):
        if not e.language:
            e.language, e.language_source = code, ("detected" if code else None)
        elif code and code != e.language and len(text.strip()) >= OVERRIDE_MIN_CHARS:
            e.language, e.language_source = code, "detected"
