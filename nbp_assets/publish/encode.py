"""The week's rows as checked CSV chunks for COPY: batches in, (rows, bytes) out. No database.

Each batch is validated vectorised (Arrow compute) and a bad one raises ValueError naming
its column, its rows and a few examples, before any later batch is read.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Iterable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from nbp_assets.publish.tables import COLUMNS, COPIED, TEXT_COLUMNS

CHUNK = 50_000  # rows per CSV write (~2.5 MB), and per batch when a DataFrame is published
# Longest values accepted: an identifier is a key, never a document (a 1 MB party_id once
# failed the primary key build with "index row too large", after loading the whole week).
_MAX_CHARS = {"party_id": 64, "product_id": 64, "jurisdiction": 64, "primary_signal": 64, "model_version": 128}
EMPTY = "refusing to publish an empty week: the apps' nbp_current is left as it is"


def check_week(evaluated_at: datetime) -> None:
    if not isinstance(evaluated_at, datetime) or evaluated_at.tzinfo is not None:
        raise ValueError(f"evaluated_at must be a zone-naive datetime (TIMESTAMP), got {evaluated_at!r}")


def check_columns(names: list[str]) -> None:
    if sorted(names) != sorted(COLUMNS):
        missing, extra = sorted(set(COLUMNS) - set(names)), sorted(set(names) - set(COLUMNS))
        doubled = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(
            f"nbp_current needs exactly the columns {COLUMNS}: missing {missing}, unexpected {extra}"
            + (f", repeated {doubled}" if doubled else "")
        )


def check_frame(rows: pd.DataFrame | Iterable[pa.RecordBatch]) -> None:
    """A DataFrame is refused (empty, wrong columns) before connecting; a stream as it comes."""
    if isinstance(rows, pd.DataFrame):
        if rows.empty:
            raise ValueError(EMPTY)
        check_columns([str(c) for c in rows.columns])


def batches(rows: pd.DataFrame | Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The rows as Arrow record batches, one at a time: a DataFrame in CHUNK-row slices, an
    iterable (a RecordBatchReader, a generator, Snowflake's batches of Tables) as it comes."""
    if isinstance(rows, pd.DataFrame):
        for start in range(0, len(rows), CHUNK):
            try:
                batch = pa.RecordBatch.from_pandas(rows.iloc[start : start + CHUNK], preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"cannot publish nbp_current: {exc}") from None  # e.g. an object column of mixed types
            yield batch
            del batch
        return
    if isinstance(rows, (pa.RecordBatch, pa.Table)):
        rows = [rows]
    for item in rows:
        if isinstance(item, pa.RecordBatch):
            yield item
        elif isinstance(item, pa.Table):  # snowflake-connector's fetch_arrow_batches() yields Tables
            if item.num_rows == 0:
                check_columns(item.schema.names)
            yield from item.to_batches()
        else:
            raise TypeError(
                f"publish_current needs a DataFrame or an iterable of pyarrow.RecordBatch, got an item {type(item)}"
            )
        del item  # let go of this batch before the source produces the next one


def first_batch(stream: Iterator[pa.RecordBatch], evaluated_at: datetime) -> pa.RecordBatch:
    """The first non-empty batch of the week, checked; ValueError if the week is empty."""
    first = next((b for b in (checked(b, evaluated_at, 0) for b in stream) if b.num_rows), None)
    if first is None:
        raise ValueError(EMPTY)
    return first


def checked(batch: pa.RecordBatch, evaluated_at: datetime, offset: int) -> pa.RecordBatch:
    """One batch validated (vectorised) and normalised for COPY: COLUMNS in order, plain or
    large strings, evaluated_at in microseconds. `offset`: rows of the week before this batch."""
    at = f" (in the batch starting at row {offset:,} of the week)"
    try:
        check_columns(batch.schema.names)
    except ValueError as exc:
        raise ValueError(f"{exc}{at}") from None
    batch = batch.select(COLUMNS)
    for column in COLUMNS:  # nulls first: an all-null column has Arrow type null
        values = batch.column(column)
        if values.null_count or pa.types.is_floating(values.type):
            _rows_problem(batch, column, pc.is_null(values, nan_is_null=True), "null values", offset)
    out = {column: _text(batch, column, offset, at) for column in TEXT_COLUMNS}
    out["rank"] = _rank(batch, offset, at)
    out["score"] = _score(batch, offset, at)
    out["evaluated_at"] = _stamp(batch, evaluated_at, offset, at)
    return pa.RecordBatch.from_arrays([out[c] for c in COLUMNS], names=COLUMNS)


