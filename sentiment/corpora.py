"""Public labelled sentiment corpora for training and evaluating the offline model.

Each corpus names its repository, a pinned commit and the sha256 of every file, its licence, how
its labels map to negative/neutral/positive, and which part is held out for testing. Files come
from raw.githubusercontent.com (verified against the pins) or from a local copy laid out as
`DIR/owner/repo/path` (`listener model corpora DIR` writes one on a connected machine).

Splits: where a corpus publishes train/validation/test, those are used; otherwise a text's
split is fixed by a hash of its normalised form (70 % train, 10 % dev, 20 % test), so it never
moves between runs. Training never sees a text that also occurs in any test split (compared
after normalisation: case, user handles, links and spacing do not hide a duplicate).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from listener.textnorm import words
from sentiment.base import LABELS
from sentiment.preprocess import model_text

POLAR = ("negative", "positive")
Fetch = Callable[[str, str], bytes]  # (corpus repo, path) -> bytes


@dataclass(frozen=True)
class Item:
    corpus: str
    language: str
    label: str
    labels: tuple[str, ...]  # what this corpus can say: all three, or negative/positive only
    text: str
    split: str  # train, dev or test
    source: str = ""  # repo@commit:path


@dataclass(frozen=True)
class Corpus:
    name: str
    repo: str
    commit: str
    licence: str
    description: str
    read: Callable[[Corpus, Fetch], Iterator[Item]]
    trainable: bool = True  # False: evaluation only (licence unknown, or a benchmark's test)

    def source(self, path: str) -> str:
        return f"{self.repo}@{self.commit[:12]}:{path}"


def hash_split(text: str) -> str:
    bucket = int(hashlib.sha256(dedup_key(text).encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket < 2 else "dev" if bucket == 2 else "train"


_PLACEHOLDERS = frozenset({"rt", "user", "http"})


def dedup_key(text: str) -> str:
    """Two texts with the same key are the same text for training and testing: the same words
    in the same order, whatever the case, punctuation, handles, links or a retweet prefix."""
    return " ".join(w for w in words(model_text(text)) if w not in _PLACEHOLDERS)


# ---- readers --------------------------------------------------------------------------------

UMSAB_LANGUAGES = {
    "arabic": "ar",
    "english": "en",
    "french": "fr",
    "german": "de",
    "hindi": "hi",
    "italian": "it",
    "portuguese": "pt",
    "spanish": "es",
}
_UMSAB_SPLITS = {"train": "train", "val": "dev", "test": "test"}


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8").split("\n")


def read_umsab(c: Corpus, fetch: Fetch) -> Iterator[Item]:
    for language, code in UMSAB_LANGUAGES.items():
        for split, ours in _UMSAB_SPLITS.items():
            base = f"data/sentiment/{language}/{split}"
            texts = _lines(fetch(c.repo, f"{base}_text.txt"))
            labels = _lines(fetch(c.repo, f"{base}_labels.txt"))
            for text, label in zip(texts, labels, strict=False):
                if text.strip() and label.strip() in ("0", "1", "2"):
                    yield Item(
                        c.name,
                        code,
                        LABELS[int(label)],
                        LABELS,
                        text.strip(),
                        ours,
                        c.source(f"{base}_text.txt"),
                    )


def read_arsarcasm(c: Corpus, fetch: Fetch) -> Iterator[Item]:
    for path, split in (
        ("dataset/ArSarcasm_train.csv", "train"),
        ("dataset/ArSarcasm_test.csv", "test"),
    ):
        for row in csv.DictReader(io.StringIO(fetch(c.repo, path).decode("utf-8"))):
            text = row["tweet"].strip().strip('"').strip()  # each tweet is wrapped in quotes
            if text and row["sentiment"] in LABELS:
                # The published train split has no validation part: a fixed tenth of it is ours.
                ours = split if split == "test" or hash_split(text) != "dev" else "dev"
                yield Item(c.name, "ar", row["sentiment"], LABELS, text, ours, c.source(path))


ESTONIAN = {"negatiivne": "negative", "neutraalne": "neutral", "positiivne": "positive"}


def read_valence(c: Corpus, fetch: Fetch) -> Iterator[Item]:
    path = "valence/korpus.csv"
    for row in csv.reader(io.StringIO(fetch(c.repo, path).decode("utf-8"))):
        if len(row) == 2 and row[0] in ESTONIAN and row[1].strip():
            text = row[1].strip()
            yield Item(
                c.name, "et", ESTONIAN[row[0]], LABELS, text, hash_split(text), c.source(path)
            )


# XED: Plutchik's emotions, 1 anger, 2 anticipation, 3 disgust, 4 fear, 5 joy, 6 sadness,
# 7 surprise, 8 trust. As in the XED paper's binary set: joy and trust are positive; anger,
# disgust, fear and sadness negative; a line with both, or only anticipation or surprise, is
# not used.
_XED_POSITIVE, _XED_NEGATIVE = {5, 8}, {1, 3, 4, 6}


def xed_label(codes: str) -> str | None:
    try:
        found = {int(x) for x in codes.replace(" ", "").split(",") if x}
    except ValueError:
        return None
    pos, neg = bool(found & _XED_POSITIVE), bool(found & _XED_NEGATIVE)
    return "positive" if pos and not neg else "negative" if neg and not pos else None


def read_xed(c: Corpus, fetch: Fetch) -> Iterator[Item]:
    """Polarity from emotions, as in the XED paper's binary set. Its "neutral" files are
    subtitle lines no annotator tagged with an emotion, not lines judged neutral in sentiment,
    and short, clean and numerous: trained on as neutral they taught listener-2 that a short,
    well-formed sentence is neutral ("Terrible service, my order never arrived"). So every XED
    line is polar-only (partial-label loss), and the untagged lines are not used."""
    # annotated by people, then projected from them into other languages
    files = [(c.name, code, f"AnnotatedData/{code}-annotated.tsv") for code in ("fi", "en")]
    files += [
        (f"{c.name}-projected", code, f"Projections/{code}-projections.tsv")
        for code in ("bg", "ru", "et", "ar")
    ]
    for name, code, path in files:
        for line in _lines(fetch(c.repo, path)):
            text, _, codes = line.partition("\t")
            label = xed_label(codes)
            if text.strip() and label:
                yield Item(name, code, label, POLAR, text.strip(), hash_split(text), c.source(path))


def read_sentirueval(c: Corpus, fetch: Fetch) -> Iterator[Item]:
    """Tweets about Russian banks and telecom operators, labelled per company (-1/0/1): a
    tweet whose companies all have one label gets it; conflicting ones are left out."""
    from defusedxml import ElementTree

    for path, domain in (("banks_test_etalon.xml", "banks"), ("tkk_test_etalon.xml", "telecom")):
        root = ElementTree.fromstring(fetch(c.repo, path))
        for table in root.iter("table"):
            cols = {col.get("name"): (col.text or "") for col in table.iter("column")}
            text = cols.pop("text", "").strip()
            for key in ("id", "twitid", "date"):
                cols.pop(key, None)
            found = {v.strip() for v in cols.values() if v.strip() in ("-1", "0", "1")}
            if text and len(found) == 1:
                label = {"-1": "negative", "0": "neutral", "1": "positive"}[found.pop()]
                yield Item(f"{c.name}-{domain}", "ru", label, LABELS, text, "test", c.source(path))


def _decoded(data: bytes) -> str:
    """UTF-8, or Windows-1252 where a mirror saved the file that way (the IMDb part)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_uci_sentences(c: Corpus, fetch: Fetch) -> Iterator[Item]:
    """Sentences from product, restaurant and film reviews, each labelled 0 (negative) or 1
    (positive): short first-person complaints and praise, the register of app-store and
    review-site posts that the tweet corpora lack. Polar-only (partial-label loss)."""
    for name in ("amazon_cells", "yelp", "imdb"):
        path = f"{name}_labelled.txt"
        # the mirror quotes some sentences as CSV does ("a ""quoted"" word"): csv reads both
        for row in csv.reader(_decoded(fetch(c.repo, path)).splitlines(), delimiter="\t"):
            text, label = (row[0].strip(), row[1].strip()) if len(row) == 2 else ("", "")
            if text and label in ("0", "1"):
                yield Item(
                    f"{c.name}-{name.split('_')[0]}",
                    "en",
                    POLAR[int(label)],
                    POLAR,
                    text,
                    hash_split(text),
                    c.source(path),
                )


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus(
            "umsab",
            "cardiffnlp/xlm-t",
            "874214d64d96599eb869a033c22ec2cc57d19256",
            "tweets from SemEval and national shared tasks; see the XLM-T repository for each "
            "data set's terms (repository: Apache-2.0)",
            "UMSAB, the Unified Multilingual Sentiment Analysis Benchmark (Barbieri et al., LREC "
            "2022): tweets in ar, en, fr, de, hi, it, pt, es; published train/validation/test",
            read_umsab,
        ),
        Corpus(
            "arsarcasm",
            "iabufarha/ArSarcasm",
            "62a114b6082e8ef652203605078de4bb16630380",
            "MIT",
            "ArSarcasm (Abu Farha & Magdy, OSACT 2020): Arabic tweets with sentiment and sarcasm",
            read_arsarcasm,
        ),
        Corpus(
            "et-valence",
            "EKT1/valence",
            "c04db8e397ec01e5cc2c8dd6be2abd86aae91cd7",
            "GPL-3.0 (repository); CC BY 4.0 (figshare 24517054)",
            "Estonian Valence Corpus (Pajupuu et al. 2016): paragraphs of news and opinion",
            read_valence,
        ),
        Corpus(
            "xed",
            "Helsinki-NLP/XED",
            "76666d251f147cf518071bef4f8415dab6b96115",
            "CC BY 4.0",
            "XED (Öhman et al., COLING 2020): film subtitles annotated with emotions in fi and en "
            "(with neutral lines), projected to bg, ru, et, ar (polar lines only)",
            read_xed,
        ),
        Corpus(
            "uci",
            "Sudarshan-gurav/NLP",
            "915886f7804d6fd224159805b915a14e510cf0cc",
            "CC BY 4.0 (UCI Machine Learning Repository, data set 331)",
            "Sentiment Labelled Sentences (Kotzias et al., KDD 2015): 3,000 English sentences "
            "from Amazon phone, Yelp restaurant and IMDb film reviews, negative/positive; "
            "from a mirror of the UCI files",
            read_uci_sentences,
        ),
        Corpus(
            "sentirueval",
            "mokoron/sentirueval",
            "95b24c09f55a072cc83cb1f05ceac235905bdf01",
            "not stated: used for evaluation only",
            "SentiRuEval-2016 (Loukachevitch & Rubtsova 2016): Russian tweets about banks and "
            "telecom operators, the shared task's test sets",
            read_sentirueval,
            trainable=False,
        ),
    )
}

