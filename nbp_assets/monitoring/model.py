"""Outcome monitoring and drift: how customers answered what they were offered, and whether
the model's inputs and outputs moved week over week.

Offer outcomes (MOD-108 offer_history): the offers made during a week W were made while the
top 3 published at W's start was current (the previous week's ranking, evaluated_at = W's
Monday). Each offer of a (party, product) in that top 3 takes the row's rank,
primary_signal and model_version; offers of other products are counted as
`not_recommended`. An outcome decided before W's evaluation date counts; a later one is
still pending for that week. Rates are acceptance and rejection among the offers, with
Wilson 95% intervals (fairness/maths.py), per product, rank, primary_signal, model_version
and per group of each fairness dimension.

Drift (docs/monitoring.md): each signal's mean, the score's 10/50/90 % quantiles over the
candidate pairs, and the share of active customers without an eligible product, compared
with the previous week against fixed thresholds.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from nbp_assets.core.sqltext import dbl, lit, timestamp
from nbp_assets.fairness.maths import group_labels, wilson_interval
from nbp_assets.weekly.vocabulary import ALL_SIGNALS

NOT_RECOMMENDED = "not_recommended"
BY_MODEL = ("product_id", "rank", "primary_signal", "model_version")

# Drift thresholds: a change above these week over week is a warning (docs/monitoring.md).
SIGNAL_MEAN_DRIFT = 0.05  # signals are in [0, 1]: 5 points of the scale
SCORE_QUANTILE_DRIFT = 0.05
SCORE_QUANTILES = (0.1, 0.5, 0.9)
NO_ELIGIBLE_SHARE_DRIFT = 0.02  # 2 percentage points of the active customers


def offers_sql(offers: str, ranked: str, customers: str, week_start, evaluation_date, dimensions) -> str:
    """One row per offer made in the week: outcome as known at the evaluation date, the
    recommendation it followed (or not_recommended) and the customer's groups."""
    ev = timestamp(evaluation_date)
    dims = ", ".join(f"c.{d}" for d in dimensions)
    return f"""SELECT o.offer_id, o.product_id,
       CASE WHEN o.outcome_at IS NOT NULL AND o.outcome_at < {ev} THEN o.outcome ELSE 'PENDING' END AS outcome,
       coalesce(CAST(r.rank AS VARCHAR), '{NOT_RECOMMENDED}') AS rank,
       coalesce(r.primary_signal, '{NOT_RECOMMENDED}') AS primary_signal,
       coalesce(r.model_version, '{NOT_RECOMMENDED}') AS model_version,
       {dims}
FROM {offers} o
LEFT JOIN {ranked} r ON r.party_id = o.party_id AND r.product_id = o.product_id
JOIN {customers} c ON c.party_id = o.party_id
WHERE o.offered_at >= {timestamp(week_start)} AND o.offered_at < {ev}"""


def outcome_counts_sql(offers: str, by: list[str]) -> str:
    """by, grp, offered, accepted, rejected: offers, acceptances and rejections per value of
    each column in `by` of `offers_sql`, all in one pass over the offers (GROUPING SETS; the
    offers join the week's customers and recommendations, which one query per column redid).
    GROUPING() tells a column's NULL value from the rows of the other columns' sets."""
    columns = ", ".join(f"CAST({c} AS VARCHAR) AS g{i}" for i, c in enumerate(by))
    which = " ".join(f"WHEN GROUPING(g{i}) = 0 THEN {lit(c)}" for i, c in enumerate(by))
    value = " ".join(f"WHEN GROUPING(g{i}) = 0 THEN g{i}" for i in range(len(by)))
    sets = ", ".join(f"(g{i})" for i in range(len(by)))
    return f"""SELECT CASE {which} END AS by, CASE {value} END AS grp, count(*) AS offered,
       count(CASE WHEN outcome = 'ACCEPTED' THEN 1 END) AS accepted,
       count(CASE WHEN outcome = 'REJECTED' THEN 1 END) AS rejected
FROM (SELECT {columns}, outcome FROM ({offers}) o) o
GROUP BY GROUPING SETS ({sets})"""


def outcome_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """by, group, offered, accepted, rejected, the two rates and their 95% intervals, from
    the rows of outcome_counts_sql."""
    columns = [
        "by",
        "group",
        "offered",
        "accepted",
        "rejected",
        "acceptance_rate",
        "acceptance_ci_low",
        "acceptance_ci_high",
        "rejection_rate",
        "rejection_ci_low",
        "rejection_ci_high",
    ]
    if counts.empty:
        kinds = {"by": object, "group": object, "offered": "int64", "accepted": "int64", "rejected": "int64"}
        return pd.DataFrame({c: pd.Series(dtype=kinds.get(c, "float64")) for c in columns})
    out = counts.rename(columns={"grp": "group"})
    out["group"] = group_labels(out["group"])
    for c in ("offered", "accepted", "rejected"):
        out[c] = out[c].astype("int64")
    for what in ("acceptance", "rejection"):
        k = out["accepted" if what == "acceptance" else "rejected"]
        out[f"{what}_rate"] = k / out["offered"]
        out[f"{what}_ci_low"], out[f"{what}_ci_high"] = wilson_interval(k, out["offered"])
    return out[columns].sort_values(["by", "group"]).reset_index(drop=True)


