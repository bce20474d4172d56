"""What the publish's tables, view and role are called, the columns of a week, and how a
publish finds them in the catalog."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from nbp_assets.publish.queries import query

SCHEMA, TABLE = "product_intelligence", "nbp_current"
COLUMNS = ["party_id", "jurisdiction", "rank", "product_id", "score", "primary_signal", "model_version", "evaluated_at"]
TEXT_COLUMNS = ["party_id", "jurisdiction", "product_id", "primary_signal", "model_version"]
# Filled per row by COPY; model_version and evaluated_at are one value per week (defaults).
COPIED = [c for c in COLUMNS if c not in ("model_version", "evaluated_at")]
LIVE = sql.Identifier(SCHEMA, TABLE)
# Beside nbp_current, for the apps: the live week's product names, and a view of the live
# table with each product's name and the week's partition key. Both change with the swap.
PRODUCTS_TABLE, NAMED_VIEW = "nbp_current_products", "nbp_current_named"
PRODUCTS, VIEW = sql.Identifier(SCHEMA, PRODUCTS_TABLE), sql.Identifier(SCHEMA, NAMED_VIEW)
PRODUCT_COLUMNS = ["product_id", "product_name", "product_class"]
# The apps' role: SELECT on nbp_current, its products and the view, nothing else. Created
# by the publisher when it may create roles (the embedded server); in production a DBA
# creates it (docs/apps.md). Login users of the apps are its members.
APP_READER_ROLE = "nbp_app_reader"
# Publishers serialise on this table (MOD-107), not on an advisory lock: any role, an app's
# included, can take any advisory lock key. SHARE ROW EXCLUSIVE conflicts with itself and
# with every mode that needs a write privilege, never with ACCESS SHARE, the one mode SELECT
# allows: an app cannot hold it up even if a DBA grants it SELECT on every table here.
PUBLISH_LOCK_TABLE = "nbp_publish_lock"
PUBLISH_LOCK = sql.Identifier(SCHEMA, PUBLISH_LOCK_TABLE)


def exists(conn: psycopg.Connection, name: str, *params: str) -> bool:
    """Statement `name` of sql/catalog.sql (table_exists, view_exists, role_exists).

    A catalog query, not to_regclass(): it reads the catalog with a fresh snapshot, so a
    table another publisher just created is seen whatever this backend's catalog cache holds."""
    return conn.execute(query("catalog", name), params).fetchone()[0]


def live_exists(conn: psycopg.Connection) -> bool:
    """Whether nbp_current exists, as this backend's catalog cache sees it."""
    return conn.execute(query("catalog", "regclass"), (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is not None


def live_week(conn: psycopg.Connection) -> datetime | None:
    """The week nbp_current holds, or None before the first publish."""
    if not live_exists(conn):
        return None
    row = conn.execute(query("catalog", "live_week", live=LIVE)).fetchone()
    return row[0] if row else None


def week_key(evaluated_at: datetime) -> str:
    """The week as operators and the UI name it: its partition key, the Monday it starts
    (evaluated_at is the Monday after). A timestamp that is not a Monday midnight is shown as is."""
    if evaluated_at.time() != datetime.min.time() or evaluated_at.weekday() != 0:
        return f"evaluated_at {evaluated_at:%Y-%m-%d %H:%M:%S}"
    return (evaluated_at - timedelta(days=7)).strftime("%Y-%m-%d")
