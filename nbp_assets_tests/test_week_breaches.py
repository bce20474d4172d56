"""Issue 20 (points 2 and 3), issue 21 (point 4): a week's breaches come from one place.
Issue 22 (point 7): a gap hidden in one intersection of two dimensions is judged, alerted
and counted through the same place when NBP_FAIRNESS_INTERSECTIONS names the pair.

The biased bank of test_fairness_report over three weeks, run newest first (a backfill
after the fact) and oldest first: for every week the run summary's count equals the
check's and the stored report's, whatever order the weeks ran in; every alert's first
week, last week and last gap are those of the weeks it counts; and the later weeks'
HTML reports follow a backfilled week in every section, not only the trend.
"""

from __future__ import annotations

import mailbox
import re

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.alerts import outbox, workflow
from nbp_assets.alerts.delivery import deliver_due
from nbp_assets.core.partitions import Week
from nbp_assets.definitions import build_definitions
from nbp_assets.fairness import alert as fairness_alert
from nbp_assets.fairness.breaches import week_breaches
from nbp_assets.fairness.report import html_path
from nbp_assets.ops.run_summary import render, summarize_run
from nbp_assets.weekly import checks
from nbp_assets_tests.test_fairness_report import (  # noqa: F401  fixtures: clean_compliance, env, defs
    clean_compliance,
    defs,
    env,
    ranking_bias_pairs,
    report_rows,
    run_report,
    trend_row,
    write_week,
)

pytestmark = pytest.mark.integration

WEEKS = [Week.from_key(k) for k in ("2026-11-09", "2026-11-16", "2026-11-23")]
NEWEST = WEEKS[-1]


def fewer_young_savers(customers: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The ranking bias with 4 in 10 young customers holding idle cash instead of 3: SAV's
    age gap is 60 pp instead of 70, so the newest week's gap is told apart from the others."""
    pairs, _ = ranking_bias_pairs(customers)
    idle = (customers["age_band"] == "55-64") | ((customers["age_band"] == "25-34") & (customers["r"] < 4))
    return pairs, pd.Series(idle.to_numpy(), index=customers["party_id"])


def scenario(week: Week):
    return fewer_young_savers if week == NEWEST else ranking_bias_pairs


def run_and_summarize(defs: dg.Definitions, week: Week):
    """Run the week's fairness_report; (its check's breach count, the run summary)."""
    result = run_report(defs, week)
    assert result.success
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == checks.FAIRNESS_GAP]
    summary = summarize_run(
        result.job_def, result, week.key, defs.resources["postgres"].url, defs.resources["warehouse"]
    )
    return evaluation.metadata["breaches"].value, summary


def stored_breaches(defs: dg.Definitions, week: Week) -> set[tuple[str, str]]:
    rows = defs.resources["warehouse"].query(
        f"SELECT DISTINCT product_id, dimension FROM nbp_work.fairness_report "
        f"WHERE week_start = DATE '{week.key}' AND breach"
    )
    return set(zip(rows["product_id"], rows["dimension"]))


def assert_counts_agree(defs: dg.Definitions, week: Week, checked: int, summary) -> None:
    stored = stored_breaches(defs, week)
    assert len(stored) == 2  # SAV and FX by age band, every week
    assert checked == len(summary.breaches) == len(stored) == len(week_breaches(defs.resources["warehouse"], week))
    assert {(b.product_id, b.dimension) for b in summary.breaches} == stored


def maildir(defs: dg.Definitions) -> str:
    return defs.resources["fairness_alerts"].maildir


def alert_spans(url: str) -> dict[str, tuple]:
    return {
        a["product_id"]: (
            a["weeks_breached"],
            a["week_start"].isoformat(),
            a["last_week"].isoformat(),
            a["last_gap_pp"],
        )
        for a in outbox.alerts(url)
    }


def top_table_row(html_file: str, product: str) -> dict[str, str]:
    """One alert's row in the report's top table (the week's breaches and their alerts)."""
    text = open(html_file, encoding="utf-8").read()
    top = re.search(r"<h2>Breaches: .*?</table>", text, re.S).group(0)
    header = re.findall(r"<th>(.*?)</th>", top)
    for tr in re.findall(r"<tr>(.*?)</tr>", top, re.S):
        cells = re.findall(r"<td>(.*?)</td>", tr)
        if cells[1:2] == [product]:
            return dict(zip(header, cells))
    raise AssertionError(f"no {product} row in the top table of {html_file}")


