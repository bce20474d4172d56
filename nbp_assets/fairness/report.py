"""The weekly fairness review report, as compliance reads it.

The same tables and charts twice: markdown (+ an SVG chart as an inline image) for the
materialization's metadata in the Dagster UI, and one self-contained HTML file per week
(inline CSS and SVG, no script, nothing fetched) that can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nbp_assets.core import settings

PALETTE = ["#3465a4", "#f57900", "#4e9a06", "#75507b", "#c17d11", "#06989a", "#cc0000", "#555753"]


def html_path(week_key: str) -> Path:
    """Where the week's HTML report is kept: $NBP_HOME/reports/fairness/<week>.html."""
    return settings.nbp_home() / "reports" / "fairness" / f"{week_key}.html"


def _pct(value) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value) * 100:.1f}%"


def pp(value) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.1f}"


def _names(products: pd.Series, names: dict | None) -> list[str]:
    return [str((names or {}).get(p) or "") for p in products]


def gaps_table(gaps: pd.DataFrame, names: dict | None = None) -> pd.DataFrame:
    """Per product and dimension: who is best and worst served, the gap with its 95%
    interval, whether the breach is clear of that uncertainty, and where the gap comes from."""
    has_eligibility = "ranking_pp" in gaps.columns
    table = pd.DataFrame(
        {
            "product": gaps["product_id"],
            "name": _names(gaps["product_id"], names),
            "dimension": gaps["dimension"],
            "highest (n)": [
                f"{g} {_pct(r)} ({n})" if pd.notna(r) else ""
                for g, r, n in zip(gaps["highest_group"], gaps["highest_rate"], gaps["highest_customers"])
            ],
            "lowest (n)": [
                f"{g} {_pct(r)} ({n})" if pd.notna(r) else ""
                for g, r, n in zip(gaps["lowest_group"], gaps["lowest_rate"], gaps["lowest_customers"])
            ],
            "gap pp": gaps["gap_pp"].map(pp),
        }
    )
    if "gap_ci_low_pp" in gaps.columns:
        table["gap 95% CI pp"] = [
            f"{pp(lo)} to {pp(hi)}" if pd.notna(lo) else ""
            for lo, hi in zip(gaps["gap_ci_low_pp"], gaps["gap_ci_high_pp"])
        ]
        table["clear of uncertainty"] = [
            ("yes" if clear else "no: interval reaches the threshold") if breach else ""
            for breach, clear in zip(gaps["breach"], gaps["clear_breach"])
        ]
    if has_eligibility:
        table["eligible-rate gap pp"] = gaps["eligible_gap_pp"].map(pp)
        table["from ranking pp"] = gaps["ranking_pp"].map(pp)
        if "suitability_pp" in gaps.columns:
            table["from suitability pp"] = gaps["suitability_pp"].map(pp)
        table["from eligibility pp"] = gaps["eligibility_pp"].map(pp)
    table["judged groups"] = [f"{j} of {n}" for j, n in zip(gaps["judged_groups"], gaps["groups"])]
    table["breach"] = gaps["breach"].map({True: "BREACH", False: ""})
    return table


def rates_table(rows: pd.DataFrame, names: dict | None = None) -> pd.DataFrame:
    """Per product, dimension and group: size, rate with its 95% interval, rate among eligible."""
    table = pd.DataFrame(
        {
            "product": rows["product_id"],
            "name": _names(rows["product_id"], names),
            "dimension": rows["dimension"],
            "group": rows["group"],
            "customers": rows["customers"],
            "recommended": rows["recommended"],
            "rate [95% CI]": [
                f"{_pct(r)} [{_pct(lo)}-{_pct(hi)}]" for r, lo, hi in zip(rows["rate"], rows["ci_low"], rows["ci_high"])
            ],
        }
    )
    if "eligible" in rows.columns:
        table["eligible"] = rows["eligible"]
        table["rate among eligible"] = rows["eligible_rate"].map(_pct)
    if "suitable" in rows.columns:
        table["suitable"] = rows["suitable"]
        table["rate among suitable"] = rows["suitable_rate"].map(_pct)
    table["judged"] = rows["judged"].map({True: "yes", False: "no (too small)"})
    return table


def history_table(history: pd.DataFrame, weeks: Sequence[str], names: dict | None = None) -> pd.DataFrame:
    table = history.rename(columns={"product_id": "product"}).copy()
    table["name"] = _names(history["product_id"], names) if len(history) else []
    for week in weeks:
        table[week] = table[week].map(pp) if week in table else ""
    table["breached"] = [f"{b} of {n}" for b, n in zip(history["weeks_breached"], history["weeks_reported"])]
    return table[["product", "name", "dimension", *weeks, "breached"]]