def _text(batch: pa.RecordBatch, column: str, offset: int, at: str) -> pa.Array:
    values = batch.column(column)
    if pa.types.is_dictionary(values.type) or pa.types.is_string_view(values.type):
        values = values.cast(pa.large_string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise ValueError(f"column {column} has type {values.type}, expected string{at}")
    length = pc.utf8_length(values)
    _rows_problem(batch, column, pc.equal(length, 0), "empty strings", offset)
    limit = _MAX_CHARS[column]
    _rows_problem(batch, column, pc.greater(length, limit), f"values longer than {limit} characters", offset)
    _rows_problem(batch, column, pc.match_substring(values, "\x00"), "NUL characters", offset)
    return values


def _rank(batch: pa.RecordBatch, offset: int, at: str) -> pa.Array:
    rank = batch.column("rank")
    if not pa.types.is_integer(rank.type):
        raise ValueError(f"column rank has type {rank.type}, expected integer{at}")
    _rows_problem(batch, "rank", pc.less(rank, 1), "rank below 1", offset)
    _rows_problem(batch, "rank", pc.greater(rank, 2**31 - 1), "rank above 2147483647 (INT)", offset)
    return rank


def _score(batch: pa.RecordBatch, offset: int, at: str) -> pa.Array:
    score = batch.column("score")
    if not (pa.types.is_floating(score.type) or pa.types.is_decimal(score.type) or pa.types.is_integer(score.type)):
        raise ValueError(f"column score has type {score.type}, expected double or decimal{at}")
    # NaN and infinities compare false, so they are refused here too
    fits = pc.less(pc.abs(score.cast(pa.float64())), 100)
    _rows_problem(batch, "score", pc.invert(fits), "values that do not fit NUMERIC(8,6)", offset)
    return score


def _stamp(batch: pa.RecordBatch, evaluated_at: datetime, offset: int, at: str) -> pa.Array:
    stamp = batch.column("evaluated_at")
    if not pa.types.is_timestamp(stamp.type) or stamp.type.tz is not None:
        raise ValueError(f"column evaluated_at has type {stamp.type}, expected a zone-naive timestamp{at}")
    try:
        week = pa.scalar(evaluated_at, pa.timestamp("us")).cast(stamp.type)
        other = pc.not_equal(stamp, week)
    except (pa.ArrowInvalid, OverflowError):  # the week is not representable in this unit: no row can be it
        other = pa.array([True] * len(stamp))
    _rows_problem(batch, "evaluated_at", other, f"a week other than {evaluated_at}", offset)
    return stamp.cast(pa.timestamp("us"))  # exact: every value is the week


def _rows_problem(batch: pa.RecordBatch, column: str, bad: pa.Array, problem: str, offset: int) -> None:
    """Raise ValueError naming the column, how many rows of this batch and up to 3 of them (long strings clipped)."""
    count = pc.sum(bad).as_py() or 0
    if not count:
        return
    first = pc.indices_nonzero(bad)[0].as_py()
    examples = "\n".join(
        "  " + ", ".join(f"{name}={_clip(value)}" for name, value in row.items())
        for row in batch.filter(bad).slice(0, 3).to_pylist()
    )
    raise ValueError(
        f"cannot publish nbp_current: column {column}: {count:,} rows with {problem} in this batch"
        f" (first at row {offset + first:,} of the week), e.g.\n{examples}"
    )


def _clip(value: object) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:20]!r}... ({len(value):,} characters)"
    return "null" if value is None else str(value)


def prepend(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """first, then rest, holding no reference to first once it has been handed out."""
    holder = [first]
    del first
    yield holder.pop()
    yield from rest


def _one_model_version(batch: pa.RecordBatch, model_version: str, offset: int) -> None:
    if batch.num_rows:
        _rows_problem(
            batch,
            "model_version",
            pc.not_equal(batch.column("model_version"), model_version),
            f"a model_version other than the week's first row ({model_version})",
            offset,
        )


def encoded(stream: Iterator[pa.RecordBatch], evaluated_at: datetime, model_version: str):
    """(rows, CSV bytes of COPIED) per chunk of the checked week; the first batch was checked
    by the caller. A bad batch raises ValueError naming its rows, before any later batch is read."""
    offset = 0
    for i, batch in enumerate(stream):
        if i:
            batch = checked(batch, evaluated_at, offset)
        _one_model_version(batch, model_version, offset)
        batch = batch.select(COPIED)
        for start in range(0, batch.num_rows, CHUNK):
            chunk = batch.slice(start, CHUNK)
            yield chunk.num_rows, csv_chunk(chunk)
        offset += batch.num_rows
        del batch  # one batch at a time: gone before the next is fetched


def csv_chunk(batch: pa.RecordBatch) -> bytes:
    # Arrow's CSV writer is about 3x faster than DataFrame.to_csv; strings are always quoted,
    # so "NA", commas, quotes and newlines survive and an empty string is never NULL.
    out = io.BytesIO()
    pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=False))
    return out.getvalue()
