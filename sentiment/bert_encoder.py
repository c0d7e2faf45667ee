"""A BERT encoder for inference in plain torch, and the Rust tokenizer without transformers.

The offline model needs nothing else from transformers, and importing transformers' BertModel
took 2.6 s of a 4.7 s model load (it imports torch.distributed, sympy and torch._dynamo). The
parameter names are BertModel's, so its state dict and LoRA adapters load unchanged; training
still uses transformers (sentiment/training.py), and a test checks both give the same states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float


@dataclass(frozen=True)
class _Padding:
    """Where a padded batch's real tokens are. The linear layers and norms (four fifths of the
    time) run on the real tokens alone, attention on the padded layout: after length batching
    padding is still ~7 % of the tokens, and skipping it measured +6 % in float32."""

    shape: tuple[int, int]  # (texts, longest)
    where: torch.Tensor | None  # flat positions of the real tokens; None: no padding

    @classmethod
    def of(cls, attention_mask: torch.Tensor) -> _Padding:
        b, n = attention_mask.shape
        if bool(attention_mask.all()):
            return cls((b, n), None)
        return cls((b, n), attention_mask.reshape(-1).nonzero().squeeze(1))

    def unpad(self, t: torch.Tensor) -> torch.Tensor:
        """(texts, longest, ...) -> (tokens, channels)."""
        flat = t.reshape(self.shape[0] * self.shape[1], -1)
        return flat if self.where is None else flat.index_select(0, self.where)

    def pad(self, t: torch.Tensor) -> torch.Tensor:
        """(tokens, channels) -> (texts, longest, channels), zeros where there was padding."""
        if self.where is not None:
            full = t.new_zeros(self.shape[0] * self.shape[1], t.shape[-1])
            t = full.index_copy_(0, self.where, t)
        return t.view(*self.shape, -1)


class _Embeddings(nn.Module):
    def __init__(self, c: EncoderConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Positions 0..n-1 and token type 0, as BertModel uses them when given none.
        n = input_ids.shape[1]
        x = self.word_embeddings(input_ids)
        x = x + self.position_embeddings.weight[:n] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, c: EncoderConfig) -> None:
        super().__init__()
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)


class _Dense(nn.Module):
    def __init__(self, n_in: int, n_out: int, eps: float | None) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(n_out, eps=eps)


class _Attention(nn.Module):
    def __init__(self, c: EncoderConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Dense(c.hidden_size, c.hidden_size, c.layer_norm_eps)


class _Layer(nn.Module):
    def __init__(self, c: EncoderConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.attention = _Attention(c)
        self.intermediate = _Dense(c.hidden_size, c.intermediate_size, None)
        self.output = _Dense(c.intermediate_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, padding: _Padding) -> torch.Tensor:
        """x: the batch's real tokens, (tokens, hidden); padding exists only inside attention."""
        h = x.shape[-1]
        a = self.attention.self

        def heads(t: torch.Tensor) -> torch.Tensor:
            return padding.pad(t).view(*padding.shape, self.heads, h // self.heads).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            heads(a.query(x)), heads(a.key(x)), heads(a.value(x)), attn_mask=mask
        )
        context = padding.unpad(context.transpose(1, 2))
        out = self.attention.output
        x = out.LayerNorm(out.dense(context) + x)
        inner = F.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(self.output.dense(inner) + x)


class _Stack(nn.Module):
    def __init__(self, c: EncoderConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class BertEncoder(nn.Module):
    """BertModel without the pooler, for inference: last hidden states of a padded batch."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Stack(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        # Additive mask over the keys, in the model's precision: SDPA's CPU kernel ran faster
        # with it than with a boolean one.
        keep = attention_mask[:, None, None, :].bool()
        mask = torch.zeros(keep.shape, dtype=x.dtype).masked_fill(~keep, torch.finfo(x.dtype).min)
        padding = _Padding.of(attention_mask)
        x = padding.unpad(x)
        for layer in self.encoder.layer:
            x = layer(x, mask, padding)
        return padding.pad(x)


class RustTokenizer:
    """A tokenizer.json read by `tokenizers` alone; what listener's batching asks of a fast
    tokenizer (`_tokenizer`, `is_fast`, `pad_token_id`), without transformers' wrapper."""

    is_fast = True
    truncation_side = "right"

    def __init__(self, tokenizer_json: Path, pad_token: str = "<pad>") -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self.pad_token_id: int | None = self._tokenizer.token_to_id(pad_token)

    def __len__(self) -> int:
        return int(self._tokenizer.get_vocab_size())


def build(config: EncoderConfig, state: dict[str, Any]) -> BertEncoder:
    """The encoder with these weights, built on the meta device and given the tensors
    themselves (no random initialisation, no second copy)."""
    with torch.device("meta"):
        model = BertEncoder(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit the encoder: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.eval()
