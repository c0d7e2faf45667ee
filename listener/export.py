"""Export stored mentions with their scores: CSV, JSON Lines or Parquet, streamed in batches
so a large history never sits in memory. Times are UTC ISO 8601 (timestamps in Parquet)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import IO, Any

from listener.storage import ExportFilter, Storage
from listener.timeutil import parse_iso

COLUMNS = [
    "id",
    "source_id",
    "external_id",
    "brands",
    "url",
    "author",
    "title",
    "text",
    "language",
    "published_at",
    "fetched_at",
    "rating",
    "reach",
    "label",
    "text_label",
    "score",
    "p_negative",
    "p_neutral",
    "p_positive",
    "needs_review",
    "corrected",
    "brand_labels",
    "model",
    "revision",
]
TIMES = ("published_at", "fetched_at")
BATCH = 5000


def mention_rows(
    store: Storage,
    model: tuple[str, str | None],
    *,
    brand: str | None = None,
    source: str | None = None,
    language: str | None = None,
    label: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Mentions with the model's scores and the effective label, oldest first."""
    where = ExportFilter(brand, source, language, label, since, until)
    for row in store.export_rows(model, where):
        probs = row.pop("scores")
        row.update({f"p_{k}": probs.get(k) for k in ("negative", "neutral", "positive")})
        yield {c: row[c] for c in COLUMNS}


def write_jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    n = 0
    for n, row in enumerate(rows, 1):  # noqa: B007
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return n


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...),
# @SUM(...), +cmd|...): OWASP's advice is to prefix such text cells with a single quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would read as a formula, made plain text."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(rows: Iterable[dict[str, Any]], *, bom: bool = False) -> Iterator[str]:
    """CSV text a row at a time (header first), for files and streamed HTTP responses.
    Text cells that would run as spreadsheet formulas are prefixed with '; `bom` starts the
    text with a UTF-8 byte order mark, which Excel needs to read non-Latin text."""
    buffer = io.StringIO()
    writer: csv.DictWriter | None = None
    if bom:
        buffer.write("\ufeff")
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(row))
            writer.writeheader()
        writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str], *, bom: bool = False) -> int:
    n = 0
    for n, line in enumerate(csv_lines(rows, bom=bom), 1):  # noqa: B007
        out.write(line)
    return n


def write_parquet(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Row groups of BATCH rows; times as UTC timestamps so tools read them as times."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("source_id", pa.string()),
            ("external_id", pa.string()),
            ("brands", pa.string()),
            ("url", pa.string()),
            ("author", pa.string()),
            ("title", pa.string()),
            ("text", pa.string()),
            ("language", pa.string()),
            ("published_at", pa.timestamp("s", tz="UTC")),
            ("fetched_at", pa.timestamp("s", tz="UTC")),
            ("rating", pa.float64()),
            ("reach", pa.int64()),
            ("label", pa.string()),
            ("text_label", pa.string()),
            ("score", pa.float64()),
            ("p_negative", pa.float64()),
            ("p_neutral", pa.float64()),
            ("p_positive", pa.float64()),
            ("needs_review", pa.bool_()),
            ("corrected", pa.bool_()),
            ("brand_labels", pa.string()),
            ("model", pa.string()),
            ("revision", pa.string()),
        ]
    )
    n = 0
    it = iter(rows)
    with pq.ParquetWriter(path, schema) as writer:
        while batch := [
            {**row, **{k: parse_iso(row[k]) for k in TIMES}} for row in islice(it, BATCH)
        ]:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    return n


def write_rows(rows: Iterable[dict[str, Any]], fmt: str, output: str, *, bom: bool = False) -> int:
    """Write to a path ('-' for standard output; Parquet needs a file)."""
    if fmt == "parquet":
        if output == "-":
            raise ValueError("Parquet is binary: give a file with -o")
        return write_parquet(rows, Path(output))
    writer: Callable[[Iterable[dict[str, Any]], IO[str]], int] = write_jsonl
    if fmt == "csv":

        def writer(r: Iterable[dict[str, Any]], out: IO[str]) -> int:
            return write_csv(r, out, bom=bom)

    if output == "-":
        import sys

        return writer(rows, sys.stdout)
    with open(output, "w", encoding="utf-8", newline="") as out:
        return writer(rows, out)
