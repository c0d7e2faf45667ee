"""Language detection accuracy per language: the hand-written customer posts of
bench/data/languages.tsv in both accuracy modes, and with `--corpora DIR` the public corpora's
test splits, fastText-then-lingua (what runs) against lingua alone, with the CPU each costs.

    python bench/language.py [--corpora DIR]

The hand-written texts are several per language, short and long. A text left undetected (too
unclear to call) counts as wrong. The corpora (`listener model corpora DIR` fetches them) are
tweets, subtitles, news and reviews in 11 languages; UMSAB's Hindi tweets are romanised and
left out (no detector here reads Hindi in Latin letters). The thresholds of the fastText path
were chosen on the corpora's train and dev splits; this reads the test splits.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment import corpora
from sentiment.language import LanguageDetector

DATA = Path(__file__).parent / "data" / "languages.tsv"
PER_LANGUAGE = 1500  # texts sampled per language from the test splits


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tally(gold: list[str], found: list[str | None]) -> tuple[Counter[str], Counter[str]]:
    """(right answers, texts) per gold language."""
    right, total = Counter[str](), Counter(gold)
    for g, f in zip(gold, found, strict=True):
        right[g] += g == f
    return right, total


def hand_written() -> None:
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
        right, total = tally(gold, found)
        per = "  ".join(f"{c} {right[c]}/{total[c]}" for c in total)
        misses = [(g, f, t[:40]) for g, f, t in zip(gold, found, texts, strict=True) if g != f]
        print(
            f"{accuracy:>4} accuracy: {sum(right.values())}/{len(gold)}  {per}  "
            f"({seconds:.1f} s incl. model load, peak RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
        )
        for g, f, t in misses:
            print(f"      expected {g}, got {f}: {t}")


def public_test_splits(directory: Path) -> None:
    by_language: defaultdict[str, list[str]] = defaultdict(list)
    for item in corpora.load(corpora.CORPORA, corpora.local_fetch(directory)):
        if item.split == "test" and item.language != "hi":
            by_language[item.language].append(item.text)
    rng = random.Random(0)
    rows = [
        (code, text[:2000])
        for code, texts in sorted(by_language.items())
        for text in rng.sample(texts, min(PER_LANGUAGE, len(texts)))
    ]
    gold, texts = [c for c, _ in rows], [t for _, t in rows]
    results = {}
    for name, fast in (("lingua alone", False), ("fastText, then lingua", True)):
        detector = LanguageDetector(fast=fast)
        detector.detect(texts[:1])  # models loaded outside the timing
        start = cpu_seconds()
        found = detector.detect(texts)
        results[name] = (cpu_seconds() - start, found)
    print(f"public test splits: {len(texts):,} texts in {len(by_language)} languages")
    for name, (seconds, found) in results.items():
        right, total = tally(gold, found)
        overall = sum(right.values()) / len(gold)
        per = {c: right[c] / total[c] for c in sorted(total)}
        undetected = sum(f is None for f in found) / len(found)
        print(
            f"  {name:<22} accuracy {overall:.3f} ({undetected:.1%} undetected), "
            f"{seconds / len(texts) * 1e6:.0f} µs CPU a text; "
            + " ".join(f"{c} {a:.3f}" for c, a in per.items())
        )
    (slow, _), (quick, _) = results.values()
    print(f"  fastText, then lingua: {slow / quick:.1f}x less CPU than lingua alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, help="pinned corpus files: also the test splits")
    args = parser.parse_args()
    hand_written()
    if args.corpora:
        public_test_splits(args.corpora)


if __name__ == "__main__":
    main()
