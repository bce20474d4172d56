"""What a publish creates, and nothing else: the schema and the publishers' lock table, the
staging table, the products table and the named view (statements in sql/ddl.sql)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from nbp_assets.core.schemas import create_schema_if_missing
from nbp_assets.publish.queries import query
from nbp_assets.publish.tables import LIVE, PRODUCTS, PUBLISH_LOCK, PUBLISH_LOCK_TABLE, SCHEMA, VIEW, exists


def ensure_schema(conn: psycopg.Connection) -> None:
    """The schema and the publishers' lock table, created if missing. Concurrent first
    publishers may both try: the loser's catalog insert fails and it looks again (no lock
    is waited for here, so there is none an app could take)."""
    for attempt in range(3):
        try:
            with conn.transaction():
                create_schema_if_missing(conn, SCHEMA, "postgres")
                if not exists(conn, "table_exists", SCHEMA, PUBLISH_LOCK_TABLE):
                    conn.execute(query("ddl", "create_lock_table", lock_table=PUBLISH_LOCK))
            return
        except psycopg.errors.UniqueViolation:  # another publisher created it first
            if attempt == 2:
                raise


def create_stage(conn: psycopg.Connection, stage: sql.Identifier) -> None:
    """The staging table, in the shape of nbp_current and without its key (added once loaded)."""
    conn.execute(query("ddl", "create_stage", stage=stage))


def ensure_products_table(conn: psycopg.Connection) -> None:
    conn.execute(query("ddl", "create_products", products=PRODUCTS))


def create_view(conn: psycopg.Connection) -> None:
    """The view nbp_current_named, bound to the live table itself (not its name): it is
    dropped before the swap and created again after it."""
    conn.execute(query("ddl", "create_view", view=VIEW, live=LIVE, products=PRODUCTS))