TREND_SECTION = "gap-trend"


def trend_section(
    history: pd.DataFrame, weeks: Sequence[str], threshold_pp: float, names: dict | None = None, note: str = ""
) -> str:
    """The gap of each product over the last weeks; refreshed in place when an older week
    is backfilled, so a later week's report shows the trend as it now stands."""
    chart = history_chart_svg(history, weeks, threshold_pp, "Gap per week (pp)") if len(history) else ""
    body = (
        (f'<p class="note">{html.escape(note)}</p>' if note else "")
        + chart
        + _html_table(history_table(history, weeks, names), history["weeks_breached"] > 0 if len(history) else None)
    )
    return section(TREND_SECTION, f"Gap over the last {len(weeks)} weeks", body)


def alerts_table(alerts: list[dict], states: dict) -> pd.DataFrame:
    """The week's breaches with their alerts, the report's top table. `states`: (product_id,
    dimension) -> (alert id, state, weeks it counts) (fairness.alert.AlertStates)."""
    rows = []
    for a in alerts:
        alert_id, state, weeks = states.get((a["product_id"], a["dimension"]), (None, "no alert", ""))
        rows.append(
            {
                "alert": f"#{alert_id} ({state})",
                "product": a["product_id"],
                "name": a.get("product_name") or "",
                "dimension": a["dimension"],
                "highest": f"{a['highest_group']} {a['highest_rate'] * 100:.1f}% of {a['highest_customers']}",
                "lowest": f"{a['lowest_group']} {a['lowest_rate'] * 100:.1f}% of {a['lowest_customers']}",
                "gap pp": pp(a["gap_pp"]),
                "gap 95% CI pp": f"{pp(a['gap_ci_low_pp'])} to {pp(a['gap_ci_high_pp'])}",
                "clear of uncertainty": "yes" if a["clear_breach"] else "no",
                "from ranking pp": pp(a["ranking_pp"]),
                "from suitability pp": pp(a.get("suitability_pp")),
                "from eligibility pp": pp(a["eligibility_pp"]),
                "attributable to": a["attributable_to"],
                "weeks breached (alert)": weeks,
                "recent weeks breached": f"{a['weeks_breached']} of {a['weeks_reported']}",
            }
        )
    return pd.DataFrame(rows)


def unknown_health_text(unknown: pd.DataFrame | None, total: int | None) -> str:
    """The customers withheld for unknown MOD-040 health: the total and, per dimension,
    the groups with any (`12 (jurisdiction: IE 12; segment: MASS 7, AFFLUENT 5)`)."""
    if unknown is None or total is None:
        return "not counted (no nbp_work.withheld)"
    per = [
        f"{d}: " + ", ".join(f"{g} {int(n)}" for g, n in zip(rows["group"], rows["customers"]) if n)
        for d, rows in unknown.groupby("dimension", sort=False)
        if rows["customers"].any()
    ]
    return f"{total}" + (f" ({'; '.join(per)})" if per else "")


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, disable_numparse=True) if len(table) else "none"


# ---------------------------------------------------------------------------- charts


