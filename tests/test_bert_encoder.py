"""The offline model scores with a plain-torch BERT encoder and the bare Rust tokenizer (no
transformers import); both must give what transformers' BertModel and tokenizer give."""

from __future__ import annotations

import pytest
import torch

from sentiment.batching import padded, token_ids
from sentiment.bert_encoder import EncoderConfig, RustTokenizer, build

SHAPE = {
    "vocab_size": 50,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 32,
    "max_position_embeddings": 40,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
}


def tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    model = BertModel(BertConfig(**SHAPE), add_pooling_layer=False).eval()
    ours = EncoderConfig(**SHAPE)
    state = {k: v.clone() for k, v in model.state_dict().items() if "position_ids" not in k}
    return model, build(ours, state)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_plain_encoder_gives_bertmodels_states_on_a_padded_batch(dtype):
    theirs, ours = tiny_bert()
    theirs.to(dtype)
    ours.to(dtype)
    rows = [[2, 7, 9, 11, 3, 4, 5, 3], [2, 8, 3], [2, 30, 31, 3]]
    ids, mask = padded(rows, 1, torch)
    with torch.inference_mode():
        expected = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    real = mask.bool()  # padding positions are never read
    tolerance = 1e-5 if dtype == torch.float32 else 0.05
    assert torch.allclose(got[real].float(), expected[real].float(), atol=tolerance)
    # A text's states do not depend on what it was padded next to.
    alone = ours(*padded([rows[1]], 1, torch))
    assert torch.allclose(alone[0].float(), got[1, :3].float(), atol=tolerance)


def test_weights_that_do_not_fit_are_refused():
    _, ours = tiny_bert()
    state = {k: v for k, v in ours.state_dict().items() if "layer.1." not in k}
    with pytest.raises(ValueError, match="missing"):
        build(ours.config, state)


def test_the_rust_tokenizer_gives_transformers_ids():
    from sentiment.e5_offline import xlmr_tokenizer, xlmr_tokenizer_file

    texts = [
        "query: Delivery late again 😡 @acme",
        "query: Обслужването беше ужасно",
        "query: الخدمة ممتازة",
        "query: " + "слишком дорого " * 100,
        "",
    ]
    ours = RustTokenizer(xlmr_tokenizer_file())
    theirs = xlmr_tokenizer(xlmr_tokenizer_file())
    assert token_ids(ours, texts, 64) == theirs(texts, truncation=True, max_length=64)["input_ids"]
    assert ours.pad_token_id == theirs.pad_token_id == 1
