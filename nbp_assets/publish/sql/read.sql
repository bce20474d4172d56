-- What the apps and the operators read.

-- name: read_current
COPY (SELECT {columns} FROM {live} {where} ORDER BY party_id, rank) TO STDOUT (FORMAT csv)

-- name: where_party
WHERE party_id = {party_id}

-- name: read_named
SELECT * FROM {view} WHERE party_id = %s ORDER BY rank
