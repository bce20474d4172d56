{# every_row: predicate, the whole table (the pending table is replaced as a whole). #}
TRUE
