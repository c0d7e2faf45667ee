"""The owners' inbox: negative mentions and low-rated reviews to answer, happy reviewers to
thank, each with a due time from the response target, and a reply draft in the mention's
language. Drafts are never sent: the owner copies one or opens the item's link."""

from __future__ import annotations

from datetime import datetime
from statistics import median
from typing import Any

from listener.timeutil import parse_iso, utcnow

DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    "reply": {
        "en": "Hi {author}, we're sorry to read this. Could you send us a direct message with "
        "your order details so we can put it right? — The {brand} team",
        "bg": "Здравейте, {author}! Съжаляваме да прочетем това. Моля, пишете ни лично с "
        "подробности за поръчката, за да оправим нещата. — Екипът на {brand}",
        "et": "Tere, {author}! Meil on kahju seda lugeda. Palun saatke meile privaatsõnum "
        "tellimuse andmetega, et saaksime olukorra lahendada. — {brand} meeskond",
        "fi": "Hei {author}, pahoittelemme tapahtunutta. Lähetäthän meille yksityisviestin "
        "tilauksesi tiedoilla, niin korjaamme asian. – {brand}-tiimi",
        "ar": "مرحبًا {author}، نأسف لما حدث. يرجى مراسلتنا برسالة خاصة مع تفاصيل طلبك "
        "لنتمكن من حل المشكلة. — فريق {brand}",
        "ru": "Здравствуйте, {author}! Нам жаль это читать. Пожалуйста, напишите нам в личные "
        "сообщения с деталями заказа, и мы всё исправим. — Команда {brand}",
    },
    "thank": {
        "en": "Thank you, {author}! We're glad you enjoy {brand} — it means a lot to the team.",
        "bg": "Благодарим ви, {author}! Радваме се, че харесвате {brand} — това означава "
        "много за екипа.",
        "et": "Aitäh, {author}! Meil on hea meel, et {brand} teile meeldib — see on meeskonnale "
        "väga oluline.",
        "fi": "Kiitos, {author}! Ilahduimme palautteestasi – se merkitsee {brand}-tiimille paljon.",
        "ar": "شكرًا لك يا {author}! يسعدنا أنك تستمتع بـ{brand}، وهذا يعني الكثير لفريقنا.",
        "ru": "Спасибо, {author}! Мы рады, что вам нравится {brand} — это очень важно для "
        "нашей команды.",
    },
}
# How to address someone whose name the source did not give.
NO_NAME = {
    "en": "there",
    "bg": "приятели",
    "et": "sõber",
    "fi": "ystävä",
    "ar": "صديقنا",
    "ru": "друзья",
}


# What closes each kind of item: a complaint is answered (or ignored), a happy reviewer thanked.
CLOSES = {"reply": ("replied", "ignored"), "thank": ("thanked", "ignored")}


class MarkRefused(ValueError):
    """A status that does not fit the item: nothing was changed."""


def mark_change(item: dict[str, Any], status: str) -> str:
    """What marking `item` with `status` does, in words; raises MarkRefused when the status
    cannot be what the user meant (thanking a complaint)."""
    kind, before = item["kind"], item["status"]
    if status != "open" and status not in CLOSES.get(kind, (status,)):
        fits = " or ".join(CLOSES[kind])
        what = "a complaint to answer" if kind == "reply" else "a happy reviewer to thank"
        raise MarkRefused(f"#{item['mention_id']} is {what} ({kind}): mark it {fits}")
    if before == status:
        return f"#{item['mention_id']} was already {status}; nothing changed"
    if before != "open":
        who = f" by {item['closed_by']}" if item.get("closed_by") else ""
        when = f" on {item['closed_at'][:16]}" if item.get("closed_at") else ""
        return (
            f"#{item['mention_id']}: {before} -> {status} (it had been marked {before}{who}{when})"
        )
    return f"#{item['mention_id']}: {status}"


