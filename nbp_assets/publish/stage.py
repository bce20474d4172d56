"""The week into its staging table: CREATE, COPY (streamed, checked on the way), the key,
ANALYZE. Runs in the swap's transaction, so a failure leaves no staging table behind."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from nbp_assets.publish import ddl, encode
from nbp_assets.publish.prefetch import prefetched
from nbp_assets.publish.queries import query
from nbp_assets.publish.tables import COPIED, SCHEMA, TABLE


@dataclass(frozen=True)
class Stage:
    """One publish's staging table and the names its swap uses; concurrent publishers never share them."""

    table: sql.Identifier
    key: sql.Identifier
    old_name: str  # the live table's name while it is swapped out

    @classmethod
    def new(cls) -> Stage:
        suffix = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
        return cls(
            sql.Identifier(SCHEMA, f"{TABLE}_stage_{suffix}"),
            sql.Identifier(f"{TABLE}_stage_{suffix}_pkey"),
            f"{TABLE}_old_{suffix}",
        )


def load(
    conn: psycopg.Connection, stage: Stage, rows: pd.DataFrame | Iterable[pa.RecordBatch], evaluated_at: datetime
) -> int:
    """Create the staging table and stream the checked week into it, keyed and analysed: the rows loaded."""
    ddl.create_stage(conn, stage.table)
    stream = encode.batches(rows)
    del rows  # the stream holds what it still needs
    first = encode.first_batch(stream, evaluated_at)
    # One week has one model_version and one evaluated_at: the stage table fills them
    # from column defaults, so COPY carries half the bytes (~40% faster at 3M rows).
    model_version = first.column("model_version")[0].as_py()
    conn.execute(
        query(
            "stage",
            "set_defaults",
            stage=stage.table,
            model_version=sql.Literal(model_version),
            evaluated_at=sql.Literal(evaluated_at),
        )
    )
    stream, first = encode.prepend(first, stream), None  # no reference to the first batch once it is sent
    loaded = _copy(conn, stage, stream, evaluated_at, model_version)
    conn.execute(query("stage", "drop_defaults", stage=stage.table))
    _add_key(conn, stage)
    conn.execute(query("stage", "analyze", stage=stage.table))
    return loaded


def _copy(conn: psycopg.Connection, stage: Stage, stream, evaluated_at: datetime, model_version: str) -> int:
    """COPY the week's CSV chunks into the staging table: the rows copied. The next chunks are
    read, checked and encoded in a thread while PostgreSQL parses this one (a few chunks ahead)."""
    loaded = 0
    columns = sql.SQL(", ").join(map(sql.Identifier, COPIED))
    with conn.cursor() as cur, cur.copy(query("stage", "copy_in", stage=stage.table, columns=columns)) as copy:
        for rows, data in prefetched(encode.encoded(stream, evaluated_at, model_version)):
            copy.write(data)
            loaded += rows
            del data
    return loaded


def _add_key(conn: psycopg.Connection, stage: Stage) -> None:
    """The primary key (party_id, rank); a duplicate raises ValueError naming it."""
    conn.execute(query("stage", "sort_memory"))
    try:
        conn.execute(query("stage", "add_key", stage=stage.table, key=stage.key))
    except psycopg.errors.UniqueViolation as exc:
        detail = exc.diag.message_detail or str(exc)  # "Key (party_id, rank)=(P000004, 1) is duplicated."
        raise ValueError(
            f"cannot publish nbp_current: duplicate (party_id, rank) in the week's rows: {detail}"
            " (the primary key needs one row per customer and rank)"
        ) from None
