"""Sentiment speed on this CPU: the default offline model as the pipeline calls it, against the
hardware's own peak and the baselines a user would otherwise run, all measured in this run.

    python bench/sentiment_speed.py [--texts 500] [--rounds 3] [--naive 48] [--no-onnx]

Texts: the labelled public posts and reviews listener ships (ar, et, and customer posts in en,
bg, et, fi, ar, ru), repeated to --texts. Each path scores them in alternating rounds (medians):

- pipeline: `classifier.classify` on chunks of the size `listener run` sends (bf16 where the CPU
  has it), and the same in float32 (CPUs without bf16);
- ONNX Runtime: the same float32 encoder exported to ONNX and fused by onnxruntime's BERT
  optimiser (Attention, SkipLayerNorm, BiasGelu), with the same tokens and batches
  (`pip install onnxruntime onnx`; skipped when they are missing);
- naive: transformers, one text at a time, float32 (on --naive texts).

Every path reads at most the default model's token limit (128 for the fine-tuned models).

The peak is the best dense GEMM this process gets in each precision (square and the encoder's own
shapes); a path's share of it counts the FLOPs of the real tokens only (linear layers and
attention), so padding and overhead count against it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The baselines put a head over the pooled embeddings to give probabilities (a 3 x 384 layer:
# its cost is nil); they run the default model's encoder shape on the tokens it reads.
BASELINE_HEAD = "listener-1"


def real_texts(n: int) -> list[str]:
    from sentiment.labelled import public

    texts = [e.text for e in public()]
    return [texts[i % len(texts)] for i in range(n)]


def gemm_peak(torch: Any, dtype: Any, seconds: float = 1.0) -> float:
    """Best FLOP/s of a dense GEMM in `dtype`: square, and the encoder's FFN shapes."""
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (4096, 384, 1536), (4096, 1536, 384)):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        for _ in range(2):
            a @ b
        start, runs = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            a @ b
            runs += 1
        best = max(best, 2 * m * k * n * runs / (time.perf_counter() - start))
    return best


def flops_per_text(config: Any, lengths: list[int]) -> float:
    """Mean FLOPs of one encoder pass over the real tokens: the linear layers and attention."""
    h, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = sum(layers * (2 * n * (4 * h * h + 2 * h * ff) + 4 * n * n * h) for n in lengths)
    return total / len(lengths)


def build_onnx(directory: Path) -> Path:
    """The default model's float32 encoder exported to ONNX and fused by onnxruntime's BERT
    optimiser. Runs in a child process (see ort_child)."""
    import torch
    from onnxruntime.transformers import optimizer

    from sentiment.e5_offline import load_encoder

    class Encoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask)[0]

    model, _ = load_encoder()
    model.set_attn_implementation("eager")  # the pattern onnxruntime fuses into Attention
    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 8:] = 0  # padded, or the export drops the mask
    raw, fused = directory / "encoder.onnx", directory / "fused.onnx"
    torch.onnx.export(
        Encoder(model),
        (ids, mask),
        str(raw),
        input_names=["input_ids", "attention_mask"],
        output_names=["hidden"],
        dynamic_axes={k: {0: "batch", 1: "tokens"} for k in ("input_ids", "attention_mask")},
        opset_version=17,
        dynamo=False,
    )
    config = model.config
    optimizer.optimize_model(
        str(raw),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    ).save_model_to_file(str(fused))
    return fused


def ort_seconds(
    fused: Path, texts: list[str], batch_size: int, max_tokens: int, max_length: int
) -> float:
    """One timed pass of the fused graph over `texts`, with the pipeline's tokens, batches,
    pooling and head. Runs in its own process: onnxruntime's threads in the same process
    as torch's halved torch's speed."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from sentiment.batching import length_batches, padded, token_ids
    from sentiment.e5_offline import xlmr_tokenizer, xlmr_tokenizer_file
    from sentiment.heads import load_head

    tokenizer, head = xlmr_tokenizer(xlmr_tokenizer_file()), load_head(BASELINE_HEAD)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(fused), options, providers=["CPUExecutionProvider"])
    hidden_size = session.get_outputs()[0].shape[-1]  # the one axis the export left fixed

    def probabilities(batch_texts: list[str]) -> Any:
        rows = token_ids(tokenizer, [f"query: {t}" for t in batch_texts], max_length)
        lengths = [len(r) for r in rows]
        order = sorted(range(len(rows)), key=lambda k: lengths[k], reverse=True)
        pooled = np.empty((len(rows), hidden_size), dtype=np.float32)
        for batch in length_batches(order, lengths, batch_size, max_tokens):
            ids, mask = padded([rows[k] for k in batch], tokenizer.pad_token_id, torch)
            feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
            (hidden,) = session.run(None, feed)
            m = mask.numpy()[..., None].astype(np.float32)
            pooled[batch] = (hidden * m).sum(1) / m.sum(1)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return head.probabilities(pooled)

    probabilities(texts[:64])
    start = time.perf_counter()
    probabilities(texts)
    return time.perf_counter() - start


def child(*args: str) -> str:
    """Run this script in a fresh process with hidden arguments; its last output line."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout.strip().splitlines()[-1]


