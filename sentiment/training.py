"""Fine-tune the encoder for sentiment: LoRA on every layer (peft), a 3-class head, a loss that
lets two-label corpora teach polarity without teaching "never neutral", and calibration.

`listener model train OUT` runs it on the public corpora (sentiment/corpora.py); what it writes
(sentiment/adapters.py reads it) is small: the LoRA matrices in fp16, the head, the calibration
temperature, the review threshold, the dev figures, and a manifest of every training text.

Every choice (epochs, the model kept, temperature, threshold) is made on dev splits; test splits
are never read here.
"""

from __future__ import annotations

import json
import logging
import random
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sentiment.base import LABELS
from sentiment.corpora import Item
from sentiment.heads import macro_f1
from sentiment.preprocess import model_text

log = logging.getLogger("listener")

PREFIX = "query: "  # e5 was trained with it; the shipped heads used it too
TARGETS = ("query", "key", "value", "dense")  # every linear layer of every BERT layer


@dataclass
class Settings:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 3e-4
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.1
    max_length: int = 128
    per_group_cap: int = 4000  # texts per (corpus, language) per epoch: no corpus dominates
    warmup: float = 0.06
    review_share: float = 0.2  # share of dev items the review threshold flags
    threads: int | None = None
    seed: int = 13
    bf16: bool = True  # autocast where the CPU has native bf16


@dataclass
class Result:
    path: Path
    best_epoch: int
    dev: dict[str, float]  # macro-F1 per group, and their mean
    temperature: float
    review_below: float
    seconds: float
    examples_seen: int
    history: list[dict[str, Any]] = field(default_factory=list)


def partial_label_loss(logits: Any, targets: Any, allowed: Any) -> Any:
    """Cross-entropy over the labels a corpus can express: -log(p_y / sum of p over them).
    With all three allowed it is ordinary cross-entropy; with negative/positive only, the
    item says which way it leans, and nothing about how likely neutral is."""
    import torch

    masked = logits.masked_fill(~allowed, float("-inf"))
    return (torch.logsumexp(masked, dim=-1) - logits.gather(1, targets[:, None])[:, 0]).mean()


def lr_factor(step: int, steps: int, warm: int) -> float:
    """Linear warm-up over `warm` steps, then linear decay to zero at `steps`."""
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (steps - step) / max(1, steps - warm))


def group(item: Item) -> str:
    return f"{item.corpus}/{item.language}"


class SentimentModel:
    """Encoder + mean pooling + linear head; what training optimises and evaluation runs."""

    def __init__(self, encoder: Any, tokenizer: Any, max_length: int) -> None:
        import torch

        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = max_length
        hidden = encoder.config.hidden_size
        self.head = torch.nn.Linear(hidden, len(LABELS))
        self.dropout = torch.nn.Dropout(0.1)

    def encode(self, texts: Sequence[str]) -> dict[str, Any]:
        return self.tokenizer(
            [PREFIX + model_text(t) for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_token_type_ids=False,
        )

    def logits(self, batch: dict[str, Any], train: bool = False) -> Any:
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        if train:
            pooled = self.dropout(pooled)
        return self.head(pooled.float())

    def predict_logits(self, texts: Sequence[str], batch_size: int = 64) -> Any:
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), len(LABELS))
        self.encoder.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                out[idx] = self.logits(self.encode([texts[i] for i in idx])).float()
        return out


def _lengths(model: SentimentModel, items: Sequence[Item]) -> list[int]:
    ids = model.tokenizer(
        [PREFIX + model_text(i.text) for i in items], truncation=True, max_length=model.max_length
    )["input_ids"]
    return [len(x) for x in ids]


