"""Streamed exports of an experiment: ``summary``, ``units`` or ``events`` as CSV, JSON, Parquet.

An export is a `Table` (typed columns and a lazy iterator of flat rows, read from the database
in chunks through a server-side cursor on PostgreSQL) turned into bytes by one of three writers.
Nothing holds more than one chunk of rows, or one Parquet row group, so memory stays flat
whatever the experiment's size; the API, the admin and ``export_experiment`` share this code.

Columns (docs/api.md §5 "export columns"; extra columns are allowed there):

- ``summary``: one row per metric × treatment of the latest finished snapshot, from its §5
  results: ``snapshot_id, metric, role, variant, baseline, units, baseline_units, mean,
  variance, baseline_mean, baseline_variance, absolute_effect, absolute_ci_low,
  absolute_ci_high, relative_effect, relative_ci_low, relative_ci_high, p_value,
  adjusted_p_value, significant, decision, reason, adjusted_ci_low, adjusted_ci_high,
  effective_alpha, harm``: each arm's units, mean and variance as analysed (winsorized, CUPED
  adjusted when it applied), then docs/api.md §7's deciding interval, its level and a
  guardrail's harm verdict. The same flat columns in CSV, JSON and Parquet (the API's
  ``absolute_ci: [low, high]`` is ``absolute_ci_low`` / ``absolute_ci_high`` everywhere).
- ``units``: ``unit_id, variant, first_exposed_at`` and, per metric of the experiment (in the
  analysis' metric order), its per-unit value as `analysis.selectors.unit_values_sql`
  documents: the analysed units only, values before winsorization, ``mean`` null without
  events, ``ratio`` null when the denominator is 0. A ratio metric adds ``<key>_numerator``
  and ``<key>_denominator`` (the dashboard's ratio is Σnumerator / Σdenominator, not a mean of
  per-unit ratios). A winsorized metric adds ``<key>_winsorized`` (a ratio:
  ``<key>_numerator_winsorized`` and ``<key>_denominator_winsorized``), the value capped at
  the percentile the analysis used (`analysis.selectors.winsorize_caps`). Conversions and
  counts are integers. A metric key equal to one of the first three column names is prefixed
  with ``metric_``. docs/exports.md reproduces the results page from these columns.
- ``events``: ``event_id, type, unit_id, experiment, variant, name, value, timestamp``, one
  time line (ordered by timestamp): every raw exposure of the experiment (``name`` and
  ``value`` null) and every outcome, at any time, of a unit exposed to it (``variant`` = the
  variant of the unit's first exposure, multiple-variant units included: these are raw data).

Timestamps are UTC: ISO 8601 with ``Z`` in CSV and JSON, ``timestamp[us, UTC]`` in Parquet.
Missing values are empty in CSV and null elsewhere; non-finite floats become missing values.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import OuterRef

from analysis.selectors import latest_snapshot, unit_values_sql, winsorize_caps
from core.errors import NotFoundError
from events.models import Exposure, ExposureEvent, Outcome
from experiments.models import Aggregation, Experiment

FORMATS = ("csv", "json", "parquet")
LEVELS = ("summary", "units", "events")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}
# Rows fetched from the database per round trip, rows per Parquet row group, and the size of
# the text chunks handed to the response: together they bound the memory of an export.
FETCH_ROWS = 2_000
ROW_GROUP_ROWS = 20_000
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # "string" | "integer" | "float" | "boolean" | "timestamp"


@dataclass(frozen=True, slots=True)
class Table:
    """What an export writes: typed columns and their rows (flat tuples), read lazily."""

    columns: tuple[Column, ...]
    rows: Iterable[tuple[Any, ...]]
    # Regroups a JSON record's values (summary intervals); None: one key per column.
    json_shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def export_filename(*, experiment: Experiment, level: str, fmt: str) -> str:
    # Keys are slugs, so the name needs no quoting beyond the usual double quotes.
    return f"{experiment.key}-{level}.{fmt}"


def export_table(*, experiment: Experiment, level: str) -> Table:
    """The table of `level`. NotFoundError: a summary with no finished snapshot yet.

    Everything that can fail on bad input happens here, before any byte is streamed; reading
    the rows starts only when the table's rows are iterated.
    """
    if level == "summary":
        return _summary_table(experiment)
    if level == "units":
        return _units_table(experiment)
    if level == "events":
        return _events_table(experiment)
    raise ValueError(f"unknown export level {level!r}")


def export_stream(table: Table, fmt: str) -> Iterator[bytes]:
    """The table encoded as `fmt`, in chunks of about CHUNK_BYTES (Parquet: one row group)."""
    if fmt == "csv":
        return _csv_chunks(table)
    if fmt == "json":
        return _json_chunks(table)
    if fmt == "parquet":
        return _parquet_chunks(table)
    raise ValueError(f"unknown export format {fmt!r}")


# --- Tables ----------------------------------------------------------------------------------

SUMMARY_COLUMNS = (
    Column("snapshot_id", "integer"),
    Column("metric", "string"),
    Column("role", "string"),
    Column("variant", "string"),
    Column("baseline", "string"),
    Column("units", "integer"),
    Column("baseline_units", "integer"),
    # Each arm as the analysis saw it (docs/api.md §8 "variants"): after winsorization and CUPED.
    Column("mean", "float"),
    Column("variance", "float"),
    Column("baseline_mean", "float"),
    Column("baseline_variance", "float"),
    Column("absolute_effect", "float"),
    Column("absolute_ci_low", "float"),
    Column("absolute_ci_high", "float"),
    Column("relative_effect", "float"),
    Column("relative_ci_low", "float"),
    Column("relative_ci_high", "float"),
    Column("p_value", "float"),
    Column("adjusted_p_value", "float"),
    Column("significant", "boolean"),
    Column("decision", "string"),
    Column("reason", "string"),
    # docs/api.md §7: the interval the decision is read from, its level, and guardrails' harm.
    Column("adjusted_ci_low", "float"),
    Column("adjusted_ci_high", "float"),
    Column("effective_alpha", "float"),
    Column("harm", "boolean"),
)
UNIT_COLUMNS = (
    Column("unit_id", "string"),
    Column("variant", "string"),
    Column("first_exposed_at", "timestamp"),
)
EVENT_COLUMNS = (
    Column("event_id", "string"),
    Column("type", "string"),
    Column("unit_id", "string"),
    Column("experiment", "string"),
    Column("variant", "string"),
    Column("name", "string"),
    Column("value", "float"),
    Column("timestamp", "timestamp"),
)


def _summary_table(experiment: Experiment) -> Table:
    snapshot = latest_snapshot(experiment=experiment)
    results = snapshot.typed_results() if snapshot is not None else None
    if snapshot is None or results is None:
        raise NotFoundError(
            f"No finished snapshot for '{experiment.key}' yet; POST .../analyze to compute one.",
            code="no_results",
        )
    rows = []
    for metric in results.metrics:
        arms = {v.variant: v for v in metric.variants}
        for c in metric.comparisons:
            arm, base = arms.get(c.variant), arms.get(c.baseline)
            absolute = c.absolute_ci or (None, None)
            relative = c.relative_ci or (None, None)
            adjusted = c.adjusted_ci or absolute
            rows.append(
                (
                    snapshot.pk,
                    metric.metric,
                    metric.role,
                    c.variant,
                    c.baseline,
                    arm.units if arm else None,
                    base.units if base else None,
                    arm.mean if arm else None,
                    arm.variance if arm else None,
                    base.mean if base else None,
                    base.variance if base else None,
                    c.absolute_effect,
                    absolute[0],
                    absolute[1],
                    c.relative_effect,
                    relative[0],
                    relative[1],
                    c.p_value,
                    c.adjusted_p_value,
                    c.significant,
                    c.decision,
                    c.reason,
                    adjusted[0],
                    adjusted[1],
                    c.effective_alpha,
                    c.harm,
                )
            )
    # The same flat columns in every format (JSON too), so one reader fits all three.
    return Table(SUMMARY_COLUMNS, rows)


def _units_table(experiment: Experiment) -> Table:
    links = list(experiment.metrics.select_related("metric"))  # the analysis' order
    metrics = [link.metric for link in links]
    taken = {c.name for c in UNIT_COLUMNS}
    columns: list[Column] = list(UNIT_COLUMNS)
    # Per metric, how a row's values become cells: the SQL gives one value (three for a ratio:
    # ratio, numerator, denominator); capped columns get their winsorized twin after them.
    plans: list[tuple[int, dict[int, float | None]]] = []
    for m in metrics:
        name = f"metric_{m.key}" if m.key in taken else m.key
        whole = m.aggregation in (Aggregation.CONVERSION, Aggregation.COUNT)
        columns.append(Column(name, "integer" if whole else "float"))
        caps = winsorize_caps(experiment=experiment, metric=m)
        if m.aggregation == Aggregation.RATIO:
            columns += [
                Column(f"{name}_numerator", "float"),
                Column(f"{name}_denominator", "float"),
            ]
            # The analysis caps the numerator and the denominator, each at its own percentile.
            capped = {1: caps.get("y"), 2: caps.get("d")} if caps else {}
            for offset in capped:
                part = "numerator" if offset == 1 else "denominator"
                columns.append(Column(f"{name}_{part}_winsorized", "float"))
            plans.append((3, capped))
        else:
            capped = {0: caps.get("y")} if caps else {}
            if capped:
                columns.append(Column(f"{name}_winsorized", "float"))
            plans.append((1, capped))

    def cells(values: list[Any]) -> Iterator[Any]:
        at = 0
        for width, capped in plans:
            own = values[at : at + width]
            at += width
            yield from own
            for offset, cap in capped.items():
                value = own[offset]
                yield value if value is None or cap is None else min(value, cap)

    def rows() -> Iterator[tuple[Any, ...]]:
        sql, params = unit_values_sql(experiment=experiment, metrics=metrics)
        for unit_id, variant, t0, *values in _fetch(sql, params):
            yield (unit_id, variant, _utc(t0), *cells(values))

    return Table(tuple(columns), rows())


def _events_table(experiment: Experiment) -> Table:
    key = experiment.key

    def rows() -> Iterator[tuple[Any, ...]]:
        exposures = (
            ExposureEvent.objects.filter(experiment=experiment)
            .order_by("timestamp", "event_id")
            .values_list("timestamp", "event_id", "unit_id", "variant")
            .iterator(chunk_size=FETCH_ROWS)
        )
        exposed = Exposure.objects.filter(experiment=experiment)
        outcomes = (
            Outcome.objects.filter(unit_id__in=exposed.values("unit_id"))
            .annotate(variant=exposed.filter(unit_id=OuterRef("unit_id")).values("variant")[:1])
            .order_by("timestamp", "event_id")
            .values_list("timestamp", "event_id", "unit_id", "variant", "name", "value")
            .iterator(chunk_size=FETCH_ROWS)
        )
        # Both streams come sorted by time from the database; merging them keeps one row of
        # each in memory. Exposures first on equal times: a unit is exposed, then acts.
        timeline = heapq.merge(
            ((t, 0, e, u, v, None, None) for t, e, u, v in exposures),
            ((t, 1, e, u, v, n, x) for t, e, u, v, n, x in outcomes),
            key=lambda row: row[:3],
        )
        for timestamp, kind, event_id, unit_id, variant, name, value in timeline:
            kind_name = "exposure" if kind == 0 else "outcome"
            yield (event_id, kind_name, unit_id, key, variant, name, value, _utc(timestamp))

    return Table(EVENT_COLUMNS, rows())


def _fetch(sql: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of a raw query, FETCH_ROWS at a time (a server-side cursor on PostgreSQL)."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(FETCH_ROWS):
            yield from chunk


def _utc(value: dt.datetime | str | None) -> dt.datetime | None:
    """An aware UTC datetime from what a raw query returns (SQLite: naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


# --- Writers ---------------------------------------------------------------------------------


def _iso(value: dt.datetime) -> str:
    # The API's own style (DRF): "+00:00" written as "Z".
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


# A spreadsheet reads a cell starting with one of these as a formula (CSV/formula injection,
# OWASP): a unit id or event name like "=HYPERLINK(...)" would run when an analyst opens the
# file. A leading apostrophe makes it text; only text columns get it, numbers stay numbers.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> Any:
    """A text cell that a spreadsheet will not evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_cell(kind: str) -> Callable[[Any], Any] | None:
    """How a value of `kind` is written to CSV; None: as is (csv writes None as empty)."""
    if kind == "string":
        return csv_text
    if kind == "timestamp":
        return lambda v: None if v is None else _iso(v)
    if kind == "boolean":
        return lambda v: None if v is None else ("true" if v else "false")
    if kind == "float":
        return _finite
    return None


def _json_value(kind: str) -> Callable[[Any], Any] | None:
    if kind == "timestamp":
        return lambda v: None if v is None else _iso(v)
    if kind == "float":
        return lambda v: None if v is None else _finite(float(v))
    return None


def _converted(
    rows: Iterable[tuple[Any, ...]], converters: list[Callable[[Any], Any] | None]
) -> Iterator[Sequence[Any]]:
    """Rows with the converters applied to their columns (only where there is one)."""
    used = [(i, f) for i, f in enumerate(converters) if f is not None]
    if not used:
        yield from rows
        return
    for row in rows:
        values = list(row)
        for i, f in used:
            values[i] = f(values[i])
        yield values


def _csv_chunks(table: Table) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_text(c.name) for c in table.columns])
    for row in _converted(table.rows, [_csv_cell(c.kind) for c in table.columns]):
        writer.writerow(row)
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _json_chunks(table: Table) -> Iterator[bytes]:
    """A JSON array of objects, one per line, written as it goes."""
    names = [c.name for c in table.columns]
    shape = table.json_shape
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    parts: list[str] = ["["]
    size, separator = 1, "\n"
    for row in _converted(table.rows, [_json_value(c.kind) for c in table.columns]):
        record = dict(zip(names, row, strict=True))
        text = separator + encode(shape(record) if shape else record)
        separator = ",\n"
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode()
            parts, size = [], 0
    parts.append("\n]\n")
    yield "".join(parts).encode()


class _Drain:
    """A write-only file for pyarrow that keeps what was written until the next `take()`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.parts.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _parquet_chunks(table: Table) -> Iterator[bytes]:
    """One row group per ROW_GROUP_ROWS rows, yielded as soon as pyarrow has written it.

    Rows become Arrow arrays FETCH_ROWS at a time, so Python objects exist for one fetch only
    while a row group (compact Arrow memory) fills up.
    """
    import pyarrow as pa  # imported here: the API process pays for it only when exporting
    import pyarrow.parquet as pq

    # Arrow's default allocator (mimalloc) keeps freed row groups for reuse; the system one
    # hands large buffers back, which keeps a long export's peak at one row group.
    pa.set_memory_pool(pa.system_memory_pool())

    types = {
        "string": pa.string(),
        "integer": pa.int64(),
        "float": pa.float64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    schema = pa.schema([pa.field(c.name, types[c.kind]) for c in table.columns])
    kinds = [c.kind for c in table.columns]
    drain = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(drain, mode="w"), schema, use_dictionary=["variant"])

    def to_batch(rows: list[tuple[Any, ...]]) -> Any:
        columns = zip(*rows, strict=True)
        arrays = [
            _arrow_array(values, kind, field.type)
            for values, kind, field in zip(columns, kinds, schema, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    try:
        batches: list[Any] = []
        rows: list[tuple[Any, ...]] = []
        filled = 0
        for row in table.rows:
            rows.append(row)
            if len(rows) < FETCH_ROWS:
                continue
            batches.append(to_batch(rows))
            filled += len(rows)
            rows = []
            if filled >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(batches, schema=schema))
                batches, filled = [], 0
                yield drain.take()
        if rows:
            batches.append(to_batch(rows))
        if batches:
            writer.write_table(pa.Table.from_batches(batches, schema=schema))
    finally:
        writer.close()
    yield drain.take()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _arrow_array(values: tuple[Any, ...], kind: str, arrow_type: Any) -> Any:
    """An Arrow array built from its buffers (validity bitmap, offsets, data) with numpy.

    Not `pyarrow.array`: it imports pandas whenever pandas is installed (some 40 MB of the
    export's memory budget) to check whether its input is a pandas object.
    """
    import numpy as np
    import pyarrow as pa

    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    nulls = n - int(np.count_nonzero(valid))
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    if kind == "string":
        encoded = [b"" if v is None else str(v).encode() for v in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        if offsets[-1] >= 2**31:
            raise ValueError("a batch of strings over 2 GiB")  # FETCH_ROWS keeps it far below
        data = [pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))]
    elif kind == "boolean":
        bits = np.fromiter((bool(v) for v in values), dtype=bool, count=n)
        data = [pa.py_buffer(np.packbits(bits, bitorder="little"))]
    elif kind == "timestamp":
        micros = ((v - _EPOCH) // _MICROSECOND if v is not None else 0 for v in values)
        data = [pa.py_buffer(np.fromiter(micros, dtype=np.int64, count=n))]
    elif kind == "float":
        floats = np.fromiter((0.0 if v is None else v for v in values), dtype=float, count=n)
        finite = np.isfinite(floats)
        if not finite.all():  # NaN and ±inf are written as missing, as in CSV and JSON
            valid &= finite
            nulls = n - int(np.count_nonzero(valid))
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        data = [pa.py_buffer(floats)]
    else:
        data = [pa.py_buffer(np.fromiter((v or 0 for v in values), dtype=np.int64, count=n))]
    return pa.Array.from_buffers(arrow_type, n, [validity, *data], null_count=nulls)
