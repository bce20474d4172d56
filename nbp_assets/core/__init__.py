"""Shared machinery below every domain: settings, the weekly partitions, warehouse sessions
(DuckDB, Snowflake), the local PostgreSQL, the SQL helpers and secret redaction. Nothing
here knows a domain."""