def inbox_kind(
    label: str | None,
    score: float | None,
    rating: float | None,
    thank_min_score: float,
    *,
    text_label: str | None = None,
    needs_review: bool = False,
    corrected: str | None = None,
) -> tuple[str | None, bool]:
    """(kind, mixed). reply: negative, or a 1-2 star review; a 4-5 star review whose words
    are negative is a reply too, marked mixed (a thank-you to "charged me twice" would be an
    insult). thank: a 4-5 star review whose words are not negative, or confidently positive
    text (signed score at least thank_min_score, and not flagged for review). A person's
    correction stands for both the label and the words."""
    words = corrected or text_label or label
    if (rating is not None and rating <= 2) or label == "negative":
        return "reply", False
    if rating is not None and rating >= 4:
        return ("reply", True) if words == "negative" else ("thank", False)
    if (
        rating is None
        and label == "positive"
        and (corrected == "positive" or ((score or 0) >= thank_min_score and not needs_review))
    ):
        return "thank", False
    return None, False


def draft(
    kind: str,
    language: str | None,
    author: str | None,
    brand: str,
    templates: dict[str, dict[str, str]],
) -> tuple[str, str]:
    """(language used, text): the mention's language if there is a template for it, else en."""
    lang = language if language in templates.get(kind, {}) else "en"
    name = author or NO_NAME.get(lang, NO_NAME["en"])
    return lang, templates[kind][lang].format_map(
        {"author": name, "brand": brand, "product": brand}
    )


def item_draft(config: Any, item: dict[str, Any]) -> tuple[str, str]:
    """(language used, text): the draft answer to an inbox item, from the configured
    templates."""
    return draft(
        item["kind"],
        item["language"],
        item["author"],
        item["brand"],
        config.inbox.all_templates(),
    )


def sync_inbox(
    config: Any, store: Any, model: tuple[str, str | None], now: datetime | None = None
) -> int:
    """Add newly labelled mentions that need an answer; items are never added twice."""
    settings = config.inbox
    now = now or utcnow()
    rows = store.inbox_candidates(model, now - settings.max_age)
    items = []
    for r in rows:
        kind, mixed = inbox_kind(
            r["label"],
            r["score"],
            r["rating"],
            settings.thank_min_score,
            text_label=r.get("text_label"),
            needs_review=bool(r.get("needs_review")),
            corrected=r.get("corrected"),
        )
        if kind is None:
            continue
        posted = parse_iso(r["at"]) or now
        within = settings.reply_within if kind == "reply" else settings.thank_within
        items.append(
            {
                "mention_id": r["id"],
                "brand": r["brand"],
                "kind": kind,
                "mixed": mixed,
                "posted_at": posted,
                "due_at": posted + within,
            }
        )
    return store.add_inbox_items(items, now)


def response_metrics(items: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Median time to reply, share answered within target, share of positives thanked."""
    replies = [i for i in items if i["kind"] == "reply" and i["status"] != "ignored"]
    answered = [i for i in replies if i["status"] == "replied"]
    waits = [
        (parse_iso(i["closed_at"]) - parse_iso(i["posted_at"])).total_seconds() for i in answered
    ]
    on_time = [i for i in answered if i["closed_at"] <= i["due_at"]]
    due = [i for i in replies if i["status"] == "replied" or parse_iso(i["due_at"]) <= now]
    thanks = [i for i in items if i["kind"] == "thank" and i["status"] != "ignored"]
    return {
        "to_reply": len(replies),
        "replied": len(answered),
        "open_overdue": sum(
            1 for i in replies if i["status"] == "open" and parse_iso(i["due_at"]) <= now
        ),
        "median_hours_to_reply": round(median(waits) / 3600, 2) if waits else None,
        "share_within_target": round(len(on_time) / len(due), 4) if due else None,
        "to_thank": len(thanks),
        "share_thanked": round(sum(i["status"] == "thanked" for i in thanks) / len(thanks), 4)
        if thanks
        else None,
    }