def test_newest_first_every_week_counts_its_breaches_and_alerts_span_their_weeks(defs):
    url = defs.resources["postgres"].url
    for week in reversed(WEEKS):
        write_week(defs, week, scenario(week))
        checked, summary = run_and_summarize(defs, week)
        assert_counts_agree(defs, week, checked, summary)

    # One alert each, spanning the three weeks; the last gap is the newest week's.
    assert alert_spans(url) == {
        "FX": (3, "2026-11-09", "2026-11-23", pytest.approx(60.0)),
        "SAV": (3, "2026-11-09", "2026-11-23", pytest.approx(60.0)),
    }
    # The newest week's report, written first, follows the two weeks backfilled after it.
    newest_html = str(html_path(NEWEST.key))
    assert trend_row(newest_html, "SAV", "age_band")[-1] == "3 of 3"
    row = top_table_row(newest_html, "SAV")
    assert (row["weeks breached (alert)"], row["recent weeks breached"]) == ("3", "3 of 3")
    assert "first / latest week" in open(newest_html, encoding="utf-8").read()
    assert "2026-11-09 / 2026-11-23" in open(newest_html, encoding="utf-8").read()

    # The alert compliance receives (opened by the newest week) spans the three weeks too.
    attempts = deliver_due(url, defs.resources["fairness_alerts"].channels())
    assert attempts and all(a.delivered for a in attempts)
    bodies = [m.get_payload(decode=True).decode() for m in mailbox.Maildir(maildir(defs), create=False)]
    assert all("3 so far under this alert (first 2026-11-09, latest 2026-11-23)" in b for b in bodies)


def test_oldest_first_then_a_resolved_alert_is_named_when_its_week_runs_again(defs):
    url = defs.resources["postgres"].url
    for week in WEEKS:
        write_week(defs, week, scenario(week))
        checked, summary = run_and_summarize(defs, week)
        assert_counts_agree(defs, week, checked, summary)
    assert alert_spans(url) == {
        "FX": (3, "2026-11-09", "2026-11-23", pytest.approx(60.0)),
        "SAV": (3, "2026-11-09", "2026-11-23", pytest.approx(60.0)),
    }

    ids = {a["product_id"]: a["alert_id"] for a in outbox.alerts(url)}
    workflow.take(url, workflow.Action(ids["FX"], "acknowledged", "compliance.anna", "looking into it"))
    workflow.take(url, workflow.Action(ids["SAV"], "resolved", "compliance.anna", "accepted: savings campaign"))
    checked, summary = run_and_summarize(defs, NEWEST)  # the re-run of the last week
    assert_counts_agree(defs, NEWEST, checked, summary)
    breaches_line = next(line for line in render(summary, 10) if line.startswith("  breaches"))
    assert breaches_line.startswith(
        f"  breaches    : 2 fairness breach(es) over 10 pp (1 on an acknowledged alert #{ids['FX']}, "
        f"1 on a resolved alert #{ids['SAV']});"
    )
    # A re-run of a week the resolved alert counted does not open a new alert.
    assert sorted(a["alert_id"] for a in outbox.alerts(url)) == sorted(ids.values())


# ---------------------------------------------------------------- issue 22 point 7: intersections

INTERSECTION_WEEK = WEEKS[0]
HIDDEN = "jurisdiction*age_band"


