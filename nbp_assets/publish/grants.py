"""The apps' role nbp_app_reader and its grants: SELECT on what it reads, USAGE on the schema,
no TEMP, and what it may have gained for itself taken back (statements in sql/grants.sql)."""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from nbp_assets.publish.locks import holders
from nbp_assets.publish.queries import query
from nbp_assets.publish.tables import APP_READER_ROLE, LIVE, PRODUCTS, SCHEMA, TABLE, VIEW, exists

# the publish logs under one name, as it did before it was split into modules
log = logging.getLogger("nbp_assets.publish.postgres")

_ROLE = sql.Identifier(APP_READER_ROLE)
# The one role-level setting the apps' role should have: its sessions start read-only. A
# convenience (an app may switch it off); the protection is its privileges.
_APP_READER_SETTINGS = [(0, ["default_transaction_read_only=on"])]


def may_create_roles(conn: psycopg.Connection) -> bool:
    return conn.execute(query("catalog", "may_create_roles")).fetchone()[0]


def carry_over(conn: psycopg.Connection, table: sql.Identifier) -> None:
    """A new table starts without grants: the live table's (the apps' SELECT, any other) are
    given to `table`, the staged week, before it replaces it."""
    for grantee, privilege in conn.execute(query("grants", "table_grants"), (SCHEMA, TABLE)).fetchall():
        to = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        conn.execute(query("grants", "grant_on_table", privilege=sql.SQL(privilege), table=table, grantee=to))


def grant_app_reader(conn: psycopg.Connection, objects: bool = True) -> None:
    """SELECT for the apps' read-only role on the live table, its products and the view;
    the role is created when this user may create roles, else granted only if it exists.
    Then what the role may have gained is taken back (protect_app_reader)."""
    if not exists(conn, "role_exists", APP_READER_ROLE):
        if not may_create_roles(conn):
            log.warning(
                "role %s does not exist and this user cannot create it: the apps' grants were not made "
                "(see docs/apps.md)",
                APP_READER_ROLE,
            )
            return
        conn.execute(query("grants", "create_role", role=_ROLE))
        conn.execute(query("grants", "role_read_only", role=_ROLE))
    conn.execute(query("grants", "grant_schema", schema=sql.Identifier(SCHEMA), role=_ROLE))
    if objects:
        conn.execute(query("grants", "grant_select", live=LIVE, products=PRODUCTS, view=VIEW, role=_ROLE))
    protect_app_reader(conn)


def protect_app_reader(conn: psycopg.Connection) -> None:
    """Undo what the apps' role can do for itself: role-level settings it planted (ALTER ROLE
    itself SET ..., e.g. default_transaction_read_only = off for every later app session) are
    reset, and TEMP on this database is taken from it. Each step in a savepoint: one this
    user may not take, or a wait that times out (an app's uncommitted ALTER ROLE), is logged
    with what to do or who holds it, and the publish goes on."""
    for step in (_reset_app_reader_settings, _revoke_app_reader_temp):
        try:
            with conn.transaction():
                step(conn)
        except psycopg.errors.InsufficientPrivilege as exc:
            log.warning("%s: this user may not (%s); see docs/apps.md", step.__doc__, str(exc).strip())
        except psycopg.errors.LockNotAvailable:
            log.warning(
                "%s: timed out waiting, %s", step.__doc__, holders(conn, "pg_catalog.pg_db_role_setting", "a session")
            )


def _reset_app_reader_settings(conn: psycopg.Connection) -> None:
    """resetting the role-level settings of nbp_app_reader"""
    settings = conn.execute(query("grants", "role_settings"), (APP_READER_ROLE,)).fetchall()
    if [(db, sorted(config or [])) for db, config in settings] == _APP_READER_SETTINGS:
        return
    for database, config in settings:
        if database == 0:
            conn.execute(query("grants", "reset_role", role=_ROLE))
        else:
            name = conn.execute(query("grants", "database_name"), (database,)).fetchone()
            if name:
                conn.execute(query("grants", "reset_role_in_database", role=_ROLE, database=sql.Identifier(name[0])))
    conn.execute(query("grants", "role_read_only", role=_ROLE))
    if not settings:
        log.info("role %s: its sessions now start read-only (default_transaction_read_only = on)", APP_READER_ROLE)
        return
    log.warning(
        "role %s had role-level settings it may have set itself, reset to default_transaction_read_only=on: %s",
        APP_READER_ROLE,
        "; ".join(f"{'all databases' if db == 0 else f'database oid {db}'}: {config}" for db, config in settings),
    )


def _has_temp(conn: psycopg.Connection) -> bool:
    return conn.execute(query("grants", "has_temp"), (APP_READER_ROLE,)).fetchone()[0]


def _revoke_app_reader_temp(conn: psycopg.Connection) -> None:
    """taking TEMP on this database from nbp_app_reader"""
    if not _has_temp(conn):
        return
    # Every role has TEMP through PUBLIC until it is revoked there. The other login roles
    # (not the apps' role, nor its members) get it back by name, so nothing changes for them;
    # the owner and superusers keep it anyway.
    keep = [name for (name,) in conn.execute(query("grants", "keep_temp"), (APP_READER_ROLE,))]
    database = sql.Identifier(conn.execute(query("grants", "current_database")).fetchone()[0])
    conn.execute(query("grants", "revoke_temp", database=database, role=_ROLE))
    if keep:
        roles = sql.SQL(", ").join(map(sql.Identifier, keep))
        conn.execute(query("grants", "grant_temp", database=database, roles=roles))
    if _has_temp(conn):
        raise psycopg.errors.InsufficientPrivilege(
            f"{APP_READER_ROLE} still has TEMP, through a role it is a member of or a grant this user cannot revoke"
        )
    log.info(
        "TEMP on this database revoked from PUBLIC and %s%s",
        APP_READER_ROLE,
        f"; granted back to {', '.join(keep)}" if keep else "",
    )
