"""Creating a schema on a server where it may already exist, made by someone else."""

from __future__ import annotations

# Whether a schema exists, per server; the one parameter is its name as the catalog stores it.
_EXISTS = {
    "postgres": "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s)",
    "snowflake": "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
}


def create_schema_if_missing(db, schema: str, server: str) -> None:
    """Create `schema` unless it exists. `db`: a psycopg connection, a Snowflake cursor, or a
    DuckDB connection or warehouse session.

    On a server, checked first: CREATE SCHEMA IF NOT EXISTS needs the privilege to create
    schemas even when the schema exists, and production schemas are created by the DBA.
    Callers that may race a concurrent first writer hold their lock around this call. The
    embedded DuckDB file is ours, with nothing to ask: its statement is enough."""
    if server == "duckdb":
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        return
    name = schema.upper() if server == "snowflake" else schema  # Snowflake's catalog is upper case
    answered = db.execute(_EXISTS[server], (name,))
    row = (db if answered is None else answered).fetchone()  # a connection answers with a cursor
    exists = next(iter(row.values())) if isinstance(row, dict) else row[0]
    if not exists:
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
