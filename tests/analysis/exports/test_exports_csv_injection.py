"""CSV exports neutralise spreadsheet formulas in text cells; numbers stay numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from analysis.exports import Column, Table, export_stream, export_table
from tests.factories import ExposureFactory, make_experiment

DANGEROUS = ["=HYPERLINK(A1)", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode(), newline="")))


@pytest.mark.parametrize("text", DANGEROUS)
def test_csv_export__text_starting_with_formula_character__prefixed_with_apostrophe(
    text: str,
) -> None:
    # Given a text cell a spreadsheet would evaluate, next to a negative number
    table = Table(
        columns=(Column("name", "string"), Column("value", "float")),
        rows=[(text, -1.5)],
    )
    # When
    lines = b"".join(export_stream(table, "csv")).decode().split("\n")
    # Then the text is kept whole behind an apostrophe; the number is written as a number
    # (raw lines: Python's csv leaves a lone CR unquoted when rows end in LF)
    assert lines[1] == f"'{text},-1.5"


def test_csv_export__plain_text_and_integers__unchanged() -> None:
    table = Table(
        columns=(Column("unit_id", "string"), Column("units", "integer")),
        rows=[("u-1", -3), ("a=b", 4), (None, 5)],
    )
    rows = csv_rows(b"".join(export_stream(table, "csv")))
    assert rows[1:] == [["u-1", "-3"], ["a=b", "4"], ["", "5"]]


@pytest.mark.django_db
def test_units_export__unit_id_is_a_formula__escaped_in_csv_not_in_json() -> None:
    # Given a unit whose id is a formula
    experiment = make_experiment("inj")
    ExposureFactory(
        experiment=experiment,
        unit_id="=1+1",
        variant="control",
        first_exposed_at=dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
    )
    # When exported as CSV and as JSON
    content = b"".join(export_stream(export_table(experiment=experiment, level="units"), "csv"))
    as_json = b"".join(export_stream(export_table(experiment=experiment, level="units"), "json"))
    # Then only the CSV cell is neutralised: JSON consumers get the real id
    assert csv_rows(content)[1][0] == "'=1+1"
    assert b'"unit_id": "=1+1"' in as_json or b'"unit_id":"=1+1"' in as_json