# The commit and sha256 of every file each corpus is read from: a download that differs from
# them is refused (written once from the repositories, like a package lock file).
LOCK = Path(__file__).parent / "data" / "corpora.lock.json"
_PINS: dict[str, dict[str, str]] = {
    repo: entry["files"] for repo, entry in json.loads(LOCK.read_text(encoding="utf-8")).items()
}


class CorpusError(Exception):
    pass


def _commit(repo: str) -> str:
    return str(json.loads(LOCK.read_text(encoding="utf-8"))[repo]["commit"])


def _verified(repo: str, path: str, data: bytes) -> bytes:
    want = _PINS.get(repo, {}).get(path)
    got = hashlib.sha256(data).hexdigest()
    if want is None or got != want:
        raise CorpusError(
            f"{repo}:{path}: sha256 {got} is not the pinned {want or '(no pin)'}; refused"
        )
    return data


def local_fetch(root: Path) -> Fetch:
    """Files from a copy laid out as root/owner/repo/path, checked against the pins."""

    def fetch(repo: str, path: str) -> bytes:
        where = root / repo / path
        try:
            return _verified(repo, path, where.read_bytes())
        except FileNotFoundError:
            raise CorpusError(
                f"{where}: missing (get it with `listener model corpora "
                f"{root}` on a connected machine)"
            ) from None

    return fetch


