"""A fine-tuned sentiment model stored as a small delta over multilingual-e5-small.

A model directory holds `model.json` (labels, pooling, prefix, LoRA rank and scale, the
calibration temperature and review threshold) and `adapter.safetensors` (each adapted layer's
LoRA matrices A and B in fp16, and the head). At load the low-rank update is merged into the
encoder's weights in memory, W += (alpha / rank) * B @ A, so scoring costs exactly what the
plain encoder costs. Built-in models live in sentiment/data/adapters/; `listener model train`
writes new ones (with a manifest of every training text and the dev figures beside them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment.base import LABELS, ModelUnavailable

BUILTIN_DIR = Path(__file__).parent / "data" / "adapters"
WEIGHTS = "adapter.safetensors"
CONFIG = "model.json"


def builtin_adapters() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.glob("*") if (p / CONFIG).exists())


def adapter_dir(name: str) -> Path | None:
    """The directory of a built-in model by name, or a model directory path; else None."""
    if (BUILTIN_DIR / name / CONFIG).exists():
        return BUILTIN_DIR / name
    path = Path(name).expanduser()
    return path if (path / CONFIG).exists() else None


@dataclass(frozen=True)
class Adapter:
    name: str
    path: Path
    config: dict[str, Any]
    digest: str  # of the weights and the config: the revision scores are stored under

    @property
    def temperature(self) -> float:
        return float(self.config.get("temperature") or 1.0)

    @property
    def review_below(self) -> float | None:
        value = self.config.get("review_below")
        return float(value) if value is not None else None

    def tensors(self) -> dict[str, Any]:
        from safetensors.torch import load_file

        return load_file(str(self.path / WEIGHTS))


def load_adapter(name: str) -> Adapter:
    path = adapter_dir(name)
    if path is None:
        raise ModelUnavailable(
            f"sentiment.head: {name!r} is not a model directory (no "
            f"{CONFIG}) nor a built-in model ({', '.join(builtin_adapters())})"
        )
    try:
        raw_config = (path / CONFIG).read_bytes()
        config = json.loads(raw_config)
        weights = (path / WEIGHTS).read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"sentiment.head: {path}: cannot be read: {exc}") from None
    if config.get("labels") != list(LABELS):
        raise ModelUnavailable(f"sentiment.head: {path}: labels are not {list(LABELS)}")
    digest = hashlib.sha256(raw_config + weights).hexdigest()[:12]
    shown = name if name in builtin_adapters() else path.name
    return Adapter(shown, path, config, digest)


def merge_lora(model: Any, tensors: dict[str, Any], scale: float) -> int:
    """Add each adapted layer's low-rank update to its weight; returns how many were merged."""
    import torch

    merged = 0
    with torch.no_grad():
        for key, a in tensors.items():
            if not key.endswith(".lora_A"):
                continue
            module = model.get_submodule(key.removesuffix(".lora_A"))
            b = tensors[key.removesuffix(".lora_A") + ".lora_B"]
            module.weight += (b.float() @ a.float()).to(module.weight.dtype) * scale
            merged += 1
    return merged


def head_layer(tensors: dict[str, Any]) -> Any:
    import torch

    weight, bias = tensors["head.weight"].float(), tensors["head.bias"].float()
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head.eval()


def save_adapter(out: Path, peft_encoder: Any, head: Any, config: dict[str, Any]) -> Path:
    """Write a model directory from a peft-wrapped encoder and its head."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Any] = {}
    for name, module in peft_encoder.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a is None or "default" not in lora_a:
            continue
        path = name.removeprefix("base_model.model.")
        tensors[f"{path}.lora_A"] = module.lora_A["default"].weight.detach().half().contiguous()
        tensors[f"{path}.lora_B"] = module.lora_B["default"].weight.detach().half().contiguous()
    tensors["head.weight"] = head.weight.detach().float().contiguous()
    tensors["head.bias"] = head.bias.detach().float().contiguous()
    save_file(tensors, str(out / WEIGHTS))
    (out / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return out
