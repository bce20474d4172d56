"""The per-week summary that ends `demo`, `materialize` and `backfill`, and the exit codes."""

from __future__ import annotations

from nbp_assets.ops.run_summary import (
    EXIT_OK,
    EXIT_WARNING,
    EXIT_WEEK_FAILED,
    exit_code,
    publish_outcome,
    render,
    week_summary,
)

PLANNED = [
    ("nbp_current", "contract", True),
    ("nbp_ranked", "contract", True),
    ("nbp_ranked", "eligibility_gate", True),
    ("fairness_report", "fairness_gap_within_threshold", False),
]


def alert(alert_id, product, dimension, created_by="run-2", status="open", delivered=None, acknowledged=None):
    return {
        "alert_id": alert_id,
        "product_id": product,
        "dimension": dimension,
        "created_by_run": created_by,
        "status": status,
        "delivered_at": delivered,
        "acknowledged_at": acknowledged,
    }


def breach(product, dimension, gap):
    return {"product_id": product, "dimension": dimension, "gap_pp": gap}


def test_a_week_with_breaches_says_how_many_the_worst_and_its_alerts():
    # The week's breaches as its report stores them, whatever run first found them.
    breaches = [
        breach("PR001", "segment", 12.5),
        breach("PR007", "age_band", 31.25),
        breach("PR003", "jurisdiction", 18.0),
        breach("PR009", "segment", 55.0),
    ]
    alerts = [
        alert(1, "PR001", "segment", created_by="run-1", delivered="2026-11-17"),  # found again by run-2
        alert(2, "PR007", "age_band"),
        alert(3, "PR003", "jurisdiction", acknowledged="2026-11-18"),
        alert(4, "PR009", "segment", created_by="run-1", status="resolved"),  # compliance closed it
        alert(5, "PR010", "segment", status="resolved"),  # counts the week, but the week no longer breaches
    ]
    evaluations = {
        ("nbp_current", "contract"): True,
        ("nbp_ranked", "contract"): True,
        ("nbp_ranked", "eligibility_gate"): True,
        ("fairness_report", "fairness_gap_within_threshold"): False,
    }
    summary = week_summary(
        "2026-11-09",
        True,
        PLANNED,
        evaluations,
        breaches,
        alerts,
        "run-2",
        (True, "replaced week 2026-11-02 with week 2026-11-09"),
    )

    assert render(summary, 10, seconds=12.34) == [
        "week 2026-11-09: succeeded in 12.3s",
        "  checks      : 3 passed, 0 blocking failed, 1 warning failed (fairness_report:fairness_gap_within_threshold)",
        "  breaches    : 4 fairness breach(es) over 10 pp (1 on an acknowledged alert #3, 1 on a resolved alert #4); "
        "worst PR009 by segment, gap 55.0 pp (alert #4)",
        "  alerts      : 2 opened by this run, 1 already open, 1 resolved; 1 delivered, 3 waiting for "
        "nbp_fairness_alert_sensor (compliance.fairness_alerts)",
        "  nbp_current : published: replaced week 2026-11-02 with week 2026-11-09",
    ]
    # A breach no alert counts (an outbox restored from before the week ran) is still counted.
    lost = week_summary("2026-11-09", True, PLANNED, evaluations, breaches[:1], [], "run-2", (True, ""))
    assert render(lost, 10)[2].endswith("worst PR001 by segment, gap 12.5 pp (no alert recorded)")
    assert exit_code([summary]) == EXIT_OK  # a breach is told and alerted, not a failed command ...
    assert exit_code([summary], fail_on_warning=True) == EXIT_WARNING  # ... unless the operator asks


def test_a_failed_week_says_what_failed_what_did_not_run_and_why_nothing_was_published():
    evaluations = {("nbp_ranked", "contract"): True, ("nbp_ranked", "eligibility_gate"): False}
    failures = {"nbp_ranked": "nbp_ranked: 1 blocking check(s) failed; nothing was written.\n[eligibility_gate] ..."}
    publish = publish_outcome(None, None, ran=False)
    summary = week_summary("2026-11-09", False, PLANNED, evaluations, None, [], "run-3", publish, failures)

    lines = render(summary, 10)
    assert lines[0] == "week 2026-11-09: FAILED"
    assert lines[1] == (
        "  checks      : 1 passed, 1 blocking failed (nbp_ranked:eligibility_gate), 0 warning failed, "
        "2 not run (their step did not run)"
    )
    # the cause is printed once, as the step fails (cli's FAILED line): the summary names the step
    assert "  failed step : nbp_ranked (its cause is printed above: FAILED nbp_ranked)" in lines
    assert not any("blocking check(s) failed; nothing was written" in line for line in lines)
    assert "  breaches    : unknown: fairness_report did not run" in lines
    assert lines[-1] == "  nbp_current : NOT published: did not run: an upstream step failed"
    ok = week_summary(
        "2026-11-16", True, PLANNED, {k[:2]: True for k in PLANNED}, [], [], "run-4", (True, "re-published")
    )
    assert exit_code([ok, summary]) == EXIT_WEEK_FAILED
    assert render(ok, 10)[2:4] == ["  breaches    : none (no product's gap over 10 pp)", "  alerts      : none opened"]


def test_an_older_week_that_was_not_published_says_why():
    skipped = {
        "published": False,
        "outcome": "skipped: week 2026-11-02 is older than week 2026-11-09, which the apps already see",
    }
    assert publish_outcome(skipped, None, ran=True) == (False, skipped["outcome"])
    assert publish_outcome(None, "PostgreSQL is down", ran=True) == (False, "step failed: PostgreSQL is down")