def _epoch_batches(
    items: Sequence[Item], lengths: Sequence[int], s: Settings, rng: random.Random
) -> list[list[int]]:
    """One epoch: at most per_group_cap items of each group, in batches of similar length."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_group[group(item)].append(i)
    chosen: list[int] = []
    for members in by_group.values():
        rng.shuffle(members)
        chosen += members[: s.per_group_cap]
    rng.shuffle(chosen)
    batches = []
    window = s.batch_size * 50
    for start in range(0, len(chosen), window):  # sort within windows: little padding
        part = sorted(chosen[start : start + window], key=lambda i: lengths[i])
        batches += [part[j : j + s.batch_size] for j in range(0, len(part), s.batch_size)]
    rng.shuffle(batches)
    return batches


def dev_scores(model: SentimentModel, items: Sequence[Item]) -> tuple[dict[str, float], Any]:
    """Macro-F1 per group on dev items (over negative/positive for two-label corpora)."""
    logits = model.predict_logits([i.text for i in items])
    scores: dict[str, float] = {}
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_group[group(item)].append(i)
    for name, idx in sorted(by_group.items()):
        allowed = items[idx[0]].labels
        cols = [LABELS.index(label) for label in allowed]
        predicted = [allowed[int(k)] for k in logits[idx][:, cols].argmax(1)]
        scores[name] = macro_f1(predicted, [items[i].label for i in idx], allowed)
    scores["mean"] = sum(scores.values()) / max(len(scores), 1)
    return scores, logits


def fit_temperature(logits: Any, targets: Any) -> float:
    """Temperature scaling (Guo et al. 2017): the T that minimises dev NLL of softmax(z / T)."""
    import torch

    log_t = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> Any:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def review_threshold(probabilities: Any, share: float) -> float:
    """The top probability under which `share` of dev items fall: flagged for review."""

    top = probabilities.max(1).values.sort().values
    return float(top[min(int(len(top) * share), len(top) - 1)])


def train(
    train_items: Sequence[Item],
    dev_items: Sequence[Item],
    encoder: Any,
    tokenizer: Any,
    out: Path,
    settings: Settings | None = None,
    base: dict[str, str] | None = None,
    progress: Callable[[str], None] = log.info,
    on_step: Callable[[int, int], None] | None = None,
) -> Result:
    """on_step(steps done, steps in all) after every batch, for a progress bar."""
    import torch
    from peft import LoraConfig, get_peft_model

    from sentiment.adapters import save_adapter

    s = settings or Settings()
    # transformers deprecates a name peft still calls; nothing for our users to act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    rng = random.Random(s.seed)
    torch.manual_seed(s.seed)
    if s.threads:
        torch.set_num_threads(s.threads)
    start = time.monotonic()
    lora = LoraConfig(
        r=s.rank,
        lora_alpha=s.alpha,
        lora_dropout=s.dropout,
        target_modules=list(TARGETS),
        bias="none",
    )
    peft_encoder = get_peft_model(encoder, lora)
    model = SentimentModel(peft_encoder, tokenizer, s.max_length)
    params = [p for p in peft_encoder.parameters() if p.requires_grad] + list(
        model.head.parameters()
    )
    lengths = _lengths(model, train_items)
    plan = [_epoch_batches(train_items, lengths, s, rng) for _ in range(s.epochs)]
    steps = sum(len(p) for p in plan)
    optimiser = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.01)
    warm = max(1, int(steps * s.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda k: lr_factor(k, steps, warm))
    use_bf16 = s.bf16 and _native_bf16(torch)
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, Any]] | None = None
    seen = step = 0
    for epoch, batches in enumerate(plan, 1):
        peft_encoder.train()
        total = 0.0
        for n, idx in enumerate(batches, 1):
            batch = model.encode([train_items[i].text for i in idx])
            targets = torch.tensor([LABELS.index(train_items[i].label) for i in idx])
            allowed = torch.tensor(
                [[label in train_items[i].labels for label in LABELS] for i in idx]
            )
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                logits = model.logits(batch, train=True)
            loss = partial_label_loss(logits.float(), targets, allowed)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            total += loss.item()
            seen += len(idx)
            step += 1
            if on_step is not None:
                on_step(step, steps)
            if n % 100 == 0 or n == len(batches):
                rate = seen / (time.monotonic() - start)
                progress(
                    f"epoch {epoch}/{s.epochs}: batch {n}/{len(batches)}, loss "
                    f"{total / n:.4f}, {rate:.0f} texts/s"
                )
        scores, _ = dev_scores(model, dev_items)
        history.append({"epoch": epoch, "loss": total / max(len(batches), 1), "dev": scores})
        progress(f"epoch {epoch}: dev mean macro-F1 {scores['mean']:.4f}")
        if best is None or scores["mean"] > best[0]:
            best = (scores["mean"], epoch, _trainable_state(peft_encoder, model))
    assert best is not None
    _load_trainable_state(peft_encoder, model, best[2])
    scores, logits = dev_scores(model, dev_items)
    three = [i for i, item in enumerate(dev_items) if len(item.labels) == 3]
    targets = torch.tensor([LABELS.index(dev_items[i].label) for i in three])
    temperature = fit_temperature(logits[three], targets) if three else 1.0
    probs = torch.softmax(logits[three] / temperature, dim=1) if three else torch.ones(1, 3) / 3
    threshold = review_threshold(probs, s.review_share)
    seconds = time.monotonic() - start
    result = Result(out, best[1], scores, temperature, threshold, seconds, seen, history)
    save_adapter(
        out,
        peft_encoder,
        model.head,
        config={
            "base": base or {},
            "labels": list(LABELS),
            "prefix": PREFIX,
            "normalise": "sentiment.preprocess.model_text",
            "pooling": "mean",
            "max_length": s.max_length,
            "lora": {"rank": s.rank, "alpha": s.alpha, "targets": list(TARGETS)},
            "temperature": temperature,
            "review_below": threshold,
            "settings": asdict(s),
        },
    )
    (out / "metrics.json").write_text(
        json.dumps(
            {
                "best_epoch": best[1],
                "dev": scores,
                "temperature": temperature,
                "review_below": threshold,
                "seconds": round(seconds),
                "texts_seen": seen,
                "train_items": len(train_items),
                "dev_items": len(dev_items),
                "history": history,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    return result


def _native_bf16(torch: Any) -> bool:
    from sentiment.transformers_classifier import pick_dtype

    return pick_dtype(torch, "cpu", "auto") == torch.bfloat16


def _trainable_state(encoder: Any, model: SentimentModel) -> dict[str, Any]:
    state = {k: v.detach().clone() for k, v in encoder.named_parameters() if v.requires_grad}
    state |= {f"head.{k}": v.detach().clone() for k, v in model.head.state_dict().items()}
    return state


def _load_trainable_state(encoder: Any, model: SentimentModel, state: dict[str, Any]) -> None:
    params = dict(encoder.named_parameters())
    for k, v in state.items():
        if k.startswith("head."):
            continue
        params[k].data.copy_(v)
    model.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})


def evaluate_items(
    predict: Callable[[Sequence[str]], Any], items: Sequence[Item]
) -> dict[str, float]:
    """Macro-F1 per group for a function giving (n, 3) probabilities."""
    probs = predict([i.text for i in items])
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_group[group(item)].append(i)
    out = {}
    for name, idx in by_group.items():
        allowed = items[idx[0]].labels
        cols = [LABELS.index(label) for label in allowed]
        predicted = [allowed[max(range(len(cols)), key=lambda c: probs[i][cols[c]])] for i in idx]
        out[name] = macro_f1(predicted, [items[i].label for i in idx], allowed)
    return out


__all__ = [
    "Settings",
    "evaluate_items",
    "fit_temperature",
    "partial_label_loss",
    "review_threshold",
    "train",
]


DEFAULT_CORPORA = ("umsab", "arsarcasm", "et-valence", "xed", "uci", "sentirueval")


def prepare(
    items: Sequence[Item], held_out: Sequence[str] = ()
) -> tuple[list[Item], list[Item], dict[str, int]]:
    """(train items, dev items, dropped counts): deduplicated, none in any test split."""
    from sentiment.corpora import training_set

    kept, dropped = training_set(items, held_out)
    return ([i for i in kept if i.split == "train"], [i for i in kept if i.split == "dev"], dropped)


def train_public(
    out: Path,
    items: Sequence[Item],
    settings: Settings | None = None,
    *,
    held_out: Sequence[str] = (),
    limit: int | None = None,
    progress: Callable[[str], None] = log.info,
    on_step: Callable[[int, int], None] | None = None,
) -> Result:
    """Fine-tune multilingual-e5-small on labelled items and write the model to `out`, with a
    manifest of every text trained on (sentiment/corpora.write_manifest)."""
    from sentiment.corpora import write_manifest
    from sentiment.e5_offline import ENCODER, ENCODER_REVISION, load_encoder

    train_items, dev_items, dropped = prepare(items, held_out)
    if limit:
        rng = random.Random(0)
        train_items = rng.sample(train_items, min(limit, len(train_items)))
        dev_items = rng.sample(dev_items, min(max(limit // 5, 50), len(dev_items)))
    progress(
        f"{len(train_items)} training and {len(dev_items)} dev texts; left out: "
        + ", ".join(f"{n} {why}" for why, n in dropped.items())
    )
    out.mkdir(parents=True, exist_ok=True)
    write_manifest([*train_items, *dev_items], out / "manifest.jsonl.gz")
    encoder, tokenizer = load_encoder()
    return train(
        train_items,
        dev_items,
        encoder,
        tokenizer,
        out,
        settings,
        base={"encoder": ENCODER, "revision": ENCODER_REVISION},
        progress=progress,
        on_step=on_step,
    )
