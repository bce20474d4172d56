"""Resources chosen by deployment (NBP_DEPLOYMENT), local by default.

- local: DuckDB file as the warehouse, PostgreSQL from NBP_POSTGRES_URL or an embedded
  server under $NBP_HOME/postgres. Nothing to install or start by hand.
"""

from __future__ import annotations

import os

from nbp_assets import settings
from nbp_assets.storage.postgres_resource import PostgresResource
from nbp_assets.storage.warehouse import DuckDBWarehouse

DEPLOYMENTS = ("local",)


def deployment_name() -> str:
    return os.environ.get("NBP_DEPLOYMENT", "local")


def build_resources(deployment: str | None = None) -> dict:
    deployment = deployment or deployment_name()
    if deployment == "local":
        return {
            "warehouse": DuckDBWarehouse(database=str(settings.warehouse_path())),
            "postgres": PostgresResource(url=settings.postgres_url(), data_dir=str(settings.postgres_data_dir())),
        }
    raise ValueError(f"unknown NBP_DEPLOYMENT {deployment!r}: expected one of {', '.join(DEPLOYMENTS)}")