def naive_path(head: Any, max_length: int) -> Callable[[list[str]], Any]:
    """One text at a time through transformers' BertModel and tokenizer, as a first script
    would (same weights, float32, the same tokens read)."""
    import torch

    from sentiment.e5_offline import load_encoder

    model, tokenizer = load_encoder()

    def probabilities(texts: list[str]) -> Any:
        out = []
        with torch.inference_mode():
            for text in texts:
                enc = tokenizer(
                    f"query: {text}", return_tensors="pt", truncation=True, max_length=max_length
                )
                hidden = model(**enc).last_hidden_state
                out.append(torch.nn.functional.normalize(hidden.mean(1), dim=-1))
        return head.probabilities(torch.cat(out).numpy())

    return probabilities


def score_chunk_size(classifier: Any) -> int:
    """Texts per classify call in `listener run` (before it had a name: 4 batches)."""
    try:
        from listener.pipeline import score_chunk_size as size
    except ImportError:
        return int(classifier.batch_size) * 4
    return size(classifier)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--naive", type=int, default=48, help="texts for the naive loop")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--build-onnx", help=argparse.SUPPRESS)  # child: export into DIR
    parser.add_argument("--run-onnx", help=argparse.SUPPRESS)  # child: time FILE once
    args = parser.parse_args()

    import torch

    from sentiment.batching import token_ids
    from sentiment.e5_offline import E5OfflineClassifier
    from sentiment.heads import load_head

    texts = real_texts(args.texts)
    if args.build_onnx:
        print(build_onnx(Path(args.build_onnx)))
        return
    default = E5OfflineClassifier()
    if args.run_onnx:
        print(
            ort_seconds(
                Path(args.run_onnx),
                texts,
                default.batch_size,
                default.max_tokens,
                default.max_length,
            )
        )
        return
    fp32 = E5OfflineClassifier(dtype="float32")
    chunk = score_chunk_size(default)
    queries = [f"query: {t}" for t in texts]
    lengths = [len(r) for r in token_ids(default.tokenizer, queries, default.max_length)]
    per_text = flops_per_text(default.model.config, lengths)
    print(
        f"{len(texts)} texts ({len(set(texts))} distinct), {sum(lengths) / len(lengths):.0f} "
        f"tokens and {per_text / 1e9:.2f} GFLOP each; {torch.get_num_threads()} threads; "
        f"the pipeline sends {chunk} texts per call"
    )

    def timed(run: Callable[[list[str]], Any], batch: list[str]) -> Callable[[], float]:
        run(batch[:64])  # warm: first-call allocations

        def once() -> float:
            start = time.perf_counter()
            run(batch)
            return time.perf_counter() - start

        return once

    def pipeline(classifier: Any) -> Callable[[list[str]], Any]:
        def run(batch: list[str]) -> Any:
            for i in range(0, len(batch), chunk):
                classifier.classify(batch[i : i + chunk])

        return run

    naive = texts[: args.naive]
    # name: (one timed pass -> seconds, precision, texts per pass)
    paths: dict[str, tuple[Callable[[], float], Any, int]] = {
        f"pipeline, {default.dtype}": (
            timed(pipeline(default), texts),
            next(default.model.parameters()).dtype,
            len(texts),
        ),
        "pipeline, float32": (timed(pipeline(fp32), texts), torch.float32, len(texts)),
        "naive transformers loop, float32": (
            timed(naive_path(load_head(BASELINE_HEAD), default.max_length), naive),
            torch.float32,
            len(naive),
        ),
    }
    ort_name = "ONNX Runtime fused graph, float32"
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_onnx:
            try:
                fused = child("--build-onnx", tmp)
            except RuntimeError as exc:
                print(f"(no ONNX Runtime baseline: {str(exc).strip().splitlines()[-1]})")
            else:
                run_args = ("--run-onnx", fused, "--texts", str(args.texts))
                paths[ort_name] = (lambda: float(child(*run_args)), torch.float32, len(texts))
        peaks = {dtype: gemm_peak(torch, dtype) for dtype in {p[1] for p in paths.values()}}
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, (once, _, _) in paths.items():
                times[name].append(once())

    print(
        "\npeak (best GEMM in this process): "
        + ", ".join(
            f"{str(d).removeprefix('torch.')} {p / 1e12:.2f} TFLOP/s = {p / per_text:.0f} texts/s"
            for d, p in peaks.items()
        )
    )
    rates = {name: paths[name][2] / statistics.median(seconds) for name, seconds in times.items()}
    print(f"\n{'path':<40} {'texts/s':>8} {'of peak':>8}")
    for name, rate in rates.items():
        share = rate * per_text / peaks[paths[name][1]]
        print(f"{name:<40} {rate:8.1f} {share:8.0%}")
    print()
    if ort_name in rates:
        ratio = rates["pipeline, float32"] / rates[ort_name]
        print(f"float32 pipeline / ONNX Runtime: {ratio:.2f}x")
    ratio = rates[f"pipeline, {default.dtype}"] / rates["naive transformers loop, float32"]
    print(f"default pipeline / naive loop: {ratio:.1f}x")
    print(f"({os.cpu_count()} cores; medians of {args.rounds} alternating rounds)")


if __name__ == "__main__":
    main()
