-- The apps' role nbp_app_reader: SELECT on what it reads, USAGE on the schema, no TEMP.

-- name: create_role
-- LOGIN without a password: it can log in only where the server trusts the connection
-- (the embedded server's socket); a DBA sets a password or adds member roles elsewhere.
CREATE ROLE {role} LOGIN

-- name: role_read_only
ALTER ROLE {role} SET default_transaction_read_only = on

-- name: grant_schema
GRANT USAGE ON SCHEMA {schema} TO {role}

-- name: grant_select
GRANT SELECT ON {live}, {products}, {view} TO {role}

-- name: table_grants
-- a new table starts without grants: those of the live table are carried over to the staged one
SELECT grantee, privilege_type FROM information_schema.table_privileges
WHERE table_schema = %s AND table_name = %s AND grantee <> current_user

-- name: grant_on_table
GRANT {privilege} ON {table} TO {grantee}

-- name: role_settings
SELECT setdatabase, setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
WHERE r.rolname = %s ORDER BY setdatabase

-- name: reset_role
ALTER ROLE {role} RESET ALL

-- name: reset_role_in_database
ALTER ROLE {role} IN DATABASE {database} RESET ALL

-- name: database_name
SELECT datname FROM pg_database WHERE oid = %s

-- name: current_database
SELECT current_database()

-- name: has_temp
SELECT has_database_privilege(%s, current_database(), 'TEMP')

-- name: keep_temp
-- The other login roles with TEMP (not the apps' role, nor its members; the owner and
-- superusers keep it anyway): they get it back by name when PUBLIC loses it.
SELECT r.rolname FROM pg_roles r, pg_database d
WHERE d.datname = current_database() AND r.rolcanlogin AND NOT r.rolsuper AND r.oid <> d.datdba
  AND NOT pg_has_role(r.oid, %s, 'MEMBER') AND has_database_privilege(r.oid, d.oid, 'TEMP')
ORDER BY 1

-- name: revoke_temp
REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC, {role}

-- name: grant_temp
GRANT TEMPORARY ON DATABASE {database} TO {roles}
