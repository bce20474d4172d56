"""Environment variables that configure a deployment; every one has a local default.

| variable                | meaning                                               | default            |
|-------------------------|-------------------------------------------------------|--------------------|
| NBP_HOME                | folder for local state (warehouse, PostgreSQL data)   | ./.nbp             |
| NBP_WAREHOUSE_PATH      | DuckDB file used as the local warehouse               | $NBP_HOME/warehouse.duckdb |
| NBP_POSTGRES_URL        | PostgreSQL for nbp_current; unset = embedded server   | (embedded)         |
| NBP_WEIGHTS_FILE        | ranking weights CSV (product_class, signal, weight)   | $NBP_HOME/weights.csv if present, else packaged default |
"""

from __future__ import annotations

import os
from pathlib import Path

from nbp_assets.model.weights import DEFAULT_WEIGHTS_FILE


def nbp_home() -> Path:
    return Path(os.environ.get("NBP_HOME", ".nbp")).resolve()


def warehouse_path() -> Path:
    return Path(os.environ.get("NBP_WAREHOUSE_PATH", nbp_home() / "warehouse.duckdb")).resolve()


def postgres_url() -> str | None:
    return os.environ.get("NBP_POSTGRES_URL") or None


def postgres_data_dir() -> Path:
    return nbp_home() / "postgres"


def weights_file() -> Path:
    if os.environ.get("NBP_WEIGHTS_FILE"):
        return Path(os.environ["NBP_WEIGHTS_FILE"]).resolve()
    local = nbp_home() / "weights.csv"
    return local if local.exists() else DEFAULT_WEIGHTS_FILE