def acceptance_gaps(rates: pd.DataFrame, dimensions, min_offers: int) -> pd.DataFrame:
    """Per fairness dimension: the groups with the highest and lowest acceptance among those
    offered at least min_offers times, and the gap in percentage points (did one group accept
    less of what it was offered?)."""
    rows = []
    for d in dimensions:
        judged = rates[(rates["by"] == d) & (rates["offered"] >= min_offers)].sort_values(["acceptance_rate", "group"])
        if len(judged) < 2:
            rows.append({"dimension": d, "highest": None, "lowest": None, "gap_pp": np.nan})
            continue
        lo, hi = judged.iloc[0], judged.iloc[-1]
        rows.append(
            {
                "dimension": d,
                "highest": hi["group"],
                "lowest": lo["group"],
                "gap_pp": round((hi["acceptance_rate"] - lo["acceptance_rate"]) * 100, 4),
            }
        )
    return pd.DataFrame(rows)


def score_quantiles_sql(scores: str) -> str:
    """One row: score_p10, score_p50, score_p90, exactly the engines' percentile_cont (linear
    interpolation between the ranks around q x (n - 1)), read off the score's histogram.

    A score has 6 decimals in [0, 1]: at most 1,000,001 distinct values whatever the number
    of pairs, where percentile_cont keeps every value in memory (95M doubles at 10M
    customers: more than DuckDB's 1 GB, and it cannot spill)."""
    picks = ", ".join(
        f"max(CASE WHEN q = {dbl(q)} THEN v_lo + (pos - lo) * (v_hi - v_lo) END) AS score_p{int(q * 100)}"
        for q in SCORE_QUANTILES
    )
    wanted = ", ".join(f"({dbl(q)})" for q in SCORE_QUANTILES)
    return f"""WITH histogram AS (SELECT score, count(*) AS n FROM {scores} s GROUP BY score),
cumulative AS (
    SELECT score, sum(n) OVER (ORDER BY score ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto
    FROM histogram
),
ranks AS (
    SELECT q, pos, floor(pos) AS lo, ceil(pos) AS hi
    FROM (
        SELECT qs.q, qs.q * CAST(t.total - 1 AS DOUBLE) AS pos
        FROM (SELECT sum(n) AS total FROM histogram) t, (VALUES {wanted}) AS qs(q)
    ) r
),
-- the value at 0-based rank k is the smallest score whose cumulative count exceeds k
picked AS (
    SELECT r.q, r.pos, r.lo,
           min(CASE WHEN c.upto > r.lo THEN c.score END) AS v_lo,
           min(CASE WHEN c.upto > r.hi THEN c.score END) AS v_hi
    FROM ranks r CROSS JOIN cumulative c
    GROUP BY r.q, r.pos, r.lo
)
SELECT {picks} FROM picked"""


def drift_metrics_sql(signals: str, scores: str, active: str, eligible: str) -> str:
    """One row: each signal's mean, the score's quantiles, and the share of active customers
    without an eligible product (of one week)."""
    # one scan of each 10M-row table, not one per metric. The customers without an eligible
    # product are counted as all minus those with one: a semi-join hashes the ~1M customers,
    # where NOT EXISTS hashed the ~10M eligible pairs (0.16 s against 0.6-1.2 s at 1M).
    means = ", ".join(f"avg({s}) AS mean_{s}" for s in ALL_SIGNALS)
    return f"""SELECT m.*, q.*,
       (SELECT count(*) FROM {active} a)
       - (SELECT count(*) FROM {active} a WHERE a.party_id IN (SELECT e.party_id FROM {eligible} e))
       AS without_eligible,
       (SELECT count(*) FROM {active} a) AS active_customers
FROM (SELECT {means} FROM {signals} s) m, ({score_quantiles_sql(scores)}) q"""


def drift_table(now: pd.Series, before: pd.Series | None) -> pd.DataFrame:
    """metric, kind, value, previous, change, threshold, drifted: the week against the one before."""
    share = lambda row: float(row["without_eligible"]) / max(float(row["active_customers"]), 1.0)  # noqa: E731
    metrics = [(f"mean_{s}", "signal_mean", SIGNAL_MEAN_DRIFT) for s in ALL_SIGNALS]
    metrics += [(f"score_p{int(q * 100)}", "score_quantile", SCORE_QUANTILE_DRIFT) for q in SCORE_QUANTILES]
    rows = []
    for metric, kind, threshold in [
        *metrics,
        ("no_eligible_product_share", "no_eligible_share", NO_ELIGIBLE_SHARE_DRIFT),
    ]:
        value = share(now) if kind == "no_eligible_share" else now[metric]
        previous = None if before is None else (share(before) if kind == "no_eligible_share" else before[metric])
        value = np.nan if value is None or pd.isna(value) else float(value)
        previous = np.nan if previous is None or pd.isna(previous) else float(previous)
        change = value - previous
        rows.append(
            {
                "metric": metric,
                "kind": kind,
                "value": value,
                "previous": previous,
                "change": change,
                "threshold": threshold,
                "drifted": bool(abs(change) > threshold) if change == change else False,
            }
        )
    return pd.DataFrame(rows)


def previous_week(week_start):
    return week_start - timedelta(days=7)
