"""The local warehouse's week replace: atomic, idempotent, other weeks untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbp_assets.core.warehouse import HISTORY_DDL, HISTORY_KEY, HISTORY_TABLE, DuckDBWarehouse


def week(evaluated_at: str, parties: list[str], score: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "party_id": parties,
            "jurisdiction": "GB",
            "rank": pd.array([1] * len(parties), dtype="int32"),
            "product_id": "A",
            "score": score,
            "primary_signal": "idle_cash",
            "model_version": "v",
            "evaluated_at": pd.Timestamp(evaluated_at),
        }
    )


@pytest.mark.parametrize("key", [HISTORY_KEY, ()])
def test_replace_slice_replaces_one_week_only(tmp_path, key):
    wh = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))

    def put(df):
        where = f"evaluated_at = TIMESTAMP '{df['evaluated_at'].iloc[0]:%Y-%m-%d %H:%M:%S}'"
        wh.replace_slice(HISTORY_TABLE, df, where=where, ddl=HISTORY_DDL, key=key)

    put(week("2026-11-09", ["P1", "P2", "P3"], 0.1))
    put(week("2026-11-16", ["P1", "P2", "P3"], 0.2))
    put(week("2026-11-16", ["P1", "P3"], 0.3))  # re-run: P2 vanished, scores changed

    got = wh.query(f"SELECT party_id, evaluated_at, score FROM {HISTORY_TABLE} ORDER BY evaluated_at, party_id")
    assert got["party_id"].tolist() == ["P1", "P2", "P3", "P1", "P3"]
    assert got["score"].astype(float).tolist() == [0.1, 0.1, 0.1, 0.3, 0.3]


def test_history_ddl_comes_from_its_declaration(tmp_path):
    """The seed's columns and types, NOT NULL everywhere; the key is checked before a write
    (blocking checks), not by an index that would cost gigabytes at 10M customers."""
    wh = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
    wh.replace_slice(HISTORY_TABLE, week("2026-11-16", ["P1"], 0.2), where="TRUE", ddl=HISTORY_DDL)
    cols = wh.query(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'product_intelligence' AND table_name = 'next_best_product' ORDER BY ordinal_position"
    )
    assert cols["column_name"].tolist() == [
        "party_id",
        "jurisdiction",
        "rank",
        "product_id",
        "score",
        "primary_signal",
        "model_version",
        "evaluated_at",
    ]
    assert cols["data_type"].tolist() == [
        "VARCHAR",
        "VARCHAR",
        "INTEGER",
        "VARCHAR",
        "DECIMAL(8,6)",
        "VARCHAR",
        "VARCHAR",
        "TIMESTAMP",
    ]
    assert set(cols["is_nullable"]) == {"NO"}
    assert HISTORY_KEY == ("party_id", "rank", "evaluated_at")


def test_record_batches_stream_a_table_in_the_order_it_was_stored(tmp_path):
    """The publish relies on it: nbp_ranked stores the week in key order, and PostgreSQL
    builds the key from that stream. Eight row groups, two threads: a scan that does not
    keep insertion order hands them out as the threads finish them."""
    wh = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), threads=2)
    with wh.transaction() as tx:
        tx.execute(
            "CREATE TABLE ordered AS SELECT i, printf('P%08d', i) AS party_id FROM range(1000000) t(i) ORDER BY i"
        )
    seen = [b.column("i").to_numpy() for b in wh.record_batches("SELECT i, party_id FROM ordered", 100_000)]
    got = np.concatenate(seen)
    assert len(got) == 1_000_000
    assert (np.diff(got) == 1).all(), "the stream is not in storage order"
