-- The locks a publish takes and the swap of the staged week for the live one.

-- name: set_lock_timeout
SELECT set_config('lock_timeout', %s, true)

-- name: lock_publishers
-- SHARE ROW EXCLUSIVE conflicts with itself and with every mode that needs a write
-- privilege, never with ACCESS SHARE, the one mode SELECT allows.
LOCK TABLE {lock_table} IN SHARE ROW EXCLUSIVE MODE

-- name: lock_live
LOCK TABLE {live} IN ACCESS EXCLUSIVE MODE

-- name: rename_table
ALTER TABLE {table} RENAME TO {name}

-- name: drop_table
DROP TABLE IF EXISTS {table}

-- name: rename_key
-- a renamed table keeps its constraint name; next week's staging must find it free
ALTER TABLE {live} RENAME CONSTRAINT {stage_key} TO {live_key}

-- name: clear_products
-- a handful of rows: DELETE keeps grants and the view
DELETE FROM {products}

-- name: insert_product
INSERT INTO {products} (product_id, product_name, product_class) VALUES (%s, %s, %s)
