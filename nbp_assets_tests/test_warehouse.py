"""The local warehouse's week replace: atomic, idempotent, other weeks untouched."""

from __future__ import annotations

import pandas as pd
import pytest

from nbp_assets.storage.warehouse import HISTORY_DDL, HISTORY_KEY, HISTORY_TABLE, DuckDBWarehouse


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


def test_primary_key_rejects_duplicates_and_leaves_table_unchanged(tmp_path):
    wh = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
    where = "evaluated_at = TIMESTAMP '2026-11-16 00:00:00'"
    wh.replace_slice(HISTORY_TABLE, week("2026-11-16", ["P1"], 0.2), where=where, ddl=HISTORY_DDL)
    with pytest.raises(Exception, match="(?i)constraint|duplicate"):
        wh.replace_slice(HISTORY_TABLE, week("2026-11-16", ["P2", "P2"], 0.5), where=where, ddl=HISTORY_DDL)
    assert wh.query(f"SELECT party_id FROM {HISTORY_TABLE}")["party_id"].tolist() == ["P1"]
