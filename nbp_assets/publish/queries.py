"""The publish's SQL, kept in publish/sql/*.sql: one file per concern, each statement under a
`-- name: <name>` line. Identifiers are filled in with psycopg.sql (`{live}`), values are
bound as parameters (`%s`); no statement is assembled from strings here."""

from __future__ import annotations

from functools import cache
from importlib import resources

from psycopg import sql


def query(file: str, name: str, /, **parts: sql.Composable) -> sql.Composed | sql.SQL:
    """Statement `name` of sql/<file>.sql, its `{placeholders}` filled with `parts`."""
    statements = _statements(file)
    if name not in statements:
        raise KeyError(f"no statement {name!r} in nbp_assets/publish/sql/{file}.sql")
    text = sql.SQL(statements[name])
    return text.format(**parts) if parts else text


@cache
def _statements(file: str) -> dict[str, str]:
    """{name: statement} of one file; whole-line comments are dropped, so a statement can be
    used as a fragment of another."""
    text = resources.files(__package__).joinpath("sql", f"{file}.sql").read_text(encoding="utf-8")
    statements: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-- name:"):
            lines = statements.setdefault(stripped.removeprefix("-- name:").strip(), [])
        elif lines is not None and stripped and not stripped.startswith("--"):
            lines.append(line.rstrip())
    return {name: "\n".join(body).rstrip(";") for name, body in statements.items()}
