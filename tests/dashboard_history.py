"""A realistic multilingual history for the dashboard's browser tests and README screenshots:
three brands, six weeks, social posts, app-store reviews with stars and news, in six
languages, with a delivery complaint spike on the last day. Deterministic (seeded), stored
through the real storage code."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from alerts import engine
from alerts.inbox import sync_inbox
from listener.config import Config, parse_config
from tests.history import MODEL, History, Post

DAYS = 42
BRANDS = ("Zentra", "Orvia", "Nordel")
CONFIG = """
brands:
  - {name: Zentra, competitors: [Orvia, Nordel]}
  - {name: Orvia}
  - {name: Nordel}
aspects:
  delivery:
    {en: [delivery, courier*, parcel*], fi: [toimitu*, paketti*], ru: [доставк*],
     bg: [доставка*], et: [tarne*, pakk*]}
  price:
    {en: [price*, expensive], fi: [hinta*, kallis], ru: [цен*, дорог*], bg: [цена*],
     et: [hind*, kallis]}
  support:
    {en: [support, "customer service"], fi: [asiakaspalvelu*], ru: [поддержк*],
     bg: [поддръжка*], et: [klienditeenindus*]}
alerts:
  - {rule: negative_share_spike, window: 1d, baseline: 14d, min_sample: 5, factor: 1.5}
  - {rule: negative_share_spike, name: delivery-complaints, window: 1d, baseline: 14d,
     min_sample: 5, aspect: delivery, factor: 1.5, min_increase: 0.1}
  - {rule: low_rating, max_stars: 1}
