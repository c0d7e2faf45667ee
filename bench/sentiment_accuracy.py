"""Accuracy of the offline sentiment models on public test splits none of them trained on.

    python bench/sentiment_accuracy.py --corpora DIR [--model listener-3] [--baseline listener-1]
                                       [--limit N]

DIR holds the pinned corpus files (`listener model corpora DIR` writes it; see
sentiment/corpora.py). Every test split is read once, here; training chose everything on dev.

Reported, for the model and the baseline in the same run (same texts, same machine):
- macro-F1 and accuracy per test set and language; for a negative/positive-only set, F1 over
  those two with the prediction taken between them, and how often the model said neutral;
- UMSAB's 8 languages beside the published XLM-T predictions (cardiffnlp/xlm-t);
- neutral read as opinion: the share of gold-neutral items given a polarity;
- sarcasm (ArSarcasm's sarcastic tweets apart);
- confidence: with the model's review threshold, the share flagged and the accuracy of the
  rest, against all;
- complaints: the share of gold-negative items labelled negative (argmax over all three labels,
  as the product reads it) and the precision of "negative", on the customer posts, the
  three-label public sets and the negative/positive ones;
- per-brand labels on SentiRuEval tweets that name several companies with labels of their own;
- speed: texts/s on the same texts, both models, best of 3 alternating rounds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from listener.query import parse_query
from listener.tables import format_table
from sentiment import corpora
from sentiment.base import LABELS
from sentiment.e5_offline import E5OfflineClassifier
from sentiment.heads import macro_f1
from sentiment.labelled import customer_posts, public
from sentiment.targets import brand_label, passages

UMSAB_ORDER = list(corpora.UMSAB_LANGUAGES.values())  # the order of predictions/all.txt
XLMT_LINES = 870


def xlmt_predictions(fetch: corpora.Fetch) -> dict[str, list[str]]:
    """The published XLM-T predictions on UMSAB's test split, per language."""
    preds = fetch("cardiffnlp/xlm-t", "predictions/sentiment/all.txt").decode().split("\n")
    return {
        lang: [LABELS[int(p)] for p in preds[i * XLMT_LINES : (i + 1) * XLMT_LINES] if p.strip()]
        for i, lang in enumerate(UMSAB_ORDER)
    }


def predicted(probs: np.ndarray, allowed: tuple[str, ...]) -> list[str]:
    cols = [LABELS.index(label) for label in allowed]
    return [allowed[int(i)] for i in probs[:, cols].argmax(1)]


