"""Publishing the week's top products to the apps' table product_intelligence.nbp_current.

Real PostgreSQL throughout: the guarantees under test (atomic swap, week guard, locks)
only exist in the server.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
import threading
import time
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from nbp_assets.core import postgres_server
from nbp_assets.publish import postgres as pg
from nbp_assets.publish.postgres import (
    COLUMNS,
    PostgresUnavailable,
    check_connection,
    current_evaluated_at,
    publish_current,
    read_current,
)

WEEK1 = datetime(2026, 11, 9)


# What a published schema holds: the live week, its product names and the publishers' lock
# table (no staging table).
LIVE_TABLES = ["nbp_current", "nbp_current_products", "nbp_publish_lock"]


def week(n: int) -> datetime:
    return WEEK1 + timedelta(days=7 * (n - 1))


def frame(evaluated_at: datetime, parties: int = 40, model_version: str = "v1", seed: int = 0) -> pd.DataFrame:
    """A week in the shape the ranking step produces: top 3 products for each party."""
    rng = np.random.default_rng(seed)
    n = parties * 3
    return pd.DataFrame(
        {
            "party_id": np.repeat([f"P{i:06d}" for i in range(parties)], 3).astype(object),
            "jurisdiction": np.repeat(rng.choice(["GB", "IE", "JE"], parties), 3).astype(object),
            "rank": np.tile([1, 2, 3], parties).astype("int32"),
            "product_id": rng.choice(["SAV_01", "CARD_02", "NA", "MORT,03", 'FX "w"'], n).astype(object),
            "score": np.round(np.sort(rng.random(n))[::-1], 6),
            "primary_signal": rng.choice(["life_event", "balance_growth"], n).astype(object),
            "model_version": model_version,
            "evaluated_at": pd.Timestamp(evaluated_at),
        }
    )[COLUMNS]


def as_read(df: pd.DataFrame) -> pd.DataFrame:
    """df as read_current returns it (nanosecond timestamps, fresh index)."""
    return df.astype({"evaluated_at": "datetime64[ns]"}).reset_index(drop=True)


def table_state(url: str) -> tuple[int, list, list[str]]:
    """(rows, distinct weeks, every table in the schema): what an app and an operator would see."""
    with psycopg.connect(url) as conn:
        rows, weeks = conn.execute(
            "SELECT count(*), array_agg(DISTINCT evaluated_at) FROM product_intelligence.nbp_current"
        ).fetchone()
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'product_intelligence' ORDER BY 1"
            )
        ]
    return rows, weeks, tables


@pytest.mark.integration
def test_first_publish_creates_table_with_primary_key(clean_postgres):
    assert current_evaluated_at(clean_postgres) is None
    assert read_current(clean_postgres).empty
    df = frame(week(1))

    result = publish_current(clean_postgres, df, week(1))

    assert (result.published, result.rows, result.previous_evaluated_at) == (True, len(df), None)
    with psycopg.connect(clean_postgres) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable"
            " FROM information_schema.columns WHERE table_schema = 'product_intelligence'"
            " AND table_name = 'nbp_current' ORDER BY ordinal_position"
        ).fetchall()
        pk = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'product_intelligence.nbp_current'::regclass AND contype = 'p'"
        ).fetchall()
    assert columns == [
        ("party_id", "character varying", None, None, "NO"),
        ("jurisdiction", "character varying", None, None, "NO"),
        ("rank", "integer", 32, 0, "NO"),
        ("product_id", "character varying", None, None, "NO"),
        ("score", "numeric", 8, 6, "NO"),
        ("primary_signal", "character varying", None, None, "NO"),
        ("model_version", "character varying", None, None, "NO"),
        ("evaluated_at", "timestamp without time zone", None, None, "NO"),
    ]
    assert pk == [("nbp_current_pkey", "PRIMARY KEY (party_id, rank)")]
    assert current_evaluated_at(clean_postgres) == week(1)
    pd.testing.assert_frame_equal(read_current(clean_postgres), as_read(df))  # commas, quotes and "NA" survive


@pytest.mark.integration
def test_rerun_of_the_same_week_replaces_it(clean_postgres):
    publish_current(clean_postgres, frame(week(1), model_version="v1"), week(1))

    rerun = frame(week(1), model_version="v2", seed=1)
    result = publish_current(clean_postgres, rerun, week(1))

    assert result.published and result.previous_evaluated_at == week(1)
    assert "re-published" in result.reason
    assert result.rows == len(rerun) and result.lock_retries == 0 and 0 <= result.lock_wait_seconds < 1
    assert table_state(clean_postgres) == (len(rerun), [week(1)], LIVE_TABLES)
    pd.testing.assert_frame_equal(read_current(clean_postgres), as_read(rerun))


@pytest.mark.integration
def test_an_older_week_never_replaces_a_newer_one(clean_postgres):
    publish_current(clean_postgres, frame(week(2)), week(2))
    before = read_current(clean_postgres)

    result = publish_current(clean_postgres, frame(week(1), parties=7), week(1))

    assert (result.published, result.rows, result.previous_evaluated_at) == (False, 0, week(2))
    # weeks are named by their partition key (the Monday they start), not by evaluated_at
    assert result.reason == "skipped: week 2026-11-02 is older than week 2026-11-09, which the apps already see"
    pd.testing.assert_frame_equal(read_current(clean_postgres), before)


@pytest.mark.integration
def test_a_newer_week_replaces_the_current_one(clean_postgres):
    publish_current(clean_postgres, frame(week(1), parties=40), week(1))

    result = publish_current(clean_postgres, frame(week(2), parties=25), week(2))

    assert result.published and result.previous_evaluated_at == week(1)
    assert result.reason == "replaced week 2026-11-02 with week 2026-11-09"
    assert current_evaluated_at(clean_postgres) == week(2)
    # the constraint was renamed, so a third week's staging names cannot collide
    publish_current(clean_postgres, frame(week(3), parties=10), week(3))
    assert table_state(clean_postgres) == (30, [week(3)], LIVE_TABLES)


def _null_product(df):
    df.loc[4, "product_id"] = None
    return df


def _duplicate_rank(df):
    df.loc[4, "rank"] = 1
    return df


def _other_week(df):
    df.loc[[2, 5], "evaluated_at"] = pd.Timestamp(week(3))
    return df


@pytest.mark.integration
@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda df: df.iloc[0:0], "empty"),
        (lambda df: df.drop(columns="primary_signal"), "primary_signal"),
        (lambda df: df.assign(customer_name="x"), "customer_name"),
        (_other_week, "evaluated_at"),
        (_null_product, "product_id"),
        (_duplicate_rank, "party_id, rank"),
        (
            lambda df: df.assign(party_id=df["party_id"].where(df.index != 9, "P" * 1_000_000)),
            "party_id.*longer than 64",
        ),
        (lambda df: df.assign(model_version="v" * 129), "model_version.*longer than 128"),
        (lambda df: df.assign(jurisdiction=df["jurisdiction"].where(df.index != 3, "")), "jurisdiction.*empty"),
        (lambda df: df.assign(rank=df["rank"].astype("float64")), "rank has type double"),
    ],
    ids=[
        "empty",
        "missing-column",
        "extra-column",
        "mixed-weeks",
        "null",
        "duplicate-rank",
        "1MB-party-id",
        "long-model-version",
        "empty-string",
        "float-rank",
    ],
)
def test_bad_frames_are_refused_and_the_live_week_stays(clean_postgres, spoil, message):
    publish_current(clean_postgres, frame(week(1)), week(1))
    before = read_current(clean_postgres)

    with pytest.raises(ValueError, match=message):
        publish_current(clean_postgres, spoil(frame(week(2))), week(2))

    pd.testing.assert_frame_equal(read_current(clean_postgres), before)


@pytest.mark.integration
def test_a_failed_load_leaves_no_staging_table_and_the_live_week_intact(clean_postgres):
    publish_current(clean_postgres, frame(week(1)), week(1))
    df = frame(week(2))
    df.loc[7, "score"] = 99.9999999  # passes validation, overflows NUMERIC(8,6) inside COPY

    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        publish_current(clean_postgres, df, week(2))

    assert table_state(clean_postgres) == (120, [week(1)], LIVE_TABLES)


@pytest.mark.integration
def test_readers_never_see_a_mix_of_weeks_or_an_empty_table(clean_postgres):
    sizes = {1: 20_000, 2: 15_000, 3: 10_000, 4: 5_000}  # rows per week tell the weeks apart
    weeks = {n: frame(week(n), parties=rows // 3 + 1)[:rows] for n, rows in sizes.items()}
    publish_current(clean_postgres, weeks[1], week(1))
    seen, errors, stop = [], [], threading.Event()

    def poll():
        with psycopg.connect(clean_postgres, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    seen.append(
                        conn.execute(
                            "SELECT count(*), count(DISTINCT evaluated_at) FROM product_intelligence.nbp_current"
                        ).fetchone()
                    )
                except psycopg.Error as exc:
                    errors.append(exc)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for n in (2, 2, 3, 1, 4):  # includes a re-run and a skipped older week
            publish_current(clean_postgres, weeks[n], week(n))
    finally:
        stop.set()
        reader.join()

    assert errors == []
    assert len(seen) > 20
    assert {distinct for _, distinct in seen} == {1}
    assert {rows for rows, _ in seen} <= set(sizes.values())
    assert table_state(clean_postgres) == (sizes[4], [week(4)], LIVE_TABLES)


@pytest.mark.integration
def test_concurrent_publishers_are_serialised(clean_postgres):
    errors, weeks = [], {n: frame(week(n), parties=2_000 + n) for n in (1, 2, 3)}

    def publish(n, start):
        start.wait()
        try:
            publish_current(clean_postgres, weeks[n], week(n))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    for _ in range(4):  # a race on the very first publish shows up only sometimes: several rounds
        with psycopg.connect(clean_postgres, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS product_intelligence CASCADE")
        start = threading.Barrier(3)
        threads = [threading.Thread(target=publish, args=(n, start)) for n in (1, 3, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert table_state(clean_postgres) == (3 * 2_003, [week(3)], LIVE_TABLES)


@pytest.mark.integration
def test_the_apps_keep_their_grants_across_weeks(clean_postgres):
    publish_current(clean_postgres, frame(week(1)), week(1))
    with psycopg.connect(clean_postgres, autocommit=True) as conn:
        try:
            conn.execute("DROP ROLE IF EXISTS nbp_test_app_reader")
            conn.execute("CREATE ROLE nbp_test_app_reader")
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test database user may not create roles")
        conn.execute("GRANT SELECT ON product_intelligence.nbp_current TO nbp_test_app_reader, PUBLIC")
        try:
            publish_current(clean_postgres, frame(week(2)), week(2))
            can_read = conn.execute(
                "SELECT has_table_privilege('nbp_test_app_reader', 'product_intelligence.nbp_current', 'SELECT'),"
                " has_table_privilege('nbp_test_app_reader', 'product_intelligence.nbp_current', 'INSERT'),"
                " (SELECT relacl::text LIKE '%=r/%' FROM pg_class"
                "  WHERE oid = 'product_intelligence.nbp_current'::regclass)"
            ).fetchone()
        finally:
            conn.execute("DROP SCHEMA product_intelligence CASCADE")
            conn.execute("DROP ROLE nbp_test_app_reader")
    assert can_read == (True, False, True)  # SELECT for the role and for PUBLIC, nothing more


@pytest.mark.integration
def test_read_current_for_one_party_is_ordered_by_rank(clean_postgres):
    df = frame(week(1)).sample(frac=1, random_state=3)  # publish order must not matter
    publish_current(clean_postgres, df, week(1))

    rows = read_current(clean_postgres, "P000007")

    assert rows["party_id"].tolist() == ["P000007"] * 3
    assert rows["rank"].tolist() == [1, 2, 3]
    expected = df[df["party_id"] == "P000007"].sort_values("rank")
    assert rows["product_id"].tolist() == expected["product_id"].tolist()
    assert rows["score"].tolist() == expected["score"].tolist()
    assert read_current(clean_postgres, "nobody").empty
    assert read_current(clean_postgres)["party_id"].is_monotonic_increasing


@pytest.mark.integration
def test_check_connection_accepts_the_test_server(postgres_url):
    check_connection(postgres_url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nbp_app:S3cret-Pa55@127.0.0.1:1/nbp_db?connect_timeout=3",
        "host=127.0.0.1 port=1 dbname=nbp_db user=nbp_app password=S3cret-Pa55 connect_timeout=3",
    ],
    ids=["uri", "keywords"],
)
def test_unreachable_server_is_reported_without_the_password(url):
    with pytest.raises(PostgresUnavailable) as raised:
        check_connection(url)
    assert "127.0.0.1" in str(raised.value) and "nbp_db" in str(raised.value)
    assert "S3cret-Pa55" not in str(raised.value)
    with pytest.raises(PostgresUnavailable):
        publish_current(url, frame(week(1)), week(1))


@pytest.mark.integration
@pytest.mark.skipif(not list(pathlib.Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")), reason="no system PostgreSQL")
def test_system_binaries_fallback_serves_and_stops():
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="nbp-test-pg-system-"))  # see conftest: not under pytest's tmp
    url, release = postgres_server._start_system_server(data_dir)
    try:
        publish_current(url, frame(week(1)), week(1))
        assert current_evaluated_at(url) == week(1)
    finally:
        release()
        shutil.rmtree(data_dir, ignore_errors=True)
    with pytest.raises(PostgresUnavailable):
        check_connection(url)


# --- Arrow record batches: the week streams from the warehouse, never whole in pandas ------------


def arrow_batches(df: pd.DataFrame, size: int, schema: pa.Schema | None = None) -> list[pa.RecordBatch]:
    table = pa.Table.from_pandas(df, preserve_index=False)
    if schema is not None:
        table = pa.table({f.name: table[f.name].cast(f.type) for f in schema}, schema=schema)
    return table.to_batches(max_chunksize=size)


_WAREHOUSE_TYPES = pa.schema(
    [  # Snowflake/DuckDB-like: other column order, wide types, decimal score, seconds
        ("evaluated_at", pa.timestamp("s")),
        ("score", pa.decimal128(8, 6)),
        ("party_id", pa.large_string()),
        ("rank", pa.int64()),
        ("product_id", pa.large_string()),
        ("jurisdiction", pa.string()),
        ("primary_signal", pa.large_string()),
        ("model_version", pa.string()),
    ]
)


_SNOWFLAKE_TYPES = pa.schema(
    [  # fetch_arrow_batches(): Tables, the smallest int for NUMBER(38,0), milliseconds
        *((c, pa.string()) for c in ["party_id", "jurisdiction"]),
        ("rank", pa.int8()),
        *((c, pa.string()) for c in ["product_id"]),
        ("score", pa.float64()),
        *((c, pa.string()) for c in ["primary_signal", "model_version"]),
        ("evaluated_at", pa.timestamp("ms")),
    ]
)


def _from_duckdb(df: pd.DataFrame):
    import duckdb

    con = duckdb.connect()
    con.register("week", df)
    relation = con.sql(
        "SELECT model_version, party_id, rank::BIGINT AS rank, score::DECIMAL(8,6) AS score, product_id,"
        " jurisdiction, primary_signal, evaluated_at::TIMESTAMP AS evaluated_at FROM week ORDER BY party_id DESC"
    )
    reader = relation.to_arrow_reader(37)  # a pyarrow.RecordBatchReader (fetch_record_batch before DuckDB 1.4)
    assert isinstance(reader, pa.RecordBatchReader)
    return reader


@pytest.mark.integration
@pytest.mark.parametrize(
    "as_stream",
    [
        lambda df: iter(arrow_batches(df, 50)),
        lambda df: (b for b in arrow_batches(df, 29, _WAREHOUSE_TYPES)),
        lambda df: (pa.Table.from_batches([b]) for b in arrow_batches(df, 64, _SNOWFLAKE_TYPES)),
        _from_duckdb,
    ],
    ids=["record-batches", "warehouse-types", "tables-like-snowflake", "duckdb-arrow-reader"],
)
def test_arrow_batches_land_the_same_rows_as_a_dataframe(clean_postgres, as_stream):
    df = frame(week(1), parties=100)

    result = publish_current(clean_postgres, as_stream(df), week(1))

    assert (result.published, result.rows) == (True, len(df))
    pd.testing.assert_frame_equal(read_current(clean_postgres), as_read(df.sort_values(["party_id", "rank"])))
    assert table_state(clean_postgres) == (len(df), [week(1)], LIVE_TABLES)


def _set(batch: pa.RecordBatch, column: str, row: int, value) -> pa.RecordBatch:
    values = batch.column(column).to_pylist()
    values[row] = value
    return batch.set_column(batch.schema.get_field_index(column), column, pa.array(values, batch.column(column).type))


@pytest.mark.integration
@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda b: _set(b, "party_id", 5, None), "party_id: 1 rows with null values"),
        (lambda b: _set(b, "party_id", 5, "P" * 65), "party_id: 1 rows with values longer than 64"),
        (lambda b: _set(b, "party_id", 5, "P" * 1_000_000), "party_id: 1 rows with values longer than 64"),
        (lambda b: _set(b, "product_id", 2, "X" * 65), "product_id: 1 rows with values longer than 64"),
        (lambda b: _set(b, "primary_signal", 2, "s" * 65), "primary_signal: 1 rows with values longer than 64"),
        (lambda b: _set(b, "primary_signal", 2, ""), "primary_signal: 1 rows with empty strings"),
        (lambda b: _set(b, "evaluated_at", 7, week(3)), "evaluated_at: 1 rows with a week other than"),
        (lambda b: _set(b, "rank", 1, 0), "rank: 1 rows with rank below 1"),
        (lambda b: _set(b, "score", 1, 100.5), "score: 1 rows with values that do not fit NUMERIC"),
        (lambda b: _set(b, "score", 1, float("nan")), "score: 1 rows with null"),
        (lambda b: _set(b, "party_id", 4, "P000000"), r"duplicate \(party_id, rank\).*P000000"),
        (lambda b: b.drop_columns(["jurisdiction"]), r"missing \['jurisdiction'\]"),
        (lambda b: b.set_column(7, "evaluated_at", b.column(7).cast(pa.timestamp("us", "UTC"))), "zone-naive"),
        (lambda b: b.set_column(2, "rank", b.column(2).cast(pa.float64())), "rank has type double"),
    ],
    ids=[
        "null",
        "id-65-chars",
        "id-1MB",
        "long-product",
        "long-signal",
        "empty-string",
        "wrong-week",
        "rank-0",
        "score-overflow",
        "score-nan",
        "duplicate-key-across-batches",
        "missing-column",
        "zoned-timestamp",
        "float-rank",
    ],
)
def test_a_bad_batch_in_the_middle_fails_and_the_live_week_stays(clean_postgres, spoil, message):
    publish_current(clean_postgres, frame(week(1)), week(1))
    before = read_current(clean_postgres)
    batches = arrow_batches(frame(week(2), parties=30), 20)  # 90 rows: 5 batches, the third spoiled
    handed_out = []

    def stream():
        for n, batch in enumerate(batches):
            handed_out.append(n)
            yield spoil(batch) if n == 2 else batch

    with pytest.raises(ValueError, match=message) as raised:
        publish_current(clean_postgres, stream(), week(2))

    assert len(str(raised.value)) < 2_000  # a 1 MB value is clipped in the message
    if "duplicate" not in message:
        assert handed_out == [0, 1, 2]  # refused as the bad batch arrived, the rest never read
        assert "of the week" in str(raised.value)
    pd.testing.assert_frame_equal(read_current(clean_postgres), before)
    assert table_state(clean_postgres) == (len(before), [week(1)], LIVE_TABLES)  # no staging table left


@pytest.mark.integration
@pytest.mark.parametrize(
    "empty",
    [
        lambda: iter([]),
        lambda: (b.slice(0, 0) for b in arrow_batches(frame(week(2)), 50)),
        lambda: pa.RecordBatchReader.from_batches(arrow_batches(frame(week(2)), 50)[0].schema, []),
    ],
    ids=["empty-iterator", "zero-row-batches", "empty-reader"],
)
def test_an_empty_stream_is_refused_and_the_live_week_stays(clean_postgres, empty):
    publish_current(clean_postgres, frame(week(1)), week(1))
    before = read_current(clean_postgres)

    with pytest.raises(ValueError, match="refusing to publish an empty week"):
        publish_current(clean_postgres, empty(), week(2))

    pd.testing.assert_frame_equal(read_current(clean_postgres), before)
    assert table_state(clean_postgres) == (len(before), [week(1)], LIVE_TABLES)


@pytest.mark.integration
def test_a_skipped_older_week_does_not_read_the_stream(clean_postgres):
    publish_current(clean_postgres, frame(week(2)), week(2))

    def never_read():
        raise AssertionError("the stream of a skipped week was read")
        yield  # pragma: no cover

    result = publish_current(clean_postgres, never_read(), week(1))

    assert (result.published, result.rows) == (False, 0)


@pytest.mark.integration
def test_the_stream_is_held_one_batch_at_a_time(clean_postgres):
    size, count = 5_000, 12
    template = arrow_batches(frame(week(1), parties=size // 3 + 1)[:size], size)[0]
    baseline, held, batch_bytes = None, [], []

    def stream():  # as a warehouse cursor: each batch allocated when asked for
        nonlocal baseline
        for n in range(count):
            allocated = pa.total_allocated_bytes()
            baseline = allocated if baseline is None else baseline
            held.append(allocated - baseline)  # what the publisher still holds when it asks for the next batch
            batch = template.take(pa.array(np.arange(size)))  # a fresh copy of every column
            batch = batch.set_column(0, "party_id", pc.binary_join_element_wise(batch["party_id"], f"-{n}", ""))
            batch_bytes.append(batch.nbytes)
            yield batch
            del batch

    result = publish_current(clean_postgres, stream(), week(1))

    assert result.rows == size * count
    assert max(held) <= 1.1 * max(batch_bytes), (held, batch_bytes)  # at most one batch, never the week's 12


# --- the swap's lock: a stuck reader must not stall the apps -------------------------------------


def _stuck_reader(url: str) -> psycopg.Connection:
    """An app connection idle in a transaction that has read nbp_current: it holds ACCESS SHARE."""
    conn = psycopg.connect(url, application_name="nbp-test-stuck-reader")
    conn.execute("SELECT party_id FROM product_intelligence.nbp_current LIMIT 1").fetchall()
    return conn


@pytest.mark.integration
def test_a_reader_idle_in_transaction_delays_the_swap_but_not_the_apps(clean_postgres):
    publish_current(clean_postgres, frame(week(1)), week(1))
    lock_timeout = 0.5
    stuck = _stuck_reader(clean_postgres)
    release = threading.Timer(3.0, stuck.commit)  # lets go after ~3 s
    waits, errors, stop = [], [], threading.Event()

    def point_reads():  # another app: one customer at a time, as the offer engine does
        with psycopg.connect(clean_postgres, autocommit=True) as conn:
            while not stop.is_set():
                begun = time.monotonic()
                try:
                    conn.execute(
                        "SELECT product_id FROM product_intelligence.nbp_current"
                        " WHERE party_id = 'P000007' AND rank = 1"
                    ).fetchall()
                except psycopg.Error as exc:
                    errors.append(exc)
                waits.append(time.monotonic() - begun)
                time.sleep(0.01)

    reader = threading.Thread(target=point_reads)
    release.start()
    reader.start()
    try:
        result = publish_current(
            clean_postgres,
            frame(week(2)),
            week(2),
            lock_timeout=lock_timeout,
            lock_attempts=8,
            lock_backoff=0.2,
            lock_backoff_cap=1.0,
        )
    finally:
        stop.set()
        reader.join()
        release.cancel()
        stuck.close()

    assert result.published and current_evaluated_at(clean_postgres) == week(2)
    assert result.lock_retries >= 1
    assert 2.0 < result.lock_wait_seconds < 10
    assert errors == [] and len(waits) > 20
    assert lock_timeout / 2 < max(waits) < lock_timeout + 1.0  # reads did queue behind an attempt, never longer


@pytest.mark.integration
def test_a_reader_that_never_lets_go_fails_the_publish_and_nothing_changes(clean_postgres):
    publish_current(clean_postgres, frame(week(1)), week(1))
    before = read_current(clean_postgres)
    stuck = _stuck_reader(clean_postgres)
    try:
        begun = time.monotonic()
        with pytest.raises(pg.LiveTableBusy) as raised:
            publish_current(
                clean_postgres, frame(week(2)), week(2), lock_timeout=0.2, lock_attempts=3, lock_backoff=0.1
            )
        elapsed = time.monotonic() - begun
        message = str(raised.value)
        assert f"pid {stuck.info.backend_pid}" in message
        assert "nbp-test-stuck-reader" in message and "idle in transaction since" in message
        assert "AccessShareLock" in message and "3 attempts" in message
        assert "Nothing was changed" in message and "week 2026-11-02" in message  # the live week, by its partition key
        assert elapsed < 5
    finally:
        stuck.close()
    pd.testing.assert_frame_equal(read_current(clean_postgres), before)
    assert table_state(clean_postgres) == (len(before), [week(1)], LIVE_TABLES)


@pytest.mark.integration
def test_apps_read_the_named_view_with_the_read_only_role(clean_postgres):
    from nbp_assets.publish.postgres import APP_READER_ROLE, read_named

    with psycopg.connect(clean_postgres) as conn:
        if not conn.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()[
            0
        ]:
            pytest.skip("the test database user may not create roles")
    df = frame(week(2))
    products = pd.DataFrame({"product_id": sorted(df["product_id"].unique())})
    products = products.assign(product_name="Name of " + products["product_id"], product_class="CARD")
    publish_current(clean_postgres, frame(week(1)), week(1), products=products.assign(product_name="old"))
    publish_current(clean_postgres, df, week(2), products=products)  # the view survives the swap

    party = df["party_id"].iloc[0]
    rows = read_named(clean_postgres, party, user=APP_READER_ROLE)
    assert [r["rank"] for r in rows] == sorted(df.loc[df["party_id"] == party, "rank"])
    assert {r["product_name"] for r in rows} == {f"Name of {p}" for p in df.loc[df["party_id"] == party, "product_id"]}
    assert {str(r["week_start"]) for r in rows} == {"2026-11-09"}  # the partition key; evaluated_at is 11-16

    params = psycopg.conninfo.conninfo_to_dict(clean_postgres) | {"user": APP_READER_ROLE}
    with psycopg.connect(**params, autocommit=True) as app:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            app.execute("DELETE FROM product_intelligence.nbp_current")
        app.execute("SET default_transaction_read_only = off")  # the role's default, not its only guard
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("DELETE FROM product_intelligence.nbp_current")


@pytest.mark.integration
def test_a_server_started_in_the_background_is_the_one_the_run_then_gets():
    """The CLI starts the local server while the week computes; a step asking for it meanwhile
    gets that server (one at a time in the process), and so does every later call."""
    assert postgres_server.start_in_background("postgresql://configured/db", pathlib.Path("/nowhere")) is None
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="nbp-test-pg-bg-"))
    try:
        thread = postgres_server.start_in_background(None, data_dir)
        url = postgres_server.resolve_postgres_url(None, data_dir)  # while the thread may still be starting it
        thread.join(timeout=180)
        assert not thread.is_alive()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert postgres_server.resolve_postgres_url(None, data_dir) == url
    finally:
        postgres_server.stop_local_server(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


# --- the apps' role: protected by privilege; no lock it can take stalls a publish ------------------


def _app(url: str) -> psycopg.Connection:
    """A session as the apps' role, autocommit (BEGIN where a test needs a transaction)."""
    params = psycopg.conninfo.conninfo_to_dict(url) | {"user": pg.APP_READER_ROLE, "application_name": "nbp-test-app"}
    return psycopg.connect(**params, autocommit=True)


