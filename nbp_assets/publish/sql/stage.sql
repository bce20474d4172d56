-- Loading the week into its staging table.

-- name: set_defaults
-- One week has one model_version and one evaluated_at: COPY leaves them to these defaults.
ALTER TABLE {stage} ALTER COLUMN model_version SET DEFAULT {model_version},
    ALTER COLUMN evaluated_at SET DEFAULT {evaluated_at}

-- name: copy_in
COPY {stage} ({columns}) FROM STDIN (FORMAT csv)

-- name: drop_defaults
ALTER TABLE {stage} ALTER COLUMN model_version DROP DEFAULT, ALTER COLUMN evaluated_at DROP DEFAULT

-- name: sort_memory
-- The key is built by one sort of the week: with PostgreSQL's default 64MB it spills to disk
-- at millions of rows. A session setting any role may change.
SET LOCAL maintenance_work_mem = '512MB'

-- name: add_key
ALTER TABLE {stage} ADD CONSTRAINT {key} PRIMARY KEY (party_id, rank)

-- name: analyze
ANALYZE {stage}
