"""Offline language detection with lingua (its models ship inside the wheel).

The source's own hint (xml:lang, a tweet's `lang`) wins; detection fills the gaps. Short or
ambiguous texts ("ok", "😍") get no language rather than a confident guess.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

# Low accuracy mode: trigram models only, ~60 MB for these languages and fast; high accuracy
# loads up to 5-gram models (~850 MB for the same list) and is better on very short texts.
DEFAULT_LANGUAGES = (
    "en",
    "bg",
    "et",
    "fi",
    "ar",
    "ru",
    "uk",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "nl",
    "sv",
    "da",
    "nb",
    "pl",
    "cs",
    "sk",
    "tr",
    "lv",
    "lt",
    "el",
    "he",
    "hi",
    "ja",
    "zh",
    "ko",
    "ro",
    "hu",
    "sr",
    "hr",
    "sl",
)


class LanguageDetector:
    def __init__(
        self,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        accuracy: str = "low",
        min_distance: float = 0.1,
    ) -> None:
        self.codes = [c.lower() for c in languages]
        self.accuracy = accuracy
        self.min_distance = min_distance
        self._detector: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in self.codes]
        builder = LanguageDetectorBuilder.from_languages(*langs)
        if self.accuracy == "low":
            builder = builder.with_low_accuracy_mode()
        return builder.with_minimum_relative_distance(self.min_distance).build()

    def detect(self, texts: Sequence[str]) -> list[str | None]:
        """ISO 639-1 code per text, or None when the text does not say clearly."""
        with self._lock:
            if self._detector is None:
                self._detector = self._build()
        found = self._detector.detect_languages_in_parallel_of(list(texts))
        return [lang.iso_code_639_1.name.lower() if lang else None for lang in found]


def valid_code(code: str) -> bool:
    from lingua import IsoCode639_1

    return hasattr(IsoCode639_1, code.upper())