def _app_reader_settings(url: str) -> list[tuple[int, list[str]]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT s.setdatabase::int, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = %s ORDER BY 1",
            (pg.APP_READER_ROLE,),
        ).fetchall()


@pytest.fixture
def app_reader(clean_postgres):
    """clean_postgres after a first publish, which created the apps' role; its role-level
    settings are put back afterwards whatever the test planted."""
    with psycopg.connect(clean_postgres) as conn:
        if not conn.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()[
            0
        ]:
            pytest.skip("the test database user may not create roles")
    publish_current(clean_postgres, frame(week(1)), week(1))
    yield clean_postgres
    with psycopg.connect(clean_postgres, autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f'ALTER ROLE {pg.APP_READER_ROLE} IN DATABASE "{database}" RESET ALL')
        conn.execute(f"ALTER ROLE {pg.APP_READER_ROLE} RESET ALL")
        conn.execute(f"ALTER ROLE {pg.APP_READER_ROLE} SET default_transaction_read_only = on")


@pytest.mark.integration
def test_settings_the_app_role_plants_for_itself_do_not_outlive_a_publish(app_reader):
    with _app(app_reader) as app:
        database = app.execute("SELECT current_database()").fetchone()[0]
        # PostgreSQL lets any role switch its session to read-write and change its own role-level settings
        app.execute("SET default_transaction_read_only = off")
        app.execute(f"ALTER ROLE {pg.APP_READER_ROLE} SET default_transaction_read_only = off")
        app.execute(f"ALTER ROLE {pg.APP_READER_ROLE} IN DATABASE \"{database}\" SET work_mem = '77kB'")
    with _app(app_reader) as app:  # until the next publish, every new app session starts read-write
        assert app.execute("SHOW default_transaction_read_only").fetchone() == ("off",)

    publish_current(app_reader, frame(week(2)), week(2))

    assert _app_reader_settings(app_reader) == [(0, ["default_transaction_read_only=on"])]
    with _app(app_reader) as app:
        assert app.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert app.execute("SHOW work_mem").fetchone() != ("77kB",)


