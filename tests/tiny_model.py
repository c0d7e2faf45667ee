"""A tiny random BERT classifier with a word-level tokenizer, built in a temp dir.

It tests loading, batching, truncation and label handling. Its labels mean nothing about
sentiment unless `force` pins the output, and no test should pretend otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

WORDS = ["good", "bad", "service", "price", "acme", "слабо", "добре", "hyvä", "huono", "جيد", "سيء"]


def tiny_tokenizer(max_len: int = 32, words: Sequence[str] = WORDS) -> Any:
    """A word-level tokenizer over `words`, with BERT's special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=max_len,
    )


def build_tiny_model(
    path: Path,
    id2label: dict[int, str] | None = None,
    force: str | None = None,
    max_len: int = 32,
) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    id2label = id2label or {0: "Negative", 1: "Neutral", 2: "Positive"}
    fast = tiny_tokenizer(max_len)
    config = BertConfig(
        vocab_size=len(fast),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=max_len,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    if force is not None:  # make every prediction the same label, for pipeline tests
        index = next(i for i, name in id2label.items() if name.lower().startswith(force[:3]))
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(-10.0)
            model.classifier.bias[index] = 10.0
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path
