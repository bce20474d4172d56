-- What a publish looks up in PostgreSQL's catalog. Catalog queries, not to_regclass(), where
-- another publisher may just have created the object: they read with a fresh snapshot.

-- name: table_exists
SELECT EXISTS (SELECT FROM pg_tables WHERE schemaname = %s AND tablename = %s)

-- name: view_exists
SELECT EXISTS (SELECT FROM pg_views WHERE schemaname = %s AND viewname = %s)

-- name: role_exists
SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)

-- name: may_create_roles
SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user

-- name: regclass
SELECT to_regclass(%s)

-- name: live_week
-- one week per table (enforced at publish): any row tells the week, no scan
SELECT evaluated_at FROM {live} LIMIT 1

-- name: holders
-- Who holds a lock on a relation, as pg_locks and pg_stat_activity show it to this user.
SELECT a.pid, a.application_name, a.usename, a.state, a.state_change::timestamp(0),
       extract(epoch FROM clock_timestamp() - a.state_change)::float8,
       string_agg(DISTINCT l.mode, ', ')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.relation = to_regclass(%s) AND l.granted
  AND l.pid <> pg_backend_pid()
GROUP BY 1, 2, 3, 4, a.state_change ORDER BY a.state_change NULLS LAST