@pytest.mark.integration
def test_the_app_role_may_only_read_even_in_a_read_write_session(app_reader):
    with _app(app_reader) as app:
        app.execute("SET default_transaction_read_only = off")  # allowed: protection is by privilege
        assert app.execute("SELECT count(*) FROM product_intelligence.nbp_current_named").fetchone() == (120,)
        refused = [
            "CREATE TEMP TABLE nbp_scratch (a int)",
            "CREATE FUNCTION pg_temp.nbp_f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "DELETE FROM product_intelligence.nbp_current",
            "UPDATE product_intelligence.nbp_current SET score = 0",
            "INSERT INTO product_intelligence.nbp_current_products VALUES ('X', 'x', 'x')",
            "TRUNCATE product_intelligence.nbp_current",
            "SELECT * FROM product_intelligence.nbp_current FOR KEY SHARE",
            "CREATE TABLE product_intelligence.nbp_scratch (a int)",
            "CREATE TABLE public.nbp_scratch (a int)",
            "CREATE SCHEMA nbp_scratch",
            "ALTER TABLE product_intelligence.nbp_current ADD COLUMN x int",
            "DROP VIEW product_intelligence.nbp_current_named",
            "SELECT * FROM product_intelligence.nbp_publish_lock",
        ]
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
        for table, mode in [
            ("nbp_current", "ROW SHARE"),
            ("nbp_current", "ACCESS EXCLUSIVE"),
            ("nbp_current_products", "SHARE ROW EXCLUSIVE"),
            ("nbp_publish_lock", "ACCESS SHARE"),  # the publishers' lock: not even the weakest mode
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), app.transaction():
                app.execute(f"LOCK TABLE product_intelligence.{table} IN {mode} MODE")


