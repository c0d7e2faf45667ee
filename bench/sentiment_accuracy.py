"""Accuracy per language of the offline sentiment model's heads, on labelled data we ship.

    python bench/sentiment_accuracy.py [--l2 0.01]

Data (sentiment/data/labelled/SOURCES.md): ArSarcasm test tweets (ar), the Estonian Valence
Corpus (et; news paragraphs) and 59 hand-labelled customer posts in en/bg/et/fi/ar/ru.

Methods, all in one run on the same embeddings:
- majority: each data set's most common label (the floor a classifier must beat);
- mlp-1.0, mlp-2.0, logistic-2.0: sentimentai's shipped heads (mlp-1.0 was our default);
- listener-1: our default, trained on the public sets, so its figures there are in-sample;
- tuned: a logistic head trained on the public sets (ar + et), scored out-of-fold (5 folds) on
  them, and trained on all of them for the customer posts it never sees;
- tuned+blend: the same head averaged with logistic-2.0, as `listener model tune-head` writes
  it: the out-of-fold estimate of listener-1 on the public sets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment.e5_offline import E5OfflineClassifier
from sentiment.evaluate import majority, paired, render, table
from sentiment.heads import BUILTIN, Head, cross_validated, load_head, predict, train_head
from sentiment.labelled import customer_posts, public


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--l2", type=float, default=0.01)
    args = parser.parse_args()
    pub, posts = public(), customer_posts()
    examples = pub + posts
    start = time.perf_counter()
    encoder = E5OfflineClassifier()
    loaded = time.perf_counter()
    emb = encoder.embed([e.text for e in examples]).numpy()
    took = time.perf_counter() - loaded
    print(f"model load {loaded - start:.1f} s; embedded {len(examples)} texts in {took:.1f} s "
          f"({len(examples) / took:.0f} texts/s)\n")

    n_pub = len(pub)
    predictions = {"majority": majority(examples)}
    for name in BUILTIN:
        predictions[name] = predict(load_head(name), emb)
    for method, blend in (("tuned", None), ("tuned+blend", "logistic-2.0")):
        out = cross_validated(emb[:n_pub], [e.label for e in pub], [e.language for e in pub],
                              l2=args.l2, blend_with=blend)
        spec = train_head(emb[:n_pub], [e.label for e in pub], l2=args.l2, blend_with=blend)
        predictions[method] = out + predict(Head.from_spec(method, "bench", spec), emb[n_pub:])

    for metric in ("acc", "F1"):
        rows = [{k.removesuffix(f" {metric}"): v for k, v in row.items()
                 if k in ("data", "language", "n") or k.endswith(f" {metric}")}
                for row in table(examples, predictions)]
        print(f"{'accuracy' if metric == 'acc' else 'macro-F1'} (tuned: out-of-fold on "
              f"public data; trained on all public data for customer posts)")
        print(render(rows) + "\n")

    baseline = "mlp-1.0"
    print(f"paired against {baseline} (right now but wrong before, and the reverse):")
    for method in ("mlp-2.0", "logistic-2.0", "tuned", "tuned+blend"):
        for source in ("arsarcasm", "et-valence", "customer-posts"):
            idx = [i for i, e in enumerate(examples) if e.source == source]
            fixed, broken = paired([examples[i] for i in idx],
                                   [predictions[baseline][i] for i in idx],
                                   [predictions[method][i] for i in idx])
            print(f"  {method:<12} {source:<15} +{fixed} -{broken}")


if __name__ == "__main__":
    main()
