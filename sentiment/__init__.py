"""Sentiment classifiers behind one protocol, registered by backend name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentiment.base import Classifier, ModelUnavailable, Prediction

log = logging.getLogger("listener")

BACKENDS: dict[str, Callable[..., Classifier]] = {}
# The hub model used when sources.yaml names none. Only this one falls back to the offline
# model when it cannot be had: a model the user named is used or fails loudly.
DEFAULT_MODEL = "cardiffnlp/twitter-xlm-roberta-base-sentiment"


def register(name: str) -> Callable[[Callable[..., Classifier]], Callable[..., Classifier]]:
    def inner(factory: Callable[..., Classifier]) -> Callable[..., Classifier]:
        BACKENDS[name] = factory
        return factory

    return inner


@register("transformers")
def _transformers(settings: Any) -> Classifier:
    from sentiment.transformers_classifier import TransformersClassifier

    return TransformersClassifier(
        settings.model,
        settings.revision,
        device=settings.device,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        offline=settings.offline,
        quantize=settings.quantize,
        dtype=settings.dtype,
        threads=settings.threads,
        max_tokens=settings.max_tokens,
        long_texts=settings.long_texts,
        max_chunks=settings.max_chunks,
    )


@register("e5-offline")
def _e5_offline(settings: Any) -> Classifier:
    from sentiment.e5_offline import E5OfflineClassifier

    return E5OfflineClassifier(
        head=settings.head,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        threads=settings.threads,
        dtype=settings.dtype,
    )


@register("auto")
def _auto(settings: Any) -> Classifier:
    """The default hub model when it is cached or reachable; otherwise the offline e5 model
    that ships in packages, so a machine without the hub still scores. A model the user named
    (a hub id or a directory) never falls back: a typo must not pass for a working model."""
    try:
        return _transformers(settings)
    except ModelUnavailable as hub_error:
        if settings.model != DEFAULT_MODEL:
            raise
        log.warning(
            "%s: using the offline model (multilingual-e5-small + %s) instead",
            str(hub_error).split(". ")[0],
            settings.head,
        )
        try:
            return _e5_offline(settings)
        except ModelUnavailable as offline_error:
            raise ModelUnavailable(
                f"{hub_error} The offline fallback failed too: {offline_error}"
            ) from None


def configured_key(settings: Any) -> tuple[str, str | None]:
    """(model, revision) that scores from the configured model are stored under: a local
    directory has no hub revision and is stored as 'local'."""
    if settings.backend == "e5-offline":
        from sentiment.e5_offline import key

        return key(settings.head)
    local = Path(settings.model).expanduser().is_dir()
    return settings.model, "local" if local else settings.revision


def _cached_locally(model: str, revision: str | None) -> bool:
    if Path(model).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str)
    except Exception:
        return False


def candidate_keys(settings: Any) -> list[tuple[str, str | None]]:
    """The keys the configured backend could score under once loaded, known without loading
    it: a pass asks whether any mention lacks a score under them before paying for a load."""
    if settings.backend == "e5-offline":
        return [configured_key(settings)]
    keys = [configured_key(settings)]
    if settings.backend == "auto":
        from sentiment.e5_offline import key

        if not _cached_locally(settings.model, settings.revision):
            keys = []  # not here: auto falls back to the offline model unless it downloads
        keys.append(key(settings.head))
    return keys


def load_classifier(settings: Any) -> Classifier:
    """Build the configured classifier; raises ModelUnavailable with a how-to-fix message."""
    return BACKENDS[settings.backend](settings)


__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "Classifier",
    "ModelUnavailable",
    "Prediction",
    "candidate_keys",
    "configured_key",
    "load_classifier",
]