@pytest.mark.integration
def test_no_lock_the_app_role_can_take_stalls_a_publish(app_reader, caplog):
    from concurrent.futures import ThreadPoolExecutor

    def publish(n):
        return publish_current(app_reader, frame(week(n)), week(n), lock_timeout=0.3, lock_attempts=2, lock_backoff=0.1)

    with ThreadPoolExecutor(1) as pool, _app(app_reader) as app:  # the app lets go first
        pid = app.info.backend_pid
        app.execute("SET default_transaction_read_only = off")
        app.execute(f"ALTER ROLE {pg.APP_READER_ROLE} SET default_transaction_read_only = off")
        # everything the app can hold but the live week: the old advisory lock's key, its own
        # role's settings row (an uncommitted ALTER ROLE), the product names
        assert app.execute("SELECT pg_try_advisory_lock(107000001)").fetchone() == (True,)
        app.execute("BEGIN")
        app.execute(f"ALTER ROLE {pg.APP_READER_ROLE} SET work_mem = '77kB'")
        app.execute("LOCK TABLE product_intelligence.nbp_current_products IN ACCESS SHARE MODE")
        begun = time.monotonic()
        result = pool.submit(publish, 2).result(timeout=20)  # before: waited for the advisory lock, forever
        assert result.published and time.monotonic() - begun < 5
        assert current_evaluated_at(app_reader) == week(2)
        # the settings reset waited for the app's ALTER ROLE, timed out and named it
        assert f"pid {pid}" in caplog.text and "nbp-test-app" in caplog.text

        # and the live week too (through the view): the publish fails in bounded time, naming the app
        app.execute("SELECT count(*) FROM product_intelligence.nbp_current_named").fetchone()
        begun = time.monotonic()
        with pytest.raises(pg.LiveTableBusy) as raised:
            pool.submit(publish, 3).result(timeout=20)
        assert time.monotonic() - begun < 5
        message = str(raised.value)
        assert f"pid {pid}" in message and f"user {pg.APP_READER_ROLE}" in message and "nbp-test-app" in message
        app.execute("ROLLBACK")
    assert current_evaluated_at(app_reader) == week(2)


@pytest.mark.integration
def test_a_publisher_that_holds_the_publishers_lock_too_long_is_named(clean_postgres, monkeypatch):
    publish_current(clean_postgres, frame(week(1)), week(1))
    monkeypatch.setattr(pg, "PUBLISH_LOCK_TIMEOUT_SECONDS", 0.5)
    with psycopg.connect(clean_postgres, application_name="nbp-test-other-publisher") as other:
        pid = other.info.backend_pid
        other.execute("LOCK TABLE product_intelligence.nbp_publish_lock IN SHARE ROW EXCLUSIVE MODE")
        begun = time.monotonic()
        with pytest.raises(pg.PublishLockBusy) as raised:
            publish_current(clean_postgres, frame(week(2)), week(2))
        assert time.monotonic() - begun < 5
    message = str(raised.value)
    assert f"pid {pid}" in message and "nbp-test-other-publisher" in message
    assert "ShareRowExclusiveLock" in message and "Nothing was changed" in message
    assert current_evaluated_at(clean_postgres) == week(1)
