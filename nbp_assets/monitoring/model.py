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
with the previous week against fixed thresholds; and each signal's and the score's whole
distribution (population stability index over fixed bins of [0, 1]) against the previous
week and against the week the model_version was approved, above NBP_DRIFT_PSI_WARN.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from nbp_assets.core.sql import render
from nbp_assets.fairness.maths import difference_interval, group_labels, wilson_interval
from nbp_assets.weekly.eligibility import ACTIVE
from nbp_assets.weekly.vocabulary import ALL_SIGNALS

NOT_RECOMMENDED = "not_recommended"
BY_MODEL = ("product_id", "rank", "primary_signal", "model_version")

# Drift thresholds: a change above these week over week is a warning (docs/monitoring.md).
SIGNAL_MEAN_DRIFT = 0.05  # signals are in [0, 1]: 5 points of the scale
SCORE_QUANTILE_DRIFT = 0.05
SCORE_QUANTILES = (0.1, 0.5, 0.9)
NO_ELIGIBLE_SHARE_DRIFT = 0.02  # 2 percentage points of the active customers
# Distributions: PSI over PSI_BINS equal-width bins of [0, 1] (signals and scores are in
# it); an empty bin's share counts as PSI_EPSILON. The threshold is NBP_DRIFT_PSI_WARN.
PSI_BINS = 10
PSI_EPSILON = 1e-4
PREVIOUS, APPROVAL = "previous", "approval"  # the baselines a distribution is compared with


def offers_sql(offers: str, ranked: str, customers: str, week_start, evaluation_date, dimensions) -> str:
    """One row per offer made in the week: outcome as known at the evaluation date, the
    recommendation it followed (or not_recommended) and the customer's groups
    (monitoring/sql/offers_made.sql)."""
    return render(
        "monitoring",
        "offers_made",
        offers=offers,
        ranked=ranked,
        customers=customers,
        week_start=week_start,
        evaluation_date=evaluation_date,
        dimensions=list(dimensions),
        not_recommended=NOT_RECOMMENDED,
    ).text


def no_ranking_sql() -> str:
    """The published top 3's columns with no row: no week was ever published."""
    return render("monitoring", "no_ranking").text


def outcome_counts_sql(offers: str, by: list[str]) -> str:
    """by, grp, offered, accepted, rejected: offers, acceptances and rejections per value of
    each column in `by` of `offers_sql`, all in one pass over the offers (GROUPING SETS;
    monitoring/sql/outcome_counts.sql)."""
    return render("monitoring", "outcome_counts", offers=offers, by=list(by)).text


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


GAP_COLUMNS = [
    "dimension",
    "highest",
    "lowest",
    "highest_rate",
    "lowest_rate",
    "highest_offered",
    "lowest_offered",
    "gap_pp",
    "gap_ci_low_pp",
    "gap_ci_high_pp",
]


def acceptance_gaps(rates: pd.DataFrame, dimensions, min_offers: int) -> pd.DataFrame:
    """Per fairness dimension: the groups with the highest and lowest acceptance among those
    offered at least min_offers times, their rates and offers, and the gap in percentage
    points with Newcombe's 95% interval of the difference (did one group accept less of what
    it was offered, beyond noise?)."""
    rows = []
    for d in dimensions:
        judged = rates[(rates["by"] == d) & (rates["offered"] >= min_offers)].sort_values(["acceptance_rate", "group"])
        if len(judged) < 2:
            rows.append({"dimension": d, "highest": None, "lowest": None, "gap_pp": np.nan})
            continue
        lo, hi = judged.iloc[0], judged.iloc[-1]
        low, high = difference_interval(hi["accepted"], hi["offered"], lo["accepted"], lo["offered"])
        rows.append(
            {
                "dimension": d,
                "highest": hi["group"],
                "lowest": lo["group"],
                "highest_rate": round(float(hi["acceptance_rate"]), 6),
                "lowest_rate": round(float(lo["acceptance_rate"]), 6),
                "highest_offered": int(hi["offered"]),
                "lowest_offered": int(lo["offered"]),
                "gap_pp": round((hi["acceptance_rate"] - lo["acceptance_rate"]) * 100, 4),
                "gap_ci_low_pp": round(float(low) * 100, 4),
                "gap_ci_high_pp": round(float(high) * 100, 4),
            }
        )
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def gap_warnings(gaps: pd.DataFrame, threshold_pp: float) -> dict[str, dict]:
    """{metric acceptance_gap_<dimension>: its facts} of the dimensions whose gap is above
    threshold_pp AND clear of noise (Newcombe's 95% interval of the difference excludes 0):
    offer_outcomes' acceptance_gap_within_threshold fails on them (NBP_OUTCOME_GAP_WARN_PP)."""
    flagged = gaps[(gaps["gap_pp"] > threshold_pp) & (gaps["gap_ci_low_pp"] > 0)]
    return {
        f"acceptance_gap_{row['dimension']}": {
            "dimension": row["dimension"],
            "groups": f"{row['highest']} (highest) vs {row['lowest']} (lowest)",
            "rates": f"{row['highest_rate']:.4f} of {int(row['highest_offered'])} offers vs "
            f"{row['lowest_rate']:.4f} of {int(row['lowest_offered'])}",
            "value": float(row["gap_pp"]),
            "interval_pp": f"[{row['gap_ci_low_pp']:g}, {row['gap_ci_high_pp']:g}]",
            "threshold": float(threshold_pp),
        }
        for row in flagged.to_dict("records")
    }


