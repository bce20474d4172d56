{#
  peers: relationship_gap's peer statistic, bank-wide whatever the shard: per segment and
  product, the share of the segment's active customers who hold the product. Computed once
  per week into a temporary table when the week runs in party shards.

  r: the week's relations (SignalRelations); only customers, holdings and products are read.
  into: the temporary table to create, or None for the bare query.
#}
{% import "weekly/sql/_signal_inputs.sql" as inputs %}
{% if into is not none %}
CREATE OR REPLACE TEMP TABLE {{ into }} AS
{% endif %}
WITH
{{ inputs.peers_ctes(r) }}
SELECT segment, product_id, share FROM peers
