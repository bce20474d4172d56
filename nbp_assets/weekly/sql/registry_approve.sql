{#
  registry_approve: the approval of a model_version: who, when, why, after which simulation.

  table: product_intelligence.model_versions; model_version; approved_by; approved_at
  (datetime); reason; simulation_id.
#}
UPDATE {{ table }} SET
    approved_by = {{ lit(approved_by) }},
    approved_at = {{ timestamp(approved_at) }},
    approval_reason = {{ lit(reason) }},
    approval_simulation_id = {{ lit(simulation_id) }}
WHERE model_version = {{ lit(model_version) }}
