"""`python -m nbp_assets generate` writes the bank chunk by chunk: replace, then append."""

from __future__ import annotations

from datetime import date

import pandas as pd

from nbp_assets.cli import main
from nbp_assets.contract.inputs import SOURCE_TABLES
from nbp_assets.core.warehouse import SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.sources.synthetic import generate_chunks


def test_generate_writes_every_chunk_and_reports_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NBP_WAREHOUSE_PATH", raising=False)
    monkeypatch.delenv("NBP_DEPLOYMENT", raising=False)
    main(
        [
            "generate",
            "--customers",
            "700",
            "--seed",
            "5",
            "--weeks",
            "2",
            "--end-week",
            "2026-11-09",
            "--chunk-customers",
            "300",
        ]
    )
    out = capsys.readouterr().out
    assert "chunk 1/3: 300 of 700 customers" in out and "chunk 3/3: 700 of 700 customers" in out

    chunks = list(generate_chunks(700, 5, end_week=date(2026, 11, 9), history_weeks=2, chunk_customers=300))
    warehouse = DuckDBWarehouse(database=str(tmp_path / "home" / "warehouse.duckdb"))
    for table in SOURCE_TABLES:
        expected = pd.concat([c[table] for c in chunks if table in c], ignore_index=True)
        written = warehouse.query(f"SELECT * FROM {SOURCE_SCHEMA}.{table}")
        assert len(written) == len(expected), table
        assert list(written.columns) == list(expected.columns), table
    ids = warehouse.query(
        f"SELECT count(DISTINCT activity_id) AS n, max(activity_id) AS top FROM {SOURCE_SCHEMA}.activity"
    )
    assert int(ids["n"].iloc[0]) == int(ids["top"].iloc[0]) == sum(len(c["activity"]) for c in chunks)
