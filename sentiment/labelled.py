"""Labelled sentiment examples: the public samples shipped in sentiment/data/labelled (see
SOURCES.md there for where each comes from and its licence)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data" / "labelled"
ESTONIAN = {"negatiivne": "negative", "neutraalne": "neutral", "positiivne": "positive"}


@dataclass(frozen=True)
class Example:
    language: str
    label: str  # negative, neutral or positive
    text: str
    source: str


def arsarcasm() -> list[Example]:
    with open(DATA / "ar_arsarcasm_test.csv", encoding="utf-8", newline="") as f:
        # The data set wraps each tweet in one more pair of quotes.
        return [
            Example("ar", row["sentiment"], row["tweet"].strip('"'), "arsarcasm")
            for row in csv.DictReader(f)
        ]


def estonian_valence() -> list[Example]:
    with open(DATA / "et_valence.csv", encoding="utf-8", newline="") as f:
        return [Example("et", ESTONIAN[label], text, "et-valence") for label, text in csv.reader(f)]


def customer_posts() -> list[Example]:
    rows = (
        line.split("\t")
        for line in (DATA / "customer_posts.tsv").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    return [Example(lang, label, text, "customer-posts") for lang, label, text in rows]


def public() -> list[Example]:
    """The published data sets (news and political tweets), for training and evaluation."""
    return arsarcasm() + estonian_valence()


def held_out() -> list[str]:
    """Texts a fine-tuned model must never train on: the customer posts (our blind test) and
    the shipped public samples (listener-1 was trained on them, and its figures, read out of
    fold, are compared with every later model's; the benchmark drops them from its tests)."""
    return [e.text for e in customer_posts() + public()]