def hidden_in_one_intersection(customers: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Everyone has idle cash (SAV first in the top 3) except 6 of the 40 customers aged
    25-34 in IE (MASS r < 2, AFFLUENT r = 0). SAV: IE*25-34 85% against 100% in every other
    cell, a 15 pp gap, while IE (78 of 84) and 25-34 (74 of 80) alone stay 7.1 and 7.5 pp
    behind, and segment 2.4 pp. The six split between FX and MORT (the women are eligible for
    MORT instead of FX), so neither gets more than 3 in 40 (7.5 pp): SAV is the only breach."""
    cell = (customers["jurisdiction"] == "IE") & (customers["age_band"] == "25-34")
    few = ((customers["segment"] == "MASS") & (customers["r"] < 2)) | (
        (customers["segment"] == "AFFLUENT") & (customers["r"] < 1)
    )
    without = cell & few
    women = without & (customers["gender"] == "F")
    base = customers[["party_id"]].merge(pd.DataFrame({"product_id": ["SAV", "CARD", "LOAN"]}), how="cross")
    fx = customers.loc[~women, ["party_id"]].assign(product_id="FX")
    mort = customers.loc[women, ["party_id"]].assign(product_id="MORT")
    pairs = pd.concat([base, fx, mort], ignore_index=True)
    return pairs, pd.Series((~without).to_numpy(), index=customers["party_id"])


def test_a_gap_hidden_in_one_intersection_is_judged_only_when_configured(env):
    # Without the setting: each dimension alone is within 10 pp, no breach, no alert.
    defs = build_definitions()
    write_week(defs, INTERSECTION_WEEK, hidden_in_one_intersection)
    checked, summary = run_and_summarize(defs, INTERSECTION_WEEK)
    assert checked == 0 and not summary.breaches and stored_breaches(defs, INTERSECTION_WEEK) == set()
    rows = report_rows(defs, INTERSECTION_WEEK)
    sav_gaps = rows[rows["product_id"] == "SAV"].drop_duplicates("dimension").set_index("dimension")["gap_pp"]
    assert sav_gaps.round(2).to_dict() == {"age_band": 7.5, "jurisdiction": 7.14, "segment": 2.38}
    assert outbox.alerts(defs.resources["postgres"].url) == []

    # With jurisdiction*age_band judged: exactly that breach, from the one source, in the
    # check, the run summary and the alert; the other dimensions' rows are unchanged.
    env.setenv("NBP_FAIRNESS_INTERSECTIONS", "jurisdiction*age_band")
    defs = build_definitions()
    checked, summary = run_and_summarize(defs, INTERSECTION_WEEK)
    assert stored_breaches(defs, INTERSECTION_WEEK) == {("SAV", HIDDEN)}
    assert checked == len(summary.breaches) == 1
    assert [(b.product_id, b.dimension) for b in summary.breaches] == [("SAV", HIDDEN)]
    breaches = week_breaches(defs.resources["warehouse"], INTERSECTION_WEEK)
    assert breaches.to_dict("records") == [{"product_id": "SAV", "dimension": HIDDEN, "gap_pp": 15.0}]

    rows = report_rows(defs, INTERSECTION_WEEK)
    cells = rows[(rows["product_id"] == "SAV") & (rows["dimension"] == HIDDEN)].set_index("group")
    # Every cell of the pair, the 65+ ones (4 customers) listed but not judged.
    assert cells[["customers", "recommended", "judged"]].to_dict("index") == {
        "GB*25-34": {"customers": 40, "recommended": 40, "judged": True},
        "GB*55-64": {"customers": 40, "recommended": 40, "judged": True},
        "GB*65+": {"customers": 4, "recommended": 4, "judged": False},
        "IE*25-34": {"customers": 40, "recommended": 34, "judged": True},
        "IE*55-64": {"customers": 40, "recommended": 40, "judged": True},
        "IE*65+": {"customers": 4, "recommended": 4, "judged": False},
    }
    low, high = cells.loc["IE*25-34", ["ci_low", "ci_high"]]
    assert 0.70 < low < 0.85 < high < 0.95  # Wilson 95% interval of 34 in 40
    other = rows[(rows["dimension"] != HIDDEN) & rows["breach"]]
    assert other.empty
    assert set(rows["dimension"]) == {"jurisdiction", "age_band", "segment", HIDDEN}
    assert not rows.loc[rows["dimension"] == HIDDEN].query("product_id != 'SAV'")["breach"].any()

    [alert] = outbox.alerts(defs.resources["postgres"].url)
    payload = alert["payload"]
    assert (alert["product_id"], alert["dimension"], alert["status"]) == ("SAV", HIDDEN, "open")
    assert (payload["highest_group"], payload["lowest_group"], payload["lowest_customers"]) == (
        "GB*25-34",
        "IE*25-34",
        40,
    )
    assert (payload["gap_pp"], payload["attributable_to"]) == (15.0, "ranking")
    lines = dict(fairness_alert.facts(payload))
    assert lines["Dimension"] == HIDDEN
    assert lines["Lowest rate"] == "jurisdiction=IE & age_band=25-34: 85.0% of 40 customers"
    assert "SAV by jurisdiction*age_band, gap 15.0 pp" in fairness_alert.subject(payload)
    html = open(html_path(INTERSECTION_WEEK.key), encoding="utf-8").read()
    assert f"<td>{HIDDEN}</td>" in html and "IE*25-34" in html  # the report's tables

    # A re-run adds no alert: one per product, intersection and model_version.
    checked, summary = run_and_summarize(defs, INTERSECTION_WEEK)
    assert checked == 1 and len(outbox.alerts(defs.resources["postgres"].url)) == 1
