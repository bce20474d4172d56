{#
  The signals' inputs as named CTEs, shared by signals.sql, suppressed_pairs.sql,
  signal_report.sql and peers.sql (imported, not a model of its own).

  r: the week's relations (model/signals.py SignalRelations: candidates, customers, products,
     holdings, churn, behaviour, rejections, rote or None, parties (a shard's predicate on
     party_id, or None), peers (a table of the week's peer shares, or None), suitability
     (the rules relation, or None)).
  c: the constants (model/signals.py CONSTANTS): cooling-off window, lifecycle penalties,
     health scale.

  The active customers and the held pairs are written inline wherever they are used, not as
  shared CTEs: an engine keeps a CTE read twice in memory (at 10M customers the held pairs
  alone outgrew DuckDB's 1 GB), where inline subqueries stream and spill.
#}
{% macro health(c) -%}
{{ round6("ch.financial_health_score / " ~ dbl(c.health_scale)) }}
{%- endmacro %}

{% macro peers_ctes(r) -%}
{% set active = "(SELECT party_id, segment FROM " ~ r.customers ~ ")" %}
segment_size AS (
    SELECT segment, count(*) AS customers FROM {{ active }} a GROUP BY segment
),
holders AS (
    SELECT held.segment, held.product_id, count(*) AS holders
    FROM (
        -- open holdings of active customers in registered products, once per pair, with the
        -- customer's segment (carried from the one join, not joined again)
        SELECT DISTINCT h.party_id, h.product_id, a.segment FROM {{ r.holdings }} h
        JOIN {{ active }} a ON a.party_id = h.party_id
        JOIN (SELECT product_id FROM {{ r.products }}) p ON p.product_id = h.product_id
    ) held
    GROUP BY held.segment, held.product_id
),
peers AS (
    SELECT hs.segment, hs.product_id,
           CAST(hs.holders AS DOUBLE) / CAST(greatest(ss.customers, 1) AS DOUBLE) AS share
    FROM holders hs JOIN segment_size ss ON ss.segment = hs.segment
)
{%- endmacro %}

{% macro not_held(pairs, r) -%}
{#- the pairs are of active customers and registered products already, so the holdings are
    read as they are: an outer join needs no DISTINCT (a held pair is dropped however often
    it is held), and it costs half of NOT EXISTS in DuckDB -#}
SELECT k.party_id, k.product_id FROM {{ pairs }} k
    LEFT JOIN {{ within(r.holdings, r.parties) }} h ON h.party_id = k.party_id AND h.product_id = k.product_id
    WHERE h.party_id IS NULL
{%- endmacro %}

{% macro ctes(r, c) -%}
products AS (
    SELECT pr.product_id, pr.product_class, pr.is_retention, pr.spend_category, pr.target_rote,
           CASE pr.lifecycle_stage
               {% for stage, penalty in c.lifecycle_penalty.items() %}
               WHEN {{ lit(stage) }} THEN {{ dbl(penalty) }}
               {% endfor %}
               ELSE 0.0e0
           END AS lifecycle_penalty,
           coalesce(u.health_below, 0.0e0) AS health_below,
           coalesce(u.penalty, 0.0e0) AS suitability_penalty
    FROM {{ r.products }} pr
    {% if r.suitability is none %}
    LEFT JOIN (
        SELECT CAST(NULL AS VARCHAR) AS product_class, CAST(NULL AS DOUBLE) AS health_below,
               CAST(NULL AS DOUBLE) AS penalty
        WHERE 1 = 0
    ) u ON u.product_class = pr.product_class
    {% else %}
    LEFT JOIN {{ r.suitability }} u ON u.product_class = pr.product_class
    {% endif %}
),
{% if r.peers is none %}
{{ peers_ctes(r) }},
{% else %}
peers AS (SELECT segment, product_id, share FROM {{ r.peers }}),
{% endif %}
-- cooling-off counts by calendar day: rejected from E-{{ c.cooling_off_days }} 00:00 up to, not including, E
cooling_off AS (
    SELECT DISTINCT party_id, product_id FROM {{ within(r.rejections, r.parties) }}
    WHERE outcome_at >= {{ timestamp(c.cooling_from) }} AND outcome_at < {{ timestamp(r.evaluation_date) }}
),
churn AS (
    SELECT party_id, churn_probability, financial_health_score FROM {{ within(r.churn, r.parties) }}
),
behaviour AS (
    SELECT party_id, current_account_balance, monthly_spend, fx_active_months_6m, top_spend_category
    FROM {{ within(r.behaviour, r.parties) }}
),
rote AS (
    {% if r.rote is none %}
    SELECT CAST(NULL AS VARCHAR) AS party_id, CAST(NULL AS DOUBLE) AS customer_rote WHERE 1 = 0
    {% else %}
    SELECT party_id, customer_rote FROM {{ within(r.rote, r.parties) }}
    {% endif %}
),
-- every per-party input joined once on the ~1M parties, not on the ~10M candidate pairs
party AS (
    SELECT a.party_id, a.segment, ch.churn_probability,
           {{ health(c) }} AS financial_health,
           b.current_account_balance, b.monthly_spend,
           b.fx_active_months_6m, b.top_spend_category, ro.customer_rote
    FROM (SELECT party_id, segment FROM {{ within(r.customers, r.parties) }}) a
    LEFT JOIN churn ch ON ch.party_id = a.party_id
    LEFT JOIN behaviour b ON b.party_id = a.party_id
    LEFT JOIN rote ro ON ro.party_id = a.party_id
),
-- a product the party already holds is not a *next* product: it leaves the candidates
candidates AS (
    {{ not_held(within(r.candidates, r.parties), r) }}
)
{%- endmacro %}

{# NULL health (no MOD-040 row) compares as unknown: not known to be in difficulty #}
{% macro unsuitable() -%}
coalesce(a.financial_health < p.health_below, FALSE)
{%- endmacro %}

{% macro suppressed(c) -%}
({{ unsuitable() }} AND p.suitability_penalty >= {{ dbl(c.suppress) }})
{%- endmacro %}
