"""An alert names what is new in its window: words, aspects, sources and authors found more often
than in its baseline, and only when the difference is more than noise."""

from __future__ import annotations

from collections import Counter

from alerts.causes import causes, describe, over_represented
from alerts.explain import explain
from listener.metrics import aspect_matchers
from listener.storage import LabelledMention


def _m(i: int, text: str, source: str = "x", author: str | None = None) -> LabelledMention:
    return LabelledMention(
        i, "negative", "2026-11-20T00:00:00+00:00", None, "", text, source_id=source, author=author
    )


def test_a_new_word_is_found_and_a_usual_one_is_not():
    found = over_represented(
        Counter({"postnova": 8, "late": 10, "refund": 2}), 20, Counter({"late": 100}), 200
    )
    assert [c["value"] for c in found] == ["postnova"]  # "late" is as common as before
    assert found[0]["window"] == 8 and found[0]["baseline"] == 0 and found[0]["z"] > 1.96


def test_small_or_empty_samples_say_nothing():
    # Two mentions are not a cause, however new; no baseline is no comparison.
    assert over_represented(Counter({"postnova": 2}), 3, Counter(), 100) == []
    assert over_represented(Counter({"postnova": 5}), 5, Counter(), 0) == []
    assert over_represented(Counter(), 0, Counter({"x": 1}), 10) == []
    # 3 of 400 against 2 of 400: noise.
    assert over_represented(Counter({"app": 3}), 400, Counter({"app": 2}), 400) == []


def test_strongest_first_and_at_most_five():
    window = Counter({f"w{i}": 10 + i for i in range(8)})
    found = over_represented(window, 30, Counter(), 300)
    assert len(found) == 5
    assert [c["value"] for c in found] == ["w7", "w6", "w5", "w4", "w3"]


def test_causes_of_a_spike_in_words_aspects_sources_and_authors():
    baseline = [_m(i, f"Zentra delivery was late again {i}", "social") for i in range(60)]
    baseline += [_m(100 + i, "Zentra prices went up", "appstore") for i in range(20)]
    window = [
        _m(200 + i, "Zentra parcel lost by PostNova, прошу помочь", "appstore", "bot<b>@here")
        for i in range(9)
    ]
    window += [_m(300 + i, "Zentra delivery was late again", "social") for i in range(3)]
    aspects = aspect_matchers({"lost parcels": {"en": ["lost"]}, "delivery": {"en": ["delivery"]}})
    found = causes(window, baseline, brand_words=["zentra"], aspects=aspects)
    terms = [c["value"] for c in found["terms"]]
    assert "postnova" in terms and "помочь" in terms
    assert "zentra" not in terms and "late" not in terms  # the brand; the usual complaint
    assert [c["value"] for c in found["aspects"]] == ["lost parcels"]
    assert [c["value"] for c in found["sources"]] == ["appstore"]
    # One account posting most of a spike is worth knowing; its name is made inert.
    [author] = [c["value"] for c in found["authors"]]
    assert author.startswith("bot‹b›") and "@here" not in author and "<" not in author


def test_the_explanation_names_the_causes_in_words():
    evidence = {
        "window": "1 d",
        "baseline": "14 d",
        "window_negative": 21,
        "window_total": 24,
        "share": 0.875,
        "usual_share": 0.48,
        "baseline_negative": 61,
        "baseline_total": 127,
        "causes": {
            "terms": [
                {
                    "value": "postnova",
                    "window": 11,
                    "window_total": 21,
                    "baseline": 0,
                    "baseline_total": 61,
                    "z": 3.7,
                }
            ],
            "sources": [
                {
                    "value": "zentra-appstore",
                    "window": 15,
                    "window_total": 21,
                    "baseline": 20,
                    "baseline_total": 61,
                    "z": 2.5,
                }
            ],
        },
    }
    said = explain("negative_share_spike", evidence, "Zentra")
    assert said.endswith(
        "More often than in the 14 d before: words “postnova” (11 of 21, 0% before); "
        "sources “zentra-appstore” (15 of 21, 33% before)."
    )
    # Causes of an odd shape (hand-edited, a newer version's) are left out, not an error.
    assert describe({"terms": [{"value": "x"}], "authors": "nope"}, "14 d") == ""
    assert "More often" not in explain("negative_share_spike", {**evidence, "causes": []}, "Z")
