"""Turning texts into padded batches cheaply, shared by every classifier backend: tokenise once,
sort by token length, cut batches under a padded-token budget, pad in one numpy step."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np


def token_ids(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to max_length. With a fast tokenizer this asks its Rust
    backend directly: transformers turns every encoding into Python dicts, which took longer
    than the tokenising itself."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None or not tokenizer.is_fast:
        return tokenizer(
            list(texts),
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
        )["input_ids"]
    # Set on every call, as transformers does: the backend's settings are shared state.
    backend.enable_truncation(max_length, direction=getattr(tokenizer, "truncation_side", "right"))
    backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # no offsets
    return [e.ids for e in encode(list(texts))]


def length_batches(
    order: Sequence[int], lengths: Sequence[int], batch_size: int, max_tokens: int
) -> list[list[int]]:
    """Cut texts sorted by decreasing token length into batches of at most batch_size texts
    and max_tokens padded tokens, never padding a text to more than twice its length: a
    512-token article does not drag shorter posts to its width."""
    batches: list[list[int]] = []
    current: list[int] = []
    for k in order:
        width = lengths[current[0]] if current else lengths[k]
        if current and (
            len(current) >= batch_size
            or (len(current) + 1) * width > max_tokens
            or lengths[k] * 2 < width
        ):
            batches.append(current)
            current = []
        current.append(k)
    if current:
        batches.append(current)
    return batches


def padded(rows: Sequence[Sequence[int]], pad_id: int, torch: Any) -> tuple[Any, Any]:
    """input_ids and attention_mask for length-sorted rows, padded to the first (longest)."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    mask = np.arange(lengths[0]) < lengths[:, None]
    ids = np.full(mask.shape, pad_id, dtype=np.int64)
    ids[mask] = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))
