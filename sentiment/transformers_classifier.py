"""A Hugging Face sequence-classification model, loaded by hub id (pinned revision) or directory.

Speed: texts are tokenised in one call (the Rust tokenizer batches in parallel), sorted by token
length so each batch pads only to its own longest text, and run under torch.inference_mode();
optional int8 dynamic quantisation on CPU, bf16 on CUDA.
"""

from __future__ import annotations

import gc
import os
import re
import socket
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from sentiment.base import ModelUnavailable, Prediction, label_map, prediction_from_probs
from sentiment.batching import length_batches, padded, token_ids
from sentiment.preprocess import for_tweet_model

HUB_PROBE_TIMEOUT_S = 5.0
# No text, no opinion: scored neutral without asking the model (emoji-only text does go to the
# model: tweet-trained models read 😡 and 😍 well).
EMPTY = Prediction("neutral", {"negative": 0.0, "neutral": 1.0, "positive": 0.0}, 0.0)


def hub_reachable() -> bool:
    """huggingface_hub retries for about a minute when offline; a quick probe fails fast."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a batch builds: its thousands of short-lived
    lists triggered full collections that walked torch's and transformers' objects, a third of
    the host-side time (measured: 24k -> 39k tweets/s on 2 cores with the model a no-op)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def pick_dtype(torch: Any, device_type: str, dtype: str) -> Any:
    """auto: bf16 on CUDA, and on CPUs with native bf16 (AVX512-BF16, AMX), where it runs
    about twice as fast as fp32; fp32 elsewhere."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if device_type == "cuda":
        return torch.bfloat16
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return torch.bfloat16 if native else torch.float32


def offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


