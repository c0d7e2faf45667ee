"""Text as the model saw it in training."""

from __future__ import annotations

import unicodedata

import regex

_USER = regex.compile(r"(?<![\w@])@\w{1,50}")
_URL = regex.compile(r"\b(?:https?://|www\.)\S+", regex.IGNORECASE)
_SPACE = regex.compile(r"\s+")


def for_tweet_model(text: str) -> str:
    """Twitter-trained models (XLM-T, TweetEval) saw '@user' and 'http' placeholders."""
    text = _USER.sub("@user", text)
    text = _URL.sub("http", text)
    return _SPACE.sub(" ", text).strip()


def model_text(text: str) -> str:
    """The offline model's input, in training and in use: composed Unicode, user handles and
    links as placeholders (they carry no sentiment and differ in every post), one space."""
    return for_tweet_model(unicodedata.normalize("NFC", text))


def mention_text(title: str, text: str) -> str:
    """What we classify: the title (news headlines, review titles) and the body."""
    title, text = title.strip(), text.strip()
    if not title or text.startswith(title):
        return text
    if not text:
        return title
    return f"{title}. {text}"
