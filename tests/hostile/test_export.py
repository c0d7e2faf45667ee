"""Exports opened in a spreadsheet: text that looks like a formula stays text."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from click.testing import CliRunner

from listener.cli import cli
from listener.export import spreadsheet_safe
from tests.history import History, Post


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        (
            '=HYPERLINK("http://evil.example","click")',
            '\'=HYPERLINK("http://evil.example","click")',
        ),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("＝1+1", "'＝1+1"),
        ("a plain review", "a plain review"),
        (-0.75, -0.75),
        (None, None),
        (3, 3),
    ],
)
def test_formula_cells(cell, written):
    assert spreadsheet_safe(cell) == written


def test_cli_export_writes_formulas_as_text_and_a_bom_on_request(store, tmp_path, database):
    History(store).add(
        Post("negative", timedelta(hours=1), title="=1+1", text="@risk", author="-mallory")
    )
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"database: {database}\nbrands: [{{name: Acme}}]\nsentiment: {{model: m, revision: '1'}}\n"
    )
    plain = CliRunner().invoke(cli, ["-c", str(config), "export", "--format", "csv"])
    [row] = list(csv.DictReader(io.StringIO(plain.output)))
    assert (row["title"], row["text"], row["author"]) == ("'=1+1", "'@risk", "'-mallory")
    assert row["score"].startswith("-")  # a number, left as a number
    out = tmp_path / "excel.csv"
    CliRunner().invoke(
        cli, ["-c", str(config), "export", "--format", "csv", "--bom", "-o", str(out)]
    )
    assert out.read_bytes().startswith(b"\xef\xbb\xbfid,")
