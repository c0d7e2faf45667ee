"""Language detection accuracy per language on bench/data/languages.tsv, both accuracy modes.

    python bench/language.py

The texts are hand-written customer posts (see the file header), several per language, short
and long. A text left undetected (too unclear to call) counts as wrong.
"""

from __future__ import annotations

import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment.language import LanguageDetector

DATA = Path(__file__).parent / "data" / "languages.tsv"


def main() -> None:
    rows = [
        line.split("\t", 1)
        for line in DATA.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    gold = [code for code, _ in rows]
    texts = [text for _, text in rows]
    for accuracy in ("low", "high"):
        detector = LanguageDetector(accuracy=accuracy)
        start = time.perf_counter()
        found = detector.detect(texts)
        seconds = time.perf_counter() - start
        right, total = Counter(), Counter(gold)
        for g, f in zip(gold, found, strict=True):
            right[g] += g == f
        per = "  ".join(f"{c} {right[c]}/{total[c]}" for c in total)
        misses = [(g, f, t[:40]) for g, f, t in zip(gold, found, texts, strict=True) if g != f]
        print(
            f"{accuracy:>4} accuracy: {sum(right.values())}/{len(gold)}  {per}  "
            f"({seconds:.1f} s incl. model load, peak RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
        )
        for g, f, t in misses:
            print(f"      expected {g}, got {f}: {t}")


if __name__ == "__main__":
    main()