def github_fetch(cache: Path, client: object | None = None) -> Fetch:
    """Files from raw.githubusercontent.com at the pinned commit, kept in cache."""
    from sources.http import conditional_get, make_client

    def fetch(repo: str, path: str) -> bytes:
        where = cache / repo / path
        if where.exists():
            return _verified(repo, path, where.read_bytes())
        url = f"https://raw.githubusercontent.com/{repo}/{_commit(repo)}/{path}"
        with make_client() as own:
            response = conditional_get(client or own, url)  # type: ignore[arg-type]
        data = _verified(repo, path, response.body)
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_bytes(data)
        return data

    return fetch


def load(names: Iterable[str], fetch: Fetch) -> list[Item]:
    items: list[Item] = []
    for name in names:
        if name not in CORPORA:
            raise CorpusError(f"unknown corpus {name!r} (have: {', '.join(CORPORA)})")
        items += CORPORA[name].read(CORPORA[name], fetch)
    return items


def training_set(
    items: Iterable[Item], held_out: Iterable[str] = ()
) -> tuple[list[Item], dict[str, int]]:
    """Train and dev items of trainable corpora, each text once, none that occurs in any test
    split (of these items, or in `held_out` texts such as the customer posts). Returns them and
    how many were dropped, by reason."""
    items = list(items)
    tests = {dedup_key(i.text) for i in items if i.split == "test"} | {
        dedup_key(t) for t in held_out
    }
    evaluation_only = {c.name for c in CORPORA.values() if not c.trainable}
    kept, seen = [], set()
    dropped = {"in a test split": 0, "duplicate": 0}
    for item in items:
        if item.split == "test" or item.corpus.split("-")[0] in evaluation_only:
            continue
        key = dedup_key(item.text)
        if key in tests:
            dropped["in a test split"] += 1
        elif key in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(key)
            kept.append(item)
    return kept, dropped


def write_manifest(items: Iterable[Item], path: Path) -> int:
    """One line per training text: corpus, source, licence, split, language, label, sha256
    of the exact text and of the text as the model sees it (model_text)."""
    licences = {c.name: c.licence for c in CORPORA.values()}
    n = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as out:
        for item in items:
            n += 1
            out.write(
                json.dumps(
                    {
                        "corpus": item.corpus,
                        "source": item.source,
                        "licence": licences.get(item.corpus.split("-")[0], "the user's own data"),
                        "split": item.split,
                        "language": item.language,
                        "label": item.label,
                        "sha256": hashlib.sha256(item.text.encode()).hexdigest(),
                        "sha256_model_text": hashlib.sha256(
                            model_text(item.text).encode()
                        ).hexdigest(),
                    },
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
                + "\n"
            )
    return n


def copy_to(root: Path, fetch: Fetch) -> int:
    """Every pinned file into root/owner/repo/path (for machines without GitHub)."""
    n = 0
    for repo, files in _PINS.items():
        for path in files:
            where = root / repo / path
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_bytes(fetch(repo, path))
            n += 1
    return n