def gap_chart_svg(gaps: pd.DataFrame, threshold_pp: float, title: str) -> str:
    """Horizontal bars: each product's gap per dimension, the threshold as a red line."""
    dims = list(dict.fromkeys(gaps["dimension"]))
    products = list(dict.fromkeys(gaps["product_id"]))
    bar, gap_between, left, width = 9, 8, 150, 420
    top = 54  # below the legend and the threshold's label
    height = top + len(products) * (len(dims) * bar + gap_between) + 30
    x = lambda gap: left + width * min(max(gap, 0.0), 100.0) / 100.0  # noqa: E731
    parts = [f'<text x="10" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for i, dim in enumerate(dims):
        parts.append(
            f'<rect x="{left + i * 110}" y="26" width="10" height="8" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{left + i * 110 + 14}" y="34" font-size="10">{html.escape(dim)}</text>'
        )
    lookup = gaps.set_index(["product_id", "dimension"])
    y = top
    for product in products:
        parts.append(
            f'<text x="{left - 6}" y="{y + len(dims) * bar / 2 + 4}" font-size="11" text-anchor="end">'
            f"{html.escape(str(product))}</text>"
        )
        for i, dim in enumerate(dims):
            if (product, dim) in lookup.index:
                row = lookup.loc[(product, dim)]
                gap = row["gap_pp"]
                if pd.notna(gap):
                    stroke = ' stroke="#cc0000" stroke-width="1.5"' if row["breach"] else ""
                    parts.append(
                        f'<rect x="{left}" y="{y + i * bar}" width="{x(gap) - left:.1f}" height="{bar - 1}" '
                        f'fill="{PALETTE[i % len(PALETTE)]}"{stroke}><title>{html.escape(str(product))} '
                        f"{html.escape(dim)}: {gap:.1f} pp</title></rect>"
                    )
        y += len(dims) * bar + gap_between
    for tick in (0, 25, 50, 75, 100):
        parts.append(f'<text x="{x(tick):.1f}" y="{y + 14}" font-size="10" text-anchor="middle">{tick}</text>')
    parts.append(
        f'<line x1="{x(threshold_pp):.1f}" y1="{top - 4}" x2="{x(threshold_pp):.1f}" y2="{y}" '
        f'stroke="#cc0000" stroke-dasharray="4 3"/>'
        f'<text x="{x(threshold_pp) + 3:.1f}" y="{top - 6}" font-size="10" fill="#cc0000">'
        f"{threshold_pp:g} pp</text>"
        f'<text x="{left + width / 2}" y="{y + 26}" font-size="10" text-anchor="middle">gap, percentage points</text>'
    )
    return _svg(max(left + width + 30, left + 110 * len(dims)), height, parts)


def history_chart_svg(
    history: pd.DataFrame, weeks: Sequence[str], threshold_pp: float, title: str, series: int = 8
) -> str:
    """Lines: the gap of the products/dimensions that breached in the window, week by week."""
    hot = history[history["weeks_breached"] > 0].copy()
    if hot.empty:
        hot = history.copy()
    hot["_max"] = hot[list(weeks)].max(axis=1)
    hot = hot.sort_values("_max", ascending=False).head(series)
    left, width, top, plot_h = 50, 460, 30, 200
    peak = pd.to_numeric(hot["_max"], errors="coerce").max() if len(hot) else 0.0
    top_pp = max(20.0, math.ceil((0.0 if pd.isna(peak) else float(peak)) / 10) * 10)
    px = lambda i: left + (width * i / max(1, len(weeks) - 1))  # noqa: E731
    py = lambda gap: top + plot_h - plot_h * gap / top_pp  # noqa: E731
    parts = [
        f'<text x="10" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{py(threshold_pp):.1f}" x2="{left + width}" y2="{py(threshold_pp):.1f}" '
        f'stroke="#cc0000" stroke-dasharray="4 3"/>',
    ]
    for tick in range(0, int(top_pp) + 1, max(10, int(top_pp) // 5 // 10 * 10)):
        parts.append(f'<text x="{left - 6}" y="{py(tick) + 3:.1f}" font-size="10" text-anchor="end">{tick}</text>')
    for i, week in enumerate(weeks):
        parts.append(
            f'<text x="{px(i):.1f}" y="{top + plot_h + 14}" font-size="9" text-anchor="middle">{week[5:]}</text>'
        )
    for n, (_, row) in enumerate(hot.iterrows()):
        colour = PALETTE[n % len(PALETTE)]
        points = [(px(i), py(float(row[w]))) for i, w in enumerate(weeks) if pd.notna(row.get(w))]
        label = f"{row['product_id']} / {row['dimension']}"
        if len(points) > 1:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                + " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
                + f'"><title>{html.escape(label)}</title></polyline>'
            )
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}"/>' for a, b in points]
        parts.append(
            f'<text x="{left + width + 8}" y="{top + 12 * n + 8}" font-size="10" fill="{colour}">'
            f"{html.escape(label)}</text>"
        )
    return _svg(left + width + 190, top + plot_h + 30, parts)


def _svg(width: float, height: float, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif">'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(parts)}</svg>'
    )


def md_image(svg: str, alt: str) -> str:
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"


# ---------------------------------------------------------------------------- HTML file

_CSS = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#eee}tr.breach td{background:#fde2e2}
.meta td:first-child{font-weight:bold}h2{margin-top:1.6em}.note{color:#555;font-size:13px;max-width:60em}"""


def _html_table(table: pd.DataFrame, highlight: pd.Series | None = None) -> str:
    if table.empty:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for i, (_, row) in enumerate(table.iterrows()):
        cls = ' class="breach"' if highlight is not None and bool(highlight.iloc[i]) else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render_html(
    meta: dict,
    gaps: pd.DataFrame,
    rows: pd.DataFrame,
    history: pd.DataFrame,
    weeks: Sequence[str],
    alerts: pd.DataFrame,
    threshold_pp: float,
    workflow: str = "",
    names: dict | None = None,
) -> str:
    week = meta["week"]
    info = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>MOD-107 fairness report, week {html.escape(week)}</title>
<style>{_CSS}</style></head><body>
<h1>Next best product: fairness report, week {html.escape(week)}</h1>
<table class="meta">{info}</table>
<p class="note">Rate: share of the group's active customers with the product in their top 3, with a Wilson 95%
confidence interval. A product breaches (CON-001) when the rates of the highest and lowest judged group of a
dimension differ by more than {threshold_pp:g} percentage points; groups below the minimum size are listed
but not judged. The gap's own 95% interval (Newcombe) says whether a breach is clear of sampling noise:
"clear of uncertainty: yes" when even the interval's lower end is above the threshold. The rate among eligible customers (CON-006) splits each gap into the part that comes from who
is eligible and the part that comes from the ranking; the rate among the suitable (the eligible pairs the MOD-040
suitability rule kept) splits off the part that comes from suitability.</p>
{breaches_section(alerts)}
{workflow}
<h2>Gaps per product and dimension</h2>
{gap_chart_svg(gaps, threshold_pp, f"Gap between highest and lowest group, week {week}")}
{_html_table(gaps_table(gaps, names), gaps["breach"])}
{trend_section(history, weeks, threshold_pp, names)}
<h2>Rates per product and group</h2>
{_html_table(rates_table(rows, names), rows["breach"] & rows["judged"])}
</body></html>
"""


BREACHES_SECTION = "breach-alerts"


def breaches_section(alerts: pd.DataFrame) -> str:
    """The week's breaches, one row each with its alert and how many weeks it has breached;
    refreshed in place when another week's run changes those alerts."""
    return section(BREACHES_SECTION, f"Breaches: nbp.fairness_breach alerts ({len(alerts)})", _html_table(alerts))


def section(section_id: str, title: str, body: str) -> str:
    """A part of the report that is refreshed in place later (replace_section)."""
    return f'<section id="{section_id}">\n<h2>{html.escape(title)}</h2>\n{body}\n</section>'


def replace_section(path: Path, section_id: str, new: str) -> bool:
    """Swap one section of an existing report for its new version; False if the file or
    the section is not there (a report written before the section existed)."""
    if not path.exists():
        return False
    pattern = re.compile(rf'<section id="{re.escape(section_id)}">.*?</section>', re.S)
    content = path.read_text(encoding="utf-8")
    if not pattern.search(content):
        return False
    write_html(path, pattern.sub(lambda _: new, content, count=1))
    return True


WORKFLOW_SECTION = "alert-workflow"


def workflow_section(alerts: Sequence[dict], steps: Sequence[dict], describe) -> str:
    """The week's alerts as compliance is handling them (status, assignee, acknowledgement,
    weeks breached, resolution) and each alert's audit trail: who did what, when and why."""
    if not alerts:
        return section(WORKFLOW_SECTION, "Alert workflow", "<p>no alert counts this week</p>")
    table = pd.DataFrame(
        [
            {
                "alert": f"#{a['alert_id']}",
                "product": a["product_id"],
                "dimension": a["dimension"],
                "status": a["status"],
                "weeks breached": a["weeks_breached"],
                "first / latest week": f"{a['week_start']} / {a['last_week']}",
                "assignee": a["assignee"] or "",
                "acknowledged": f"{a['acknowledged_by']} {a['acknowledged_at']:%Y-%m-%d %H:%M}"
                if a["acknowledged_at"]
                else "",
                "resolution": a["resolution"] or "",
            }
            for a in alerts
        ]
    )
    trails = "".join(
        f"<h3>Alert #{a['alert_id']}: audit trail</h3><ul>"
        + "".join(f"<li>{html.escape(describe(e))}</li>" for e in steps if e["alert_id"] == a["alert_id"])
        + "</ul>"
        for a in alerts
    )
    note = (
        '<p class="note">Acknowledge, assign, comment and resolve with <code>python -m nbp_assets alerts ...</code>; '
        "each action is recorded with who, when and why, and refreshes this section.</p>"
    )
    return section(WORKFLOW_SECTION, "Alert workflow", note + _html_table(table) + trails)


def write_html(path: Path, content: str) -> Path:
    """Write atomically: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
