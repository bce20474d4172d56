"""Publishing the week's top products to the apps' table product_intelligence.nbp_current.

Real PostgreSQL throughout: the guarantees under test (atomic swap, week guard, locks)
only exist in the server.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
import threading
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest

from nbp_assets.storage import postgres as pg
from nbp_assets.storage.postgres import (
    COLUMNS,
    PostgresUnavailable,
    check_connection,
    current_evaluated_at,
    publish_current,
    read_current,
)

WEEK1 = datetime(2026, 11, 9)


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
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'product_intelligence' ORDER BY 1"
        )]
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
    assert table_state(clean_postgres) == (len(rerun), [week(1)], ["nbp_current"])
    pd.testing.assert_frame_equal(read_current(clean_postgres), as_read(rerun))


@pytest.mark.integration
def test_an_older_week_never_replaces_a_newer_one(clean_postgres):
    publish_current(clean_postgres, frame(week(2)), week(2))
    before = read_current(clean_postgres)

    result = publish_current(clean_postgres, frame(week(1), parties=7), week(1))

    assert (result.published, result.rows, result.previous_evaluated_at) == (False, 0, week(2))
    assert "skipped" in result.reason and "2026-11-16" in result.reason
    pd.testing.assert_frame_equal(read_current(clean_postgres), before)


@pytest.mark.integration
def test_a_newer_week_replaces_the_current_one(clean_postgres):
    publish_current(clean_postgres, frame(week(1), parties=40), week(1))

    result = publish_current(clean_postgres, frame(week(2), parties=25), week(2))

    assert result.published and result.previous_evaluated_at == week(1)
    assert "2026-11-09" in result.reason and "2026-11-16" in result.reason
    assert current_evaluated_at(clean_postgres) == week(2)
    # the constraint was renamed, so a third week's staging names cannot collide
    publish_current(clean_postgres, frame(week(3), parties=10), week(3))
    assert table_state(clean_postgres) == (30, [week(3)], ["nbp_current"])


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
    ],
    ids=["empty", "missing-column", "extra-column", "mixed-weeks", "null", "duplicate-rank"],
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

    assert table_state(clean_postgres) == (120, [week(1)], ["nbp_current"])


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
                    seen.append(conn.execute(
                        "SELECT count(*), count(DISTINCT evaluated_at) FROM product_intelligence.nbp_current"
                    ).fetchone())
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
    assert table_state(clean_postgres) == (sizes[4], [week(4)], ["nbp_current"])


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
        assert table_state(clean_postgres) == (3 * 2_003, [week(3)], ["nbp_current"])


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
    url, release = pg._start_system_server(data_dir)
    try:
        publish_current(url, frame(week(1)), week(1))
        assert current_evaluated_at(url) == week(1)
    finally:
        release()
        shutil.rmtree(data_dir, ignore_errors=True)
    with pytest.raises(PostgresUnavailable):
        check_connection(url)