sentiment: {model: m, revision: '1'}
inbox: {reply_within: 24h, thank_within: 48h}
"""

# (label, language, text) with {b} for the brand; aspect words where a customer would use them.
TEXTS = [
    ("negative", "en", "{b} delivery was three days late and the courier never called"),
    ("negative", "en", "Paid twice for one order, {b} support still silent after a week"),
    ("negative", "fi", "{b}: toimitus myöhässä taas, paketti hukassa"),
    ("negative", "ru", "{b}, доставка опять задерживается, поддержка не отвечает"),
    ("negative", "bg", "Доставката от {b} закъсня с цяла седмица"),
    ("negative", "et", "{b} tarne hilines ja pakk oli katki"),
    ("negative", "ar", "خدمة {b} سيئة جدا والتوصيل متأخر"),
    ("negative", "en", "{b} prices went up again, too expensive for what you get"),
    ("neutral", "en", "Does anyone know if {b} ships to Tartu?"),
    ("neutral", "fi", "{b} avaa uuden myymälän Tampereelle ensi kuussa"),
    ("neutral", "ru", "{b} обновил приложение до версии 5.2"),
    ("neutral", "et", "{b} muutis oma lahtiolekuaegu"),
    ("positive", "en", "Fast delivery from {b}, arrived the next morning. Thank you!"),
    ("positive", "en", "{b} customer service sorted my refund in ten minutes"),
    ("positive", "fi", "Kiitos {b}, toimitus oli nopea ja hinta hyvä"),
    ("positive", "ru", "Очень довольна {b}, цена отличная"),
    ("positive", "bg", "Много съм доволна от {b}, препоръчвам"),
    ("positive", "et", "Aitäh {b}, klienditeenindus oli super"),
    ("positive", "ar", "شكرا {b} الخدمة ممتازة"),
]
# The spike's own complaints: a new courier losing parcels, said in five languages. Words no
# earlier mention used, so an alert can name them as its cause.
SPIKE_TEXTS = [
    ("negative", "en", "{b} delivery with the new courier PostNova: parcel lost, no tracking"),
    ("negative", "fi", "{b} toimitus PostNovan kautta, paketti kadonnut eikä seurantaa"),
    ("negative", "ru", "{b}, доставка через PostNova, посылка потерялась"),
    ("negative", "et", "{b} tarne PostNova kaudu, pakk kadunud"),
    ("negative", "bg", "Доставката на {b} с PostNova се изгуби"),
]
AUTHORS = ["maria_k", "juhani", "olga.p", "ivan_b", "kadri", "sam", "layla", "tom"]


def config(database: str, base_dir: Any) -> Config:
    return parse_config(f"database: {database}\n{CONFIG}", base_dir=base_dir)


def build(store: Any, conf: Config, now: datetime) -> dict[str, int]:
    """Store the history, score it, fire the alerts and fill the inbox as a pass would.
    Returns counts the tests check figures against."""
    rng = random.Random(7)
    hist = History(
        store,
        sources=("social-search", "news-search"),
        tied={"zentra-appstore": "Zentra", "orvia-appstore": "Orvia"},
    )
    store.db.execute("UPDATE sources SET kind = 'news' WHERE id = 'news-search'")
    store.db.execute("UPDATE sources SET kind = 'reviews' WHERE id LIKE '%-appstore'")
    mood = {"Zentra": 0.42, "Orvia": 0.3, "Nordel": 0.25}  # share negative
    volume = {"Zentra": 9, "Orvia": 6, "Nordel": 3}
    posts: list[Post] = []
    for day in range(1, DAYS):
        for brand in BRANDS:
            for _ in range(rng.randint(volume[brand] - 2, volume[brand] + 3)):
                roll = rng.random()
                label = (
                    "negative"
                    if roll < mood[brand]
                    else "neutral"
                    if roll < mood[brand] + 0.2
                    else "positive"
                )
                posts.append(_post(rng, brand, label, day * 86400 + rng.randint(0, 86399)))
    # The last day: Zentra's delivery complaints spike, with 1-star reviews in the store.
    for i in range(24):
        label = "negative" if i < 21 else "positive"
        spike = SPIKE_TEXTS if i % 3 else None  # two in three are about the new courier
        posts.append(
            _post(rng, "Zentra", label, rng.randint(600, 80000), aspect="delivery", texts=spike)
        )
    for _ in range(4):
        posts.append(_post(rng, "Orvia", "positive", rng.randint(600, 80000)))
    ids = hist.add(*sorted(posts, key=lambda p: -p.ago), now=now)
    # A few the model was unsure of, for the "needs review" filter.
    store.db.execute(
        f"UPDATE scores SET needs_review = 1 WHERE mention_id IN ({','.join(map(str, ids[::17]))})"
    )
    engine.evaluate(conf, store, MODEL, now)
    sync_inbox(conf, store, MODEL, now)
    return {"mentions": len(ids)}


_DELIVERY = ("delivery", "toimitus", "доставк", "Доставк", "tarne", "التوصيل")


def _about(text: str, aspect: str) -> bool:
    return aspect == "delivery" and any(w in text for w in _DELIVERY)


def _post(
    rng: random.Random,
    brand: str,
    label: str,
    seconds_ago: int,
    aspect: str | None = None,
    texts: list[tuple[str, str, str]] | None = None,
) -> Post:
    pool = texts if texts and label == "negative" else TEXTS
    choices = [t for t in pool if t[0] == label and (aspect is None or _about(t[2], aspect))]
    _, language, text = rng.choice(choices or [t for t in TEXTS if t[0] == label])
    store_source = f"{brand.lower()}-appstore"
    kind = rng.random()
    if kind < 0.08:
        source, rating = "news-search", None
    elif kind < 0.35 and brand != "Nordel":
        stars = {"negative": [1, 2], "neutral": [3], "positive": [4, 5]}[label]
        source, rating = store_source, float(rng.choice(stars))
    else:
        source, rating = "social-search", None
    return Post(
        label,
        timedelta(seconds=seconds_ago),
        rating=rating,
        reach=rng.choice([None, 12, 140, 2300, 41000]),
        source=source,
        brand=brand,
        text=text.format(b=brand),
        language=language,
        author=f"{rng.choice(AUTHORS)}{rng.randint(1, 9999)}",
        title="",
    )
