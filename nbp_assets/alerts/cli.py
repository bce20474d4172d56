"""`python -m nbp_assets alerts ...`: compliance's alert workflow from the command line.

list                     the open alerts (--status resolved|all for the others)
show ID                  one alert, the weeks it breached and its audit trail
ack ID --reason WHY      acknowledge it
assign ID --to WHO --reason WHY
comment ID TEXT          add a comment
resolve ID --reason WHY  resolve it (a breach that comes back opens a new alert)
deliver                  deliver pending alerts now, as the sensor does every minute

Each action is recorded in the append-only audit trail with who (--by, default
NBP_OPERATOR or the login name), when and why, and refreshes the alert-workflow section
of the HTML reports of the weeks the alert covers.
"""

from __future__ import annotations

import argparse
import sys

from nbp_assets.alerts import workflow
from nbp_assets.core import settings
from nbp_assets.fairness import report

STEP = {"ack": "acknowledged", "assign": "assigned", "comment": "commented", "resolve": "resolved"}


def _postgres_url() -> str:
    """The apps' PostgreSQL, as build_resources()["postgres"].conninfo() gives it (NBP_POSTGRES_URL,
    else the embedded server, started if needed), without importing Dagster and the warehouse
    that resources.py brings: that cost more than the command itself."""
    from nbp_assets.core.postgres_server import resolve_postgres_url

    if settings.deployment() != "local":
        settings.check_production_env()
    return resolve_postgres_url(settings.postgres_url(), settings.postgres_data_dir())


def _channels():
    from nbp_assets.alerts.resource import FairnessAlertsResource

    return FairnessAlertsResource.from_env()


def refresh_reports(url: str, alert_id: int) -> list[str]:
    """Rewrite the workflow section of each HTML report the alert appears in."""
    refreshed = []
    for week in workflow.weeks_of(url, alert_id):
        alerts = workflow.alerts_of_week(url, week)
        steps = workflow.trail(url, [a["alert_id"] for a in alerts])
        path = report.html_path(week.isoformat())
        if report.replace_section(
            path, report.WORKFLOW_SECTION, report.workflow_section(alerts, steps, workflow.describe_step)
        ):
            refreshed.append(str(path))
    return refreshed


def _line(a: dict) -> str:
    ack = f"ack {a['acknowledged_by']}" if a["acknowledged_at"] else "not acknowledged"
    name = (a["payload"] or {}).get("product_name")
    product = f"{a['product_id']} ({name})" if name else a["product_id"]
    return (
        f"#{a['alert_id']:<5} {a['status']:<8} {product} by {a['dimension']}, model {a['model_version']}: "
        f"{a['weeks_breached']} week(s) {a['week_start']}..{a['last_week']}, last gap {float(a['last_gap_pp']):.1f} pp; "
        f"{ack}; assignee {a['assignee'] or '-'}; {'delivered' if a['delivered_at'] else 'NOT delivered'}"
    )


def cmd_list(args: argparse.Namespace) -> None:
    alerts = workflow.listing(_postgres_url(), args.status)
    print(f"{len(alerts)} {'' if args.status == 'all' else args.status + ' '}nbp.fairness_breach alert(s)")
    for a in alerts:
        print(_line(a))


def cmd_show(args: argparse.Namespace) -> None:
    url = _postgres_url()
    try:
        a = workflow.alert(url, args.alert_id)
    except workflow.WorkflowError as exc:
        raise SystemExit(str(exc)) from None
    print(_line(a))
    print(
        f"  highest {a['highest_group']} {a['highest_rate']:.1%} of {a['highest_customers']}, lowest "
        f"{a['lowest_group']} {a['lowest_rate']:.1%} of {a['lowest_customers']} (first week); "
        f"attributable to {a['attributable_to']}"
    )
    print(f"  weeks breached: {', '.join(str(w) for w in workflow.weeks_of(url, a['alert_id']))}")
    if a["resolution"]:
        print(f"  resolution: {a['resolution']}")
    print("  audit trail:")
    for step in workflow.trail(url, [a["alert_id"]]):
        print(f"    {workflow.describe_step(step)}")


def cmd_step(args: argparse.Namespace) -> None:
    url = _postgres_url()
    step = workflow.Action(
        args.alert_id,
        STEP[args.alerts_command],
        args.by or settings.operator_name(),
        args.reason if args.alerts_command != "comment" else " ".join(args.text),
        getattr(args, "to", None),
    )
    try:
        alert = workflow.take(url, step)
    except workflow.WorkflowError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"alert #{alert['alert_id']} {step.action} by {step.actor}: {step.reason}")
    print(_line(alert))
    for path in refresh_reports(url, alert["alert_id"]):
        print(f"  report refreshed: {path}")


def deliver_now(url: str) -> list[str]:
    """Deliver pending alerts once, as the sensor does; what went where, for a person."""
    from nbp_assets.alerts.delivery import deliver_due
    from nbp_assets.alerts.outbox import connect, undelivered
    from nbp_assets.alerts.sensor import summary

    resource = _channels()
    channels = resource.channels()
    attempts = deliver_due(
        url, channels, retry_base_seconds=resource.retry_base_seconds, retry_max_seconds=resource.retry_max_seconds
    )
    with connect(url) as conn:
        pending = undelivered(conn)
    lines = [summary(pending, channels, attempts)]
    for name, channel in channels.items():
        if name == "maildir":
            lines.append(f"  open them with: mutt -f {channel.path}   (or any .eml under {channel.path / 'new'})")
    return lines


def cmd_deliver(args: argparse.Namespace) -> None:
    print("\n".join(deliver_now(_postgres_url())))


def add_parser(sub) -> None:
    """Register `alerts` on the main CLI's subcommands."""
    p = sub.add_parser(
        "alerts",
        help="compliance's alert workflow: list, show, ack, assign, comment, resolve, deliver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = p.add_subparsers(dest="alerts_command", required=True)
    c = commands.add_parser("list", help="list alerts (open by default)")
    c.add_argument(
        "--status", choices=("open", "resolved", "all"), default="open", help="which alerts to list (default: open)"
    )
    c.set_defaults(func=cmd_list)
    c = commands.add_parser("show", help="one alert, its weeks and its audit trail")
    c.add_argument("alert_id", type=int, help="the alert's number, as `alerts list` shows it (required, no default)")
    c.set_defaults(func=cmd_show)
    for name, text in (
        ("ack", "acknowledge an alert"),
        ("assign", "assign an alert to someone"),
        ("comment", "comment on an alert"),
        ("resolve", "resolve an alert"),
    ):
        c = commands.add_parser(name, help=text)
        c.add_argument(
            "alert_id", type=int, help="the alert's number, as `alerts list` shows it (required, no default)"
        )
        c.add_argument("--by", help="who is acting (default: NBP_OPERATOR, else the login name)")
        if name == "comment":
            c.add_argument("text", nargs="+", help="the comment (required, no default)")
        else:
            c.add_argument("--reason", required=True, help="why: recorded in the audit trail (required, no default)")
        if name == "assign":
            c.add_argument("--to", required=True, help="whom the alert is assigned to (required, no default)")
        c.set_defaults(func=cmd_step)
    c = commands.add_parser("deliver", help="deliver pending alerts now, as the sensor does every minute")
    c.set_defaults(func=cmd_deliver)
