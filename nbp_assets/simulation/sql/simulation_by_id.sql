{#
  simulation_by_id: one recorded simulation (none if the id is unknown).

  table: product_intelligence.simulations; simulation_id.
#}
SELECT * FROM {{ table }} s WHERE s.simulation_id = {{ lit(simulation_id) }}
