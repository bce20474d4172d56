{#
  The signals' inputs as named CTEs, shared by signals.sql, suppressed_pairs.sql,
  signal_report.sql and peers.sql (imported, not a model of its own).

  r: the week's relations (weekly/signals.py SignalRelations: candidates, customers, products,
     holdings, churn, behaviour, rejections, rote or None, parties (a shard's predicate on
     party_id, or None), peers (a table of the week's peer shares, or None), suitability
     (the rules relation, or None)).
  c: the constants (weekly/signals.py CONSTANTS): cooling-off window, lifecycle penalties,
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
           coalesce(u.penalty, 0.0e0) AS suitability_penalty,
           coalesce(u.when_unknown, 0.0e0) AS when_unknown
    FROM {{ r.products }} pr
    {% if r.suitability is none %}
    LEFT JOIN (
        SELECT CAST(NULL AS VARCHAR) AS product_class, CAST(NULL AS DOUBLE) AS health_below,
               CAST(NULL AS DOUBLE) AS penalty, CAST(NULL AS DOUBLE) AS when_unknown
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
           ch.financial_health_score AS health_score,
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

{#
  The rule (issue 22): a class with a rule (health_below > 0) is unsuitable for a customer
  whose MOD-040 score, as delivered (unrounded), divided by the scale is below health_below
  (39.99995 / 100 < 0.40, where the 6 dp financial_health would read 0.400000); a customer
  whose health is unknown (no row in the week's MOD-040 snapshot, or a NULL score) is
  unsuitable when the class's when_unknown is 1 (fails closed, the default of a suppressing
  rule). `a` carries health_score (the score as delivered, NULL when unknown), `p` the class's
  rule (health_below, suitability_penalty, when_unknown).
#}
{% macro unsuitable(c) -%}
(p.health_below > 0.0e0 AND CASE WHEN a.health_score IS NULL THEN p.when_unknown >= 1.0e0
    ELSE a.health_score / {{ dbl(c.health_scale) }} < p.health_below END)
{%- endmacro %}

{# which setting withheld the pair #}
{% macro withheld_rule() -%}
CASE WHEN a.health_score IS NULL THEN 'suitability_when_unknown' ELSE 'suitability_health_below' END
{%- endmacro %}

{% macro suppressed(c) -%}
({{ unsuitable(c) }} AND p.suitability_penalty >= {{ dbl(c.suppress) }})
{%- endmacro %}

{#
  The candidate pairs the rule suppresses, not held: party_id, product_id, product_class,
  health_score (as delivered, NULL when unknown), health_below, rule. Only the inputs the
  rule reads are joined, not the signals: the rule first, the holdings after, so the
  anti-join runs on the few suppressed pairs. The GROUP BY (a no-op: candidate pairs are
  unique) keeps it that way, as an engine does not reorder joins across an aggregate;
  without it DuckDB anti-joined all ~10M candidates first (1.0 CPU s at 1M customers, for
  ~100k suppressed pairs). The candidates are active customers already, and the rule reads
  only the MOD-040 health: churn alone is joined (outer: a customer without a row is
  unknown, which the rule may withhold), not the party row's four inputs.
#}
{% macro withheld_pairs(r, c) -%}
SELECT w.party_id, w.product_id, w.product_class, w.health_score, w.health_below, w.rule
FROM (
    SELECT k.party_id, k.product_id, p.product_class, a.health_score, p.health_below,
           {{ withheld_rule() }} AS rule
    FROM {{ within(r.candidates, r.parties) }} k
    LEFT JOIN (SELECT party_id, financial_health_score AS health_score FROM churn ch) a
        ON a.party_id = k.party_id
    JOIN products p ON p.product_id = k.product_id
    WHERE {{ suppressed(c) }}
    GROUP BY k.party_id, k.product_id, p.product_class, a.health_score, p.health_below
) w
LEFT JOIN {{ within(r.holdings, r.parties) }} h ON h.party_id = w.party_id AND h.product_id = w.product_id
WHERE h.party_id IS NULL
{%- endmacro %}