def score_sets(items: list[corpora.Item], probs: np.ndarray) -> dict[str, dict[str, float]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[f"{item.corpus} {item.language}"].append(i)
    out = {}
    for name, idx in sorted(groups.items()):
        allowed = items[idx[0]].labels
        gold = [items[i].label for i in idx]
        got = predicted(probs[idx], allowed)
        row = {
            "n": len(idx),
            "F1": macro_f1(got, gold, allowed),
            "acc": sum(g == p for g, p in zip(gold, got, strict=True)) / len(idx),
        }
        full = [LABELS[int(k)] for k in probs[idx].argmax(1)]
        if len(allowed) == 2:
            row["said neutral"] = full.count("neutral") / len(idx)
        else:
            neutral = [f for f, g in zip(full, gold, strict=True) if g == "neutral"]
            row["neutral->polar"] = (
                sum(f != "neutral" for f in neutral) / len(neutral) if neutral else float("nan")
            )
        out[name] = row
    return out


def complaints(items: list[corpora.Item], probs: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """Per kind of set, (negatives caught, negatives, mentions called negative), reading the
    label as the product does (argmax over all three): a missed complaint is the costliest
    error for the people who act on the labels."""
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for item, p in zip(items, probs, strict=True):
        kind = (
            "customer posts"
            if item.corpus == "customer-posts"
            else "public three-label sets"
            if len(item.labels) == 3
            else "public negative/positive sets"
        )
        said = LABELS[int(p.argmax())] == "negative"
        kinds[kind][0] += said and item.label == "negative"
        kinds[kind][1] += item.label == "negative"
        kinds[kind][2] += said
    return {k: (v[0], v[1], v[2]) for k, v in kinds.items()}


def coverage(
    items: list[corpora.Item], probs: np.ndarray, threshold: float
) -> tuple[float, float, float]:
    """(share flagged, accuracy of all, accuracy of the unflagged), three-label sets only."""
    idx = [i for i, item in enumerate(items) if len(item.labels) == 3]
    gold = np.array([LABELS.index(items[i].label) for i in idx])
    p = probs[idx]
    right = p.argmax(1) == gold
    keep = p.max(1) >= threshold
    return float(1 - keep.mean()), float(right.mean()), float(right[keep].mean())


COMPANIES = {  # SentiRuEval's columns, as brand queries
    "beeline": "билайн* OR beeline* OR билайна",
    "mts": "мтс* OR mts*",
    "megafon": "мегафон* OR megafon*",
    "tele2": 'теле2* OR tele2* OR "теле 2"',
    "rostelecom": "ростелеком* OR rostelecom*",
    "komstar": "комстар* OR komstar*",
    "skylink": "скайлинк* OR skylink*",
    "sberbank": "сбер* OR sber*",
    "vtb": "втб* OR vtb*",
    "gazprom": "газпром* OR gazprom*",
    "alfabank": "альфа* OR alfa*",
    "bankmoskvy": '"банк москвы" OR "банка москвы"',
    "raiffeisen": "райф* OR raif*",
    "uralsib": "уралсиб* OR uralsib*",
    "rshb": "россельхоз* OR рсхб*",
}


def multi_company_tweets(fetch: corpora.Fetch) -> list[tuple[str, dict[str, str]]]:
    """SentiRuEval tweets labelled for two or more companies that it names."""
    from defusedxml import ElementTree

    out = []
    for path in ("banks_test_etalon.xml", "tkk_test_etalon.xml"):
        for table in ElementTree.fromstring(fetch("mokoron/sentirueval", path)).iter("table"):
            cols = {c.get("name"): (c.text or "").strip() for c in table.iter("column")}
            labels = {
                k: {"-1": "negative", "0": "neutral", "1": "positive"}[v]
                for k, v in cols.items()
                if k in COMPANIES and v in ("-1", "0", "1")
            }
            if len(labels) >= 2:
                out.append((cols.get("text", ""), labels))
    return out


def per_brand(
    clf: E5OfflineClassifier, tweets: list[tuple[str, dict[str, str]]]
) -> tuple[float, float, int]:
    """(accuracy with one label per tweet, accuracy per brand, labels compared)."""
    whole = [LABELS[int(i)] for i in clf.probabilities([t for t, _ in tweets]).argmax(1)]
    jobs = []
    for k, (text, labels) in enumerate(tweets):
        matchers = {c: parse_query(COMPANIES[c]) for c in labels}
        jobs += [(k, p) for p in passages(text, matchers)]
    probs = clf.probabilities([p.text for _, p in jobs])
    own = {
        (k, p.brand): brand_label(LABELS[int(i)], p.comparison)
        for (k, p), i in zip(jobs, probs.argmax(1), strict=True)
    }
    pairs = [(k, c, g) for k, (_, labels) in enumerate(tweets) for c, g in labels.items()]
    one = sum(whole[k] == g for k, _, g in pairs) / len(pairs)
    each = sum(own.get((k, c), whole[k]) == g for k, c, g in pairs) / len(pairs)
    return one, each, len(pairs)


def speed(models: dict[str, E5OfflineClassifier], texts: list[str]) -> dict[str, float]:
    best = {name: 0.0 for name in models}
    for _ in range(3):  # alternate, so both see the same machine state
        for name, clf in models.items():
            start = time.perf_counter()
            clf.probabilities(texts)
            best[name] = max(best[name], len(texts) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", type=Path, required=True, help="pinned corpus files")
    parser.add_argument("--model", default="listener-3", help="built-in name or directory")
    parser.add_argument("--baseline", default="listener-1", help="a head or model to compare")
    parser.add_argument("--limit", type=int, help="texts per test set at most (a quick look)")
    args = parser.parse_args()
    fetch = corpora.local_fetch(args.corpora)
    shipped = {corpora.dedup_key(e.text) for e in public()}  # listener-1 trained on these
    tests = [
        i
        for i in corpora.load(corpora.CORPORA, fetch)
        if i.split == "test" and corpora.dedup_key(i.text) not in shipped
    ]
    posts = [
        corpora.Item("customer-posts", e.language, e.label, LABELS, e.text, "test")
        for e in customer_posts()
    ]
    if args.limit:
        by: dict[str, list[corpora.Item]] = defaultdict(list)
        for item in tests:
            by[f"{item.corpus} {item.language}"].append(item)
        tests = [i for group in by.values() for i in group[: args.limit]]
    items = tests + posts
    texts = [i.text for i in items]
    models = {name: E5OfflineClassifier(head=name) for name in (args.baseline, args.model)}
    probs = {}
    for name, clf in models.items():
        start = time.perf_counter()
        probs[name] = clf.probabilities(texts)
        print(f"{name}: {len(texts)} texts in {time.perf_counter() - start:.0f} s")

    scores = {name: score_sets(items, p) for name, p in probs.items()}
    xlmt = xlmt_predictions(fetch)
    rows = []
    for group in scores[args.model]:
        row = {"test set": group, "n": scores[args.model][group]["n"]}
        for name in models:
            s = scores[name][group]
            row[f"{name} F1"] = s["F1"]
            row[f"{name} acc"] = s["acc"]
            # two-label sets: how often it said neutral; three-label: neutral read as opinion
            row[f"{name} neutral"] = s.get("said neutral", s.get("neutral->polar"))
        corpus, lang = group.split()
        if corpus == "umsab" and not args.limit:
            gold = [i.label for i in items if i.corpus == "umsab" and i.language == lang]
            row["XLM-T F1"] = macro_f1(xlmt[lang][: len(gold)], gold)
        rows.append(row)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(
        "\n"
        + format_table(
            keys,
            [
                [f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
                for r in rows
            ],
        )
    )
    for name in models:
        umsab = [scores[name][g]["F1"] for g in scores[name] if g.startswith("umsab ")]
        print(f"UMSAB mean macro-F1, {name}: {np.mean(umsab):.3f}")
    if not args.limit:
        print(
            f"UMSAB mean macro-F1, published XLM-T: "
            f"{np.mean([r['XLM-T F1'] for r in rows if 'XLM-T F1' in r]):.3f}"
        )

    sarcastic_raw = fetch("iabufarha/ArSarcasm", "dataset/ArSarcasm_test.csv").decode()
    import csv
    import io

    sarcastic = {
        corpora.dedup_key(r["tweet"].strip().strip('"'))
        for r in csv.DictReader(io.StringIO(sarcastic_raw))
        if r["sarcasm"] == "True"
    }
    for name in models:
        idx = [i for i, item in enumerate(items) if item.corpus == "arsarcasm"]
        sar = [i for i in idx if corpora.dedup_key(items[i].text) in sarcastic]
        rest = [i for i in idx if i not in set(sar)]
        f = [
            macro_f1(
                [LABELS[int(k)] for k in probs[name][part].argmax(1)],
                [items[i].label for i in part],
            )
            for part in (sar, rest)
        ]
        print(f"ArSarcasm, {name}: sarcastic {len(sar)} F1 {f[0]:.3f}; the rest {f[1]:.3f}")

    for name, clf in models.items():
        threshold = clf.review_below if clf.review_below is not None else 0.5
        flagged, acc_all, acc_kept = coverage(items, probs[name], threshold)
        print(
            f"confidence, {name} (review below {threshold:.3f}): {flagged:.1%} flagged; "
            f"accuracy {acc_all:.3f} on all, {acc_kept:.3f} on the unflagged"
        )
        for share in (0.1, 0.2, 0.3):
            cut = float(np.quantile(probs[name].max(1), share))
            f, a, k = coverage(items, probs[name], cut)
            print(f"    flag {f:.0%}: unflagged accuracy {k:.3f} (+{k - a:.3f})")

    for name in models:
        found = complaints(items, probs[name])
        print(
            f"complaints, {name}: "
            + "; ".join(
                f"{kind} {caught:,} of {neg:,} caught (recall {caught / neg:.3f}, "
                f"precision {caught / max(1, said):.3f})"
                for kind, (caught, neg, said) in sorted(found.items())
            )
        )

    tweets = multi_company_tweets(fetch)
    for name, clf in models.items():
        one, each, n = per_brand(clf, tweets)
        print(
            f"per-brand, {name}: {n} company labels in {len(tweets)} SentiRuEval tweets "
            f"naming several: one label per tweet {one:.3f}, per brand {each:.3f}"
        )

    sample = [i.text for i in posts] + [i.text for i in tests[:: max(1, len(tests) // 441)]]
    rates = speed(models, sample[:500])
    base = rates[args.baseline]
    print(
        "speed (texts/s, best of 3): "
        + ", ".join(f"{n} {r:.1f} ({r / base:.2f}x)" for n, r in rates.items())
    )


if __name__ == "__main__":
    main()