def score_quantiles_sql(scores: str) -> str:
    """One row: score_p10, score_p50, score_p90, exactly the engines' percentile_cont (linear
    interpolation between the ranks around q x (n - 1)), read off the score's histogram
    (monitoring/sql/score_quantiles.sql): bounded memory at any bank size."""
    return render("monitoring", "score_quantiles", scores=scores, quantiles=SCORE_QUANTILES).text


def active_parties_sql(customers: str) -> str:
    """The party_id of the week's active customers (`customers`: the week's slice)."""
    return render("monitoring", "active_parties", customers=customers, active=ACTIVE).text


def drift_metrics_sql(signals: str, scores: str, active: str, eligible: str) -> str:
    """One row: each signal's mean, the score's quantiles, and the share of active customers
    without an eligible product (of one week; monitoring/sql/drift_metrics.sql)."""
    return render(
        "monitoring",
        "drift_metrics",
        signals=signals,
        scores=scores,
        active=active,
        eligible=eligible,
        names=ALL_SIGNALS,
        quantiles=SCORE_QUANTILES,
    ).text


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


def psi_sql(now_signals: str, now_scores: str, baselines: dict[str, tuple[str, str]]) -> str:
    """baseline, metric, n_now, n_baseline, psi: each signal's and the score's population
    stability index, this week against each baseline {name: (signals, scores)}, aggregated
    to PSI_BINS bins in the warehouse (monitoring/sql/psi.sql)."""
    return render(
        "monitoring",
        "psi",
        now_signals=now_signals,
        now_scores=now_scores,
        baselines=dict(baselines),
        names=list(ALL_SIGNALS),
        bins=PSI_BINS,
        epsilon=PSI_EPSILON,
    ).text


def approval_week_sql(scores: str, now_scores: str, week_start) -> str:
    """One row: this week's model_version and the first week it scored (monitoring/sql/approval_week.sql)."""
    return render("monitoring", "approval_week", scores=scores, now_scores=now_scores, week_start=week_start).text


def psi_table(psi: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """model_drift rows of the distributions: metric psi_<signal or score>_vs_<baseline>,
    kind signal_psi or score_psi, value the PSI (previous and change empty: the PSI is
    itself the measure of the change), threshold, drifted. Every signal and the score has a
    row per baseline in `psi`'s baselines; NaN where a side had no value (not judged)."""
    rows = []
    for baseline in sorted(set(psi["baseline"])):
        got = psi[psi["baseline"] == baseline].set_index("metric")["psi"]
        for metric in (*ALL_SIGNALS, "score"):
            value = got.get(metric)
            value = np.nan if value is None or pd.isna(value) else float(value)
            rows.append(
                {
                    "metric": f"psi_{metric}_vs_{baseline}",
                    "kind": "score_psi" if metric == "score" else "signal_psi",
                    "value": value,
                    "previous": np.nan,
                    "change": np.nan,
                    "threshold": float(threshold),
                    "drifted": bool(value > threshold) if value == value else False,
                }
            )
    return pd.DataFrame(rows, columns=["metric", "kind", "value", "previous", "change", "threshold", "drifted"])


def previous_week(week_start):
    return week_start - timedelta(days=7)