# What the Hub accepts as a repository id; anything else (/path, ./dir, ~/x) is a directory.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class TransformersClassifier:
    def __init__(
        self,
        model: str,
        revision: str | None = None,
        *,
        device: str = "auto",
        batch_size: int | None = None,
        max_length: int = 512,
        offline: bool = False,
        quantize: bool = False,
        dtype: str = "auto",
        threads: int | None = None,
        max_tokens: int | None = None,
        long_texts: str = "truncate",
        max_chunks: int = 8,
    ) -> None:
        self.name = model
        self.chunks = long_texts == "chunks"
        self.max_chunks = max_chunks
        local = Path(model).expanduser().is_dir()
        if not local and not _HUB_ID.fullmatch(model):
            raise ModelUnavailable(
                f"sentiment model {model!r}: no such directory, and not a Hugging Face Hub id "
                "(owner/name)"
            )
        # A local directory has no hub revision; store "local" so its scores stay distinct.
        self.revision = "local" if local else revision
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our log lines, not progress bars, in `run`
        except ImportError as exc:  # pragma: no cover - both are dependencies
            raise ModelUnavailable(f"transformers/torch are not installed: {exc}") from None
        self._torch = torch
        kwargs: dict[str, Any] = {} if local else {"revision": revision}
        where = str(Path(model).expanduser()) if local else model
        try:
            self.tokenizer, self.model = self._load(
                AutoTokenizer, AutoModelForSequenceClassification, where, kwargs, local, offline
            )
        except ModelUnavailable:
            raise
        except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError...
            raise ModelUnavailable(self._help(f"{type(exc).__name__}: {exc}")) from None
        # Never past what the model can take; tokenizers without a limit report a huge number.
        limit = getattr(self.tokenizer, "model_max_length", None) or max_length
        self.max_length = min(max_length, limit) if limit < 100_000 else max_length
        self.labels = label_map(self.model.config.id2label)
        self.tweet_style = "twitter" in model.lower() or "tweet" in model.lower()
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.device = self._pick_device(device)
        # Padded tokens per forward pass: small on CPU (cache-sized), large on a GPU.
        cpu = self.device.type == "cpu"
        self.max_tokens = max_tokens or (4096 if cpu else 262_144)
        # A GPU needs wide batches to be busy; a CPU gains nothing past a few dozen texts.
        self.batch_size = batch_size or (32 if cpu else 1024)
        self.quantized = False
        if self.device.type == "cpu":
            torch.set_num_threads(threads or os.cpu_count() or 1)
        if self.device.type == "cpu" and quantize:
            with warnings.catch_warnings():  # torch deprecates the API, not the kernels
                warnings.simplefilter("ignore")
                self.model = torch.ao.quantization.quantize_dynamic(
                    self.model, {torch.nn.Linear}, dtype=torch.qint8
                )
            self.quantized = True
        else:
            self.model.to(dtype=pick_dtype(torch, self.device.type, dtype))
        self.model.to(self.device).eval()

    def describe(self) -> dict[str, Any]:
        raw = self.model.config.id2label
        return {
            "model": self.name,
            "revision": self.revision,
            "labels": ", ".join(f"{raw[i]} -> {n}" for i, n in enumerate(self.labels)),
            "device": self.device,
            "dtype": self.dtype,
            "max tokens": self.max_length,
        }

    @property
    def dtype(self) -> str:
        return "int8 (dynamic)" if self.quantized else str(self.model.dtype).removeprefix("torch.")

    def _load(
        self,
        tok_cls: Any,
        model_cls: Any,
        where: str,
        kwargs: dict[str, Any],
        local: bool,
        offline: bool,
    ) -> tuple[Any, Any]:
        if local:
            return tok_cls.from_pretrained(where), model_cls.from_pretrained(where)
        try:  # the local Hugging Face cache first: no network needed once downloaded
            return (
                tok_cls.from_pretrained(where, local_files_only=True, **kwargs),
                model_cls.from_pretrained(where, local_files_only=True, **kwargs),
            )
        except OSError:
            if offline or offline_env():
                raise ModelUnavailable(self._help("not in the local cache and offline")) from None
        if not hub_reachable():
            raise ModelUnavailable(self._help("the Hugging Face Hub cannot be reached")) from None
        return tok_cls.from_pretrained(where, **kwargs), model_cls.from_pretrained(where, **kwargs)

    def _help(self, reason: str) -> str:
        rev = f" (revision {self.revision})" if self.revision else ""
        return (
            f"sentiment model {self.name!r}{rev} could not be loaded: {reason}. "
            "Mentions are still collected and wait unscored. To provide the model, run "
            "`listener model download DIR` on a connected machine, copy DIR here and set "
            "sentiment.model to that directory in sources.yaml."
        )

    def _pick_device(self, device: str) -> Any:
        torch = self._torch
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(device)

    def prepare(self, texts: Sequence[str]) -> list[str]:
        return [for_tweet_model(t) if self.tweet_style else t.strip() for t in texts]

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        return length_batches(order, lengths, self.batch_size, self.max_tokens)

    def _encode(self, texts: list[str]) -> list[tuple[int, list[int]]]:
        """(text index, token ids) pieces: one per text, truncated to max_length, or with
        long_texts="chunks" consecutive windows of it (at most max_chunks per text)."""
        if not self.chunks:
            return list(enumerate(self._token_ids(texts)))
        enc = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_length,
            return_overflowing_tokens=True,
            return_attention_mask=False,
        )
        pieces, per_text = [], [0] * len(texts)
        for owner, ids in zip(enc["overflow_to_sample_mapping"], enc["input_ids"], strict=True):
            if per_text[owner] < self.max_chunks:
                per_text[owner] += 1
                pieces.append((owner, ids))
        return pieces

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        return token_ids(self.tokenizer, texts, self.max_length)

    def _padded(self, rows: list[list[int]]) -> tuple[Any, Any]:
        """Pinned on CUDA so the copy to the GPU runs asynchronously."""
        tensors = padded(rows, self.pad_id, self._torch)
        if self.device.type != "cuda":
            return tensors
        return tuple(t.pin_memory().to(self.device, non_blocking=True) for t in tensors)

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        with gc_paused():
            return self._classify(texts)

    def _classify(self, texts: Sequence[str]) -> list[Prediction]:
        torch = self._torch
        prepared = self.prepare(texts)
        todo = [i for i, t in enumerate(prepared) if t]
        out = [EMPTY] * len(prepared)
        if not todo:
            return out
        pieces = self._encode([prepared[i] for i in todo])
        lengths = [len(ids) for _, ids in pieces]
        # Sort by token length, so that each batch pads only to its own longest text.
        order = sorted(range(len(pieces)), key=lambda k: lengths[k], reverse=True)
        batches = self._batches(order, lengths)
        with torch.inference_mode():
            # Probabilities stay on the device until the end: no synchronisation per batch,
            # so the host pads the next batch while the GPU runs this one.
            probs = []
            for batch in batches:
                input_ids, mask = self._padded([pieces[k][1] for k in batch])
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits
                probs.append(torch.softmax(logits.float(), dim=-1))
            flat = torch.cat(probs).cpu().numpy().astype(np.float64)
        ran = np.fromiter(chain.from_iterable(batches), dtype=np.int64, count=len(pieces))
        owners = np.array([pieces[k][0] for k in ran], dtype=np.int64)
        # Chunks of one text: average weighted by their token counts.
        weights = np.array([lengths[k] for k in ran], dtype=np.float64)
        sums = np.zeros((len(todo), len(self.labels)))
        np.add.at(sums, owners, flat * weights[:, None])
        totals = np.bincount(owners, weights=weights, minlength=len(todo))
        for j, row in enumerate((sums / totals[:, None]).tolist()):
            out[todo[j]] = prediction_from_probs(row, self.labels)
        return out
