"""Export stored mentions with their scores: CSV, JSON Lines or Parquet, streamed in batches
so a large history never sits in memory. Times are UTC ISO 8601 (timestamps in Parquet)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from listener.storage import EXPORT_COLUMNS, ExportFilter, Storage
from listener.timeutil import parse_iso

COLUMNS = list(EXPORT_COLUMNS)
FLAGS = ("needs_review", "corrected")  # stored as 0/1, exported as booleans
BATCH = 5000

Batch = Sequence[tuple[Any, ...]]


def mention_batches(
    store: Storage,
    model: tuple[str, str | None],
    where: ExportFilter | None = None,
    *,
    time_order: bool = True,
) -> Iterator[Batch]:
    """Mentions with the model's scores and the effective label as lists of tuples in COLUMNS
    order (flags 0/1), the form Parquet is written from without a dict per row: oldest
    first, or with time_order=False in the order they were stored, which reads a large
    history front to back (Parquet's order: tools sort it as they load it)."""
    return store.export_batches(model, where or ExportFilter(), BATCH, time_order=time_order)


def mention_rows(
    store: Storage, model: tuple[str, str | None], where: ExportFilter | None = None
) -> Iterator[dict[str, Any]]:
    """The same mentions a row at a time, as dicts with booleans (CSV, JSON Lines)."""
    flags = [COLUMNS.index(c) for c in FLAGS]
    for batch in mention_batches(store, model, where):
        for values in batch:
            row = dict(zip(COLUMNS, values, strict=True))
            for i in flags:
                if values[i] is not None:
                    row[COLUMNS[i]] = bool(values[i])
            yield row


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


# Parquet types of the columns that are not text (COLUMNS names every column).
_KINDS = {
    "id": "int64",
    "published_at": "timestamp",
    "fetched_at": "timestamp",
    "rating": "float64",
    "reach": "int64",
    "score": "float64",
    "p_negative": "float64",
    "p_neutral": "float64",
    "p_positive": "float64",
    "needs_review": "bool",
    "corrected": "bool",
}


def write_parquet(batches: Iterable[Batch], path: Path) -> int:
    """Mention batches (COLUMNS order) as one row group each, built a column at a time;
    times become UTC timestamps so tools read them as times."""
    import pyarrow as pa

    timestamp = pa.timestamp("s", tz="UTC")
    types = {
        "int64": pa.int64(),
        "string": pa.string(),
        "float64": pa.float64(),
        "timestamp": timestamp,
        "bool": pa.bool_(),
    }
    kinds = [_KINDS.get(name, "string") for name in COLUMNS]
    schema = pa.schema([(name, types[kind]) for name, kind in zip(COLUMNS, kinds, strict=True)])

    def column(values: tuple[Any, ...], kind: str) -> Any:
        if kind == "timestamp":  # ISO 8601 text with its offset: Arrow parses it in C
            try:
                return pa.array(values, pa.string()).cast(timestamp)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # a form Arrow does not read
                return pa.array([parse_iso(v) for v in values], timestamp)
        if kind == "bool":  # 0/1 from storage; True/False from dict rows
            return pa.array([None if v is None else bool(v) for v in values], pa.bool_())
        return pa.array(values, types[kind])

    return _write_tables(
        (
            pa.Table.from_arrays(
                [
                    column(values, kind)
                    for values, kind in zip(zip(*batch, strict=True), kinds, strict=True)
                ],
                schema=schema,
            )
            for batch in batches
        ),
        path,
        schema,
    )


def _write_tables(tables: Iterable[Any], path: Path, schema: Any) -> int:
    import pyarrow.parquet as pq

    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        for table in tables:
            writer.write_table(table)
            n += table.num_rows
    return n


def write_parquet_rows(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Any rows as Parquet: mention rows with the export's types, others (corrections)
    with the types Arrow infers from the first batch."""
    import pyarrow as pa

    it = iter(rows)
    batches = iter(lambda: list(islice(it, BATCH)), [])
    first = next(batches, [])
    if not first or list(first[0]) == COLUMNS:
        as_tuples = ([tuple(row[c] for c in COLUMNS) for row in b] for b in chain([first], batches))
        return write_parquet((b for b in as_tuples if b), path)
    schema = pa.Table.from_pylist(first).schema
    tables = (pa.Table.from_pylist(b, schema=schema) for b in chain([first], batches))
    return _write_tables(tables, path, schema)


def write_rows(rows: Iterable[dict[str, Any]], fmt: str, output: str, *, bom: bool = False) -> int:
    """Write to a path ('-' for standard output; Parquet needs a file)."""
    if fmt == "parquet":
        if output == "-":
            raise ValueError("Parquet is binary: give a file with -o")
        return write_parquet_rows(rows, Path(output))
    writer: Callable[[Iterable[dict[str, Any]], IO[str]], int] = write_jsonl
    if fmt == "csv":

        def writer(r: Iterable[dict[str, Any]], out: IO[str]) -> int:
            return write_csv(r, out, bom=bom)

    if output == "-":
        import sys

        return writer(rows, sys.stdout)
    with open(output, "w", encoding="utf-8", newline="") as out:
        return writer(rows, out)
