{#
  signals: every signal of every candidate (party, product) pair of a week, each rounded to
  6 dp in [0, 1], and financial_health; the pairs the suitability rule suppresses are left
  out. One row per pair: party_id, product_id, the signals (in `signals` order),
  financial_health.

  r: the week's relations (SignalRelations; `r.parties` restricts it to one party shard).
  c: the constants (weekly/signals.py CONSTANTS).
  signals: the output's signal columns, in order (vocabulary.ALL_SIGNALS).
#}
{% import "weekly/sql/_signal_inputs.sql" as inputs %}
SELECT party_id, product_id, {{ signals | join(", ") }}, financial_health
FROM (
WITH
{{ inputs.ctes(r, c) }}
SELECT
    k.party_id,
    k.product_id,
    -- no peer holds it: 0/customers, which is exactly 0.0
    {{ round6("coalesce(pr.share, 0.0e0)") }} AS relationship_gap,
    {{ round6("CASE WHEN p.is_retention THEN coalesce(a.churn_probability, 0.0e0) ELSE 0.0e0 END")
    }} AS churn_risk,
    {{ round6("CASE WHEN a.customer_rote IS NULL THEN 0.0e0 ELSE "
              ~ clip01("(p.target_rote - a.customer_rote) / " ~ dbl(c.rote_uplift_scale))
              ~ " END")
    }} AS rote_uplift,
    {{ round6(clip01("(coalesce(a.current_account_balance, 0.0e0)"
                     ~ " / greatest(coalesce(a.monthly_spend, 0.0e0), " ~ dbl(c.min_monthly_spend) ~ ")"
                     ~ " - " ~ dbl(c.idle_cash_buffer_months) ~ ")"
                     ~ " / " ~ dbl(c.idle_cash_full_months - c.idle_cash_buffer_months)))
    }} AS idle_cash,
    {{ round6(clip01("CAST(coalesce(a.fx_active_months_6m, 0) AS DOUBLE) / " ~ dbl(c.fx_months)))
    }} AS regular_fx,
    {{ round6("CASE WHEN a.top_spend_category = p.spend_category THEN 1.0e0 ELSE 0.0e0 END")
    }} AS spend_affinity,
    {{ round6("CASE WHEN co.party_id IS NULL THEN 0.0e0 ELSE 1.0e0 END") }} AS cooling_off,
    {{ round6("p.lifecycle_penalty") }} AS lifecycle,
    {{ round6("CASE WHEN " ~ inputs.unsuitable(c) ~ " THEN 1.0e0 ELSE 0.0e0 END") }} AS suitability,
    a.financial_health,
    {{ inputs.suppressed(c) }} AS suppressed
FROM candidates k
JOIN party a ON a.party_id = k.party_id
JOIN products p ON p.product_id = k.product_id
LEFT JOIN peers pr ON pr.segment = a.segment AND pr.product_id = k.product_id
LEFT JOIN cooling_off co ON co.party_id = k.party_id AND co.product_id = k.product_id
) m
WHERE NOT m.suppressed
