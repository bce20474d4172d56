"""fairness_report end to end: a small bank with a known bias, the real ranking, the real
asset on DuckDB, the alerts in a real PostgreSQL outbox, the report figures and files.

Two weeks of the same 170 customers (a full factorial of jurisdiction x age band x
segment x gender, 10 each, 8 more aged 65+, 2 dormant):
- RANKING_WEEK: every customer may have SAV, CARD, LOAN and FX. The weights lift SAV only
  by idle cash, which every 55-64 customer has and 3 in 10 aged 25-34 have: the weights
  deny SAV to the young (30% vs 100%) and push FX to them instead (70% vs 0%).
- ELIGIBILITY_WEEK: MORT is ELIGIBLE for every GB customer but only 4 in 10 in IE, and
  every eligible customer gets it (at most 3 eligible products each): a 57.1 pp gap that
  comes only from eligibility.
The 65+ group (8 customers) is listed but not judged at the default minimum of 30.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.alerts import outbox
from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_DDL, HISTORY_KEY, HISTORY_TABLE, SOURCE_SCHEMA, sql_date
from nbp_assets.definitions import build_definitions
from nbp_assets.publish import postgres as pg
from nbp_assets.weekly import checks
from nbp_assets.weekly.local import score_candidates, top_products
from nbp_assets.weekly.vocabulary import ALL_SIGNALS, POSITIVE_SIGNALS
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE, weights_from_frame

pytestmark = pytest.mark.integration

RANKING_WEEK = Week.from_key("2026-11-02")
ELIGIBILITY_WEEK = Week.from_key("2026-11-09")
PRODUCTS = {"CARD": "CARD", "FX": "FX_WALLET", "LOAN": "LENDING", "MORT": "MORTGAGE", "SAV": "SAVINGS"}
NAMES = {
    "CARD": "Cashback Card",
    "FX": "Travel Wallet",
    "LOAN": "Personal Loan",
    "MORT": "Home Mortgage",
    "SAV": "Easy Saver",
}
# product class -> (the one lifting signal, its weight): SAV rides on idle cash alone.
BIASED_LIFT = {
    "SAVINGS": ("idle_cash", 1.0),
    "CARD": ("relationship_gap", 0.6),
    "LENDING": ("relationship_gap", 0.5),
    "FX_WALLET": ("relationship_gap", 0.4),
    "MORTGAGE": ("relationship_gap", 0.7),
}


def weights_frame(lift: dict = BIASED_LIFT) -> pd.DataFrame:
    df = pd.read_csv(DEFAULT_WEIGHTS_FILE)
    df.loc[df["signal"].isin(POSITIVE_SIGNALS), "weight"] = 0.0
    for product_class, (signal, weight) in lift.items():
        df.loc[(df["product_class"] == product_class) & (df["signal"] == signal), "weight"] = weight
    return df


def bank_customers() -> pd.DataFrame:
    """170 customers; `r` (0-9) picks fixed shares of every cell, so every other dimension stays balanced."""
    rows = [
        (j, a, s, g, r, "ACTIVE")
        for j, a, s, g, r in itertools.product(
            ["GB", "IE"], ["25-34", "55-64"], ["MASS", "AFFLUENT"], ["F", "M"], range(10)
        )
    ]
    rows += [
        (j, "65+", s, g, 0, "ACTIVE") for j, s, g in itertools.product(["GB", "IE"], ["MASS", "AFFLUENT"], ["F", "M"])
    ]
    rows += [("GB", "25-34", "MASS", "F", 0, "DORMANT"), ("IE", "55-64", "MASS", "M", 0, "DORMANT")]
    df = pd.DataFrame(rows, columns=["jurisdiction", "age_band", "segment", "gender", "r", "status"])
    df.insert(0, "party_id", [f"C{i:04d}" for i in range(len(df))])
    return df


def _signals(pairs: pd.DataFrame, idle: pd.Series) -> pd.DataFrame:
    out = pairs[["party_id", "product_id"]].copy()
    for name in ALL_SIGNALS:
        out[name] = 0.0
    out["relationship_gap"] = 1.0
    out["idle_cash"] = out["party_id"].map(idle).astype(float)
    return out


def ranking_bias_pairs(customers: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    pairs = customers[["party_id"]].merge(pd.DataFrame({"product_id": ["SAV", "CARD", "LOAN", "FX"]}), how="cross")
    idle = (customers["age_band"] == "55-64") | ((customers["age_band"] == "25-34") & (customers["r"] < 3))
    return pairs, pd.Series(idle.to_numpy(), index=customers["party_id"])


def eligibility_only_pairs(customers: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    pairs = customers[["party_id"]].merge(pd.DataFrame({"product_id": ["SAV", "CARD"]}), how="cross")
    mort = customers.loc[(customers["jurisdiction"] == "GB") | (customers["r"] < 4), ["party_id"]].assign(
        product_id="MORT"
    )
    return pd.concat([pairs, mort], ignore_index=True), pd.Series(False, index=customers["party_id"])


def write_week(
    defs: dg.Definitions,
    week: Week,
    scenario=ranking_bias_pairs,
    lift: dict = BIASED_LIFT,
    customers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Write the week's customers, eligibility and the real ranking's top 3 to the warehouse."""
    warehouse = defs.resources["warehouse"]
    customers = bank_customers() if customers is None else customers
    register = pd.DataFrame(
        {
            "product_id": list(PRODUCTS),
            "product_name": [NAMES[p] for p in PRODUCTS],
            "product_class": list(PRODUCTS.values()),
            "lifecycle_stage": "MATURE",
            "is_retention": False,
            "spend_category": None,
            "target_rote": 0.1,
            "valid_from": pd.Timestamp("2024-01-01"),
            "valid_to": pd.NaT,
        }
    )
    warehouse.replace_table(f"{SOURCE_SCHEMA}.product_register", register)
    week_start = pd.Timestamp(week.start)
    people = customers.drop(columns=["r"]).assign(
        income=pd.array([50_000] * len(customers), dtype="Int64"), fico=pd.array([700] * len(customers), dtype="Int64")
    )
    people.insert(0, "week_start", week_start)
    warehouse.replace_slice("nbp_work.customers", people, where=f"week_start = {sql_date(week.start)}")
    pairs, idle = scenario(customers)  # dormant customers' pairs stay in: the report must ignore them
    eligibility = pairs.assign(
        week_start=week_start, snapshot_date=pd.Timestamp(week.evaluation_date) - pd.Timedelta(days=1)
    )
    warehouse.replace_slice(
        "nbp_work.eligibility",
        eligibility[["week_start", "snapshot_date", "party_id", "product_id"]],
        where=f"week_start = {sql_date(week.start)}",
    )
    # the week's product register, as the eligibility step keeps it
    warehouse.replace_slice(
        "nbp_work.products",
        register.drop(columns=["valid_from", "valid_to"]).assign(week_start=week_start),
        where=f"week_start = {sql_date(week.start)}",
    )
    weights = weights_from_frame(weights_frame(lift))
    active = customers[customers["status"] == "ACTIVE"]
    candidates = pairs[pairs["party_id"].isin(active["party_id"])]
    scored = score_candidates(_signals(candidates, idle), register, weights)
    ranked = top_products(scored, active, weights.model_version, week.evaluated_at)
    warehouse.replace_slice(
        HISTORY_TABLE, ranked, where=f"evaluated_at = {sql_date(week.evaluated_at)}", ddl=HISTORY_DDL, key=HISTORY_KEY
    )
    return ranked


@pytest.fixture
def clean_compliance(postgres_url):
    """postgres_url with neither the compliance outbox nor nbp_current: every test starts empty."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {outbox.SCHEMA} CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS product_intelligence CASCADE")
    return postgres_url


@pytest.fixture
def env(tmp_path, monkeypatch, clean_compliance):
    """A local deployment in tmp_path whose weights are the biased ones, and no alert channel."""
    path = tmp_path / "weights.csv"
    weights_frame().to_csv(path, index=False)
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_compliance)
    monkeypatch.setenv("NBP_WEIGHTS_FILE", str(path))
    for name in (
        "NBP_DEPLOYMENT",
        "NBP_WAREHOUSE_PATH",
        "NBP_FAIRNESS_DIMENSIONS",
        "NBP_FAIRNESS_INTERSECTIONS",
        "NBP_FAIRNESS_MIN_GROUP",
        "NBP_FAIRNESS_HISTORY_WEEKS",
        "NBP_FAIRNESS_BLOCKS_PUBLISH",
        "NBP_ALERT_SMTP_HOST",
        "NBP_ALERT_WEBHOOK_URL",
        "NBP_ALERT_SLACK_TOKEN",
        "NBP_ALERT_TEAMS_WEBHOOK_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def defs(env) -> dg.Definitions:
    return build_definitions()


def run_report(
    defs: dg.Definitions,
    week: Week,
    instance: dg.DagsterInstance | None = None,
    assets: tuple[str, ...] = ("fairness_report",),
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [defs.resolve_assets_def(a) for a in assets],
        partition_key=week.key,  # resources bound by defs
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def report_rows(defs: dg.Definitions, week: Week) -> pd.DataFrame:
    return defs.resources["warehouse"].query(
        f'SELECT * FROM nbp_work.fairness_report WHERE week_start = {sql_date(week.start)} ORDER BY product_id, dimension, "group"'
    )


def row(rows: pd.DataFrame, product: str, dimension: str, group: str) -> dict:
    found = rows[(rows["product_id"] == product) & (rows["dimension"] == dimension) & (rows["group"] == group)]
    assert len(found) == 1, (product, dimension, group)
    return found.iloc[0].to_dict()


def gap_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == checks.FAIRNESS_GAP)


def materialization(result: dg.ExecuteInProcessResult) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("fairness_report")[-1].metadata.items()}


# The two alerts the biased weights must raise, field by field.
SAV_AGE = {
    "product_id": "SAV",
    "dimension": "age_band",
    "highest_group": "55-64",
    "highest_rate": 1.0,
    "highest_customers": 80,
    "lowest_group": "25-34",
    "lowest_rate": 0.3,
    "lowest_customers": 80,
    "gap_pp": 70.0,
    "threshold_pp": 10.0,
    "highest_eligible_rate": 1.0,
    "lowest_eligible_rate": 0.3,
    "highest_eligible_share": 1.0,
    "lowest_eligible_share": 1.0,
    "eligibility_pp": 0.0,
    "ranking_pp": 70.0,
    "attributable_to": "ranking",
}
FX_AGE = {
    "product_id": "FX",
    "dimension": "age_band",
    "highest_group": "25-34",
    "highest_rate": 0.7,
    "highest_customers": 80,
    "lowest_group": "55-64",
    "lowest_rate": 0.0,
    "lowest_customers": 80,
    "gap_pp": 70.0,
    "threshold_pp": 10.0,
    "highest_eligible_rate": 0.7,
    "lowest_eligible_rate": 0.0,
    "highest_eligible_share": 1.0,
    "lowest_eligible_share": 1.0,
    "eligibility_pp": 0.0,
    "ranking_pp": 70.0,
    "attributable_to": "ranking",
}
MORT_JURISDICTION = {
    "product_id": "MORT",
    "dimension": "jurisdiction",
    "highest_group": "GB",
    "highest_rate": 1.0,
    "highest_customers": 84,
    "lowest_group": "IE",
    "lowest_rate": 0.428571,
    "lowest_customers": 84,
    "gap_pp": 57.1429,
    "threshold_pp": 10.0,
    "highest_eligible_rate": 1.0,
    "lowest_eligible_rate": 1.0,
    "highest_eligible_share": 1.0,
    "lowest_eligible_share": 0.428571,
    "eligibility_pp": 57.1429,
    "ranking_pp": 0.0,
    "attributable_to": "eligibility",
}


def assert_alert(alert: dict, expected: dict, week: Week, defs: dg.Definitions) -> None:
    payload = alert["payload"]
    assert {k: payload[k] for k in expected} == expected
    assert payload["type"] == "nbp.fairness_breach" and payload["week"] == week.key
    assert (
        payload["model_version"]
        == alert["model_version"]
        == defs.resolve_assets_def("fairness_report").metadata_by_key[dg.AssetKey("fairness_report")]["model_version"]
    )
    assert payload["policies"] == ["CON-001", "CON-006"]
    assert (alert["week_start"], alert["product_id"], alert["dimension"]) == (
        week.start,
        expected["product_id"],
        expected["dimension"],
    )
    assert float(alert["gap_pp"]) == expected["gap_pp"] and alert["status"] == "open" and alert["delivered_at"] is None


def test_weights_that_deny_a_group_raise_exactly_the_ranking_alerts(defs):
    ranked = write_week(defs, RANKING_WEEK)
    assert len(ranked) == 168 * 3  # every active customer gets 3 of 4, the dormant none
    result = run_report(defs, RANKING_WEEK)
    assert result.success

    alerts = outbox.alerts(defs.resources["postgres"].url)
    assert [(a["product_id"], a["dimension"]) for a in alerts] == [("FX", "age_band"), ("SAV", "age_band")]
    assert_alert(alerts[0], FX_AGE, RANKING_WEEK, defs)
    assert_alert(alerts[1], SAV_AGE, RANKING_WEEK, defs)
    assert alerts[0]["created_by_run"] == result.run_id and alerts[0]["payload"]["weeks_breached"] == 1

    check = gap_check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["alert_ids"].value == [a["alert_id"] for a in alerts]
    assert check.metadata["breaches"].value == 2

    rows = report_rows(defs, RANKING_WEEK)
    # 5 products x (2 jurisdictions + 3 age bands + 2 segments); the dormant are in no denominator
    assert len(rows) == 5 * 7
    young = row(rows, "SAV", "age_band", "25-34")
    assert (young["customers"], young["recommended"], young["rate"], young["eligible"], young["eligible_rate"]) == (
        80,
        24,
        0.3,
        80,
        0.3,
    )
    assert (round(young["ci_low"], 4), round(young["ci_high"], 4)) == (0.2106, 0.4077)
    assert young["judged"] and young["breach"] and young["gap_pp"] == 70.0 and young["eligible_gap_pp"] == 70.0
    oldest = row(rows, "SAV", "age_band", "65+")  # 0 of 8: would be a 100 pp gap if it were judged
    assert (oldest["customers"], oldest["rate"], oldest["judged"]) == (8, 0.0, False)
    assert row(rows, "SAV", "jurisdiction", "GB")["rate"] == row(rows, "SAV", "jurisdiction", "IE")["rate"] == 52 / 84
    mort = row(rows, "MORT", "segment", "MASS")  # registered, eligible for nobody this week
    assert (mort["eligible"], pd.isna(mort["eligible_rate"]), mort["gap_pp"], mort["breach"]) == (0, True, 0.0, False)
    assert set(rows.loc[rows["breach"], "product_id"]) == {"SAV", "FX"}
    assert (rows["model_version"] == alerts[0]["model_version"]).all()

    meta = materialization(result)
    assert meta["breaches"] == 2 and meta["unjudged_groups"] == 5
    assert meta["gap_chart"].startswith("![gap chart](data:image/svg+xml;base64,")
    for key in ("gaps", "rates", "gap_history", "alerts"):
        assert "|" in meta[key], key
    assert "30.0% [21.1%-40.8%]" in meta["rates"] and "no (too small)" in meta["rates"]
    html = open(meta["report_html"], encoding="utf-8").read()
    assert meta["report_html"].endswith(f"reports/fairness/{RANKING_WEEK.key}.html")
    assert "<svg" in html and "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    for text in (
        "week 2026-11-02",
        f"#{alerts[1]['alert_id']} (new)",
        "55-64 100.0% of 80",
        "30.0% [21.1%-40.8%]",
        "BREACH",
    ):
        assert text in html, text


def test_a_gap_that_comes_only_from_eligibility_says_so(defs):
    write_week(defs, ELIGIBILITY_WEEK, eligibility_only_pairs)
    result = run_report(defs, ELIGIBILITY_WEEK)
    assert result.success
    alerts = outbox.alerts(defs.resources["postgres"].url)
    assert [(a["product_id"], a["dimension"]) for a in alerts] == [("MORT", "jurisdiction")]
    assert_alert(alerts[0], MORT_JURISDICTION, ELIGIBILITY_WEEK, defs)
    rows = report_rows(defs, ELIGIBILITY_WEEK)
    ie = row(rows, "MORT", "jurisdiction", "IE")
    assert (ie["customers"], ie["recommended"], ie["eligible"], ie["eligible_rate"]) == (84, 36, 36, 1.0)
    assert row(rows, "MORT", "jurisdiction", "GB")["eligible_gap_pp"] == 0.0  # among eligible: no gap at all
    assert not rows.loc[rows["dimension"] != "jurisdiction", "breach"].any()


def trend_row(html_file: str, product: str, dimension: str) -> list[str]:
    """The cells of one product's row in the report's trend section."""
    text = open(html_file, encoding="utf-8").read()
    section = re.search(r'<section id="gap-trend">.*?</section>', text, re.S).group(0)
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", section, re.S):
        cells = re.findall(r"<td>(.*?)</td>", tr)
        if cells[:1] == [product] and dimension in cells:
            return cells
    raise AssertionError(f"no {product} / {dimension} row in the trend of {html_file}")


def test_a_persisting_breach_is_one_alert_whose_weeks_grow(defs):
    url = defs.resources["postgres"].url
    weeks = [Week.from_key(k) for k in ("2026-10-19", "2026-10-26", "2026-11-02")]
    for week in weeks[1:]:  # the two later weeks first; the oldest is backfilled below
        write_week(defs, week)
        assert run_report(defs, week).success
    alerts = outbox.alerts(url)
    assert [(a["product_id"], a["status"], a["weeks_breached"]) for a in alerts] == [
        ("FX", "open", 2),
        ("SAV", "open", 2),
    ]
    latest_html = materialization(run_report(defs, weeks[2]))["report_html"]  # a re-run counts its week once
    assert [a["weeks_breached"] for a in outbox.alerts(url)] == [2, 2]
    assert trend_row(latest_html, "SAV", "age_band")[-4:] == ["", "70.0", "70.0", "2 of 2"]

    write_week(defs, weeks[0])  # the backfill: same alerts, one more week each, later reports follow
    backfill = materialization(run_report(defs, weeks[0]))
    assert backfill["later_reports_refreshed"] == ["2026-10-26", "2026-11-02"]
    alerts = outbox.alerts(url)
    assert [
        (a["alert_id"], a["weeks_breached"], a["week_start"].isoformat(), a["last_week"].isoformat()) for a in alerts
    ] == [
        (alerts[0]["alert_id"], 3, "2026-10-19", "2026-11-02"),  # the first week is the backfilled one
        (alerts[1]["alert_id"], 3, "2026-10-19", "2026-11-02"),
    ]
    assert trend_row(latest_html, "SAV", "age_band")[-4:] == ["70.0", "70.0", "70.0", "3 of 3"]
    assert "Refreshed after week 2026-10-19" in open(latest_html, encoding="utf-8").read()

    # The next week no longer breaches for SAV and FX: their alerts resolve, MORT opens.
    write_week(defs, ELIGIBILITY_WEEK, eligibility_only_pairs)
    result = run_report(defs, ELIGIBILITY_WEEK)
    after = {a["product_id"]: a for a in outbox.alerts(url)}
    assert (after["SAV"]["status"], after["FX"]["status"], after["MORT"]["status"]) == ("resolved", "resolved", "open")
    assert after["SAV"]["resolution"].endswith("gap now 0.0 pp") and after["SAV"]["weeks_breached"] == 3
    assert after["MORT"]["payload"]["weeks_reported"] == 4
    history = materialization(result)["gap_history"]
    sav_age = next(line for line in history.splitlines() if "| SAV " in line and "age_band" in line)
    assert [cell.strip() for cell in sav_age.strip("|").split("|")][-5:] == ["70.0", "70.0", "70.0", "0.0", "3 of 4"]

    # A re-run of an already judged week is not a relapse; the bias coming back is: a new alert.
    assert run_report(defs, weeks[1]).success
    assert len(outbox.alerts(url)) == 3
    write_week(defs, ELIGIBILITY_WEEK)
    assert run_report(defs, ELIGIBILITY_WEEK).success
    relapsed = [a for a in outbox.alerts(url) if a["status"] == "open" and a["product_id"] in ("FX", "SAV")]
    assert [(a["product_id"], a["weeks_breached"], a["relapse_of"]) for a in relapsed] == [
        ("FX", 1, after["FX"]["alert_id"]),
        ("SAV", 1, after["SAV"]["alert_id"]),
    ]


def test_report_names_products_judges_the_gaps_uncertainty_and_says_what_was_left_out(defs):
    write_week(defs, RANKING_WEEK)
    meta = materialization(run_report(defs, RANKING_WEEK))
    assert meta["dimensions_judged"] == "jurisdiction, age_band, segment"
    assert meta["dimensions_left_out"].startswith(
        "gender (off by default: gender is judged only when NBP_FAIRNESS_DIMENSIONS names it)"
    )
    assert "| SAV       | Easy Saver" in meta["gaps"] and "| FX        | Travel Wallet" in meta["rates"]
    # SAV by age: 24 of 80 against 80 of 80: the gap's interval (Newcombe) stays far above 10 pp.
    sav = next(line for line in meta["gaps"].splitlines() if "| SAV " in line and "age_band" in line)
    assert "| 58.3 to 78.9 " in sav and "| yes " in sav
    alert = next(a for a in outbox.alerts(defs.resources["postgres"].url) if a["product_id"] == "SAV")
    payload = alert["payload"]
    assert (payload["product_name"], payload["gap_ci_low_pp"], payload["gap_ci_high_pp"], payload["clear_breach"]) == (
        "Easy Saver",
        58.2976,
        78.9354,
        True,
    )
    html = open(meta["report_html"], encoding="utf-8").read()
    for text in (
        "dimensions left out",
        "gender (off by default",
        "Easy Saver",
        "clear of uncertainty",
        '<section id="alert-workflow">',
        f"#{alert['alert_id']}: audit trail",
    ):
        assert text in html, text


def test_configured_dimensions_and_minimum_group(env):
    env.setenv("NBP_FAIRNESS_DIMENSIONS", "jurisdiction,age_band,segment,gender")
    env.setenv("NBP_FAIRNESS_MIN_GROUP", "5")
    defs = build_definitions()
    write_week(defs, RANKING_WEEK)
    assert run_report(defs, RANKING_WEEK).success
    rows = report_rows(defs, RANKING_WEEK)
    assert sorted(rows["dimension"].unique()) == ["age_band", "gender", "jurisdiction", "segment"]
    assert (
        row(rows, "SAV", "gender", "F")["customers"] == 84
        and not rows.loc[rows["dimension"] == "gender", "breach"].any()
    )
    alerts = {(a["product_id"], a["dimension"]): a["payload"] for a in outbox.alerts(defs.resources["postgres"].url)}
    assert set(alerts) == {("SAV", "age_band"), ("FX", "age_band")}
    # Judged from 5 customers up, the 65+ group (8) now sets the gaps.
    assert (alerts[("SAV", "age_band")]["lowest_group"], alerts[("SAV", "age_band")]["gap_pp"]) == ("65+", 100.0)
    assert (alerts[("FX", "age_band")]["highest_group"], alerts[("FX", "age_band")]["gap_pp"]) == ("65+", 100.0)

    env.setenv("NBP_FAIRNESS_DIMENSIONS", "jurisdiction,religion")
    with pytest.raises(ValueError, match="'religion' is not a column of the customers asset"):
        build_definitions()


def test_report_table_written_before_these_columns_is_widened(defs):
    warehouse = defs.resources["warehouse"]
    old = pd.DataFrame(
        {
            "week_start": [pd.Timestamp("2026-10-26")],
            "product_id": ["SAV"],
            "dimension": ["segment"],
            "group": ["MASS"],
            "customers": [10],
            "recommended": [1],
            "rate": [0.1],
            "gap_pp": [0.0],
            "breach": [False],
        }
    )
    warehouse.replace_table("nbp_work.fairness_report", old)
    write_week(defs, RANKING_WEEK)
    assert run_report(defs, RANKING_WEEK).success
    everything = warehouse.query("SELECT * FROM nbp_work.fairness_report ORDER BY week_start")
    assert {"eligible", "eligible_rate", "ci_low", "judged", "model_version"} <= set(everything.columns)
    kept = everything.iloc[0]
    assert (kept["week_start"], kept["product_id"], kept["rate"]) == (pd.Timestamp("2026-10-26"), "SAV", 0.1)
    assert pd.isna(kept["eligible"]) and len(everything) == 1 + 5 * 7


def test_publishing_is_not_blocked_by_default(defs):
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("nbp_current")).parent_keys == {
        dg.AssetKey("nbp_ranked"),
        dg.AssetKey("ranking_weights"),
    }
    write_week(defs, RANKING_WEEK)
    result = run_report(defs, RANKING_WEEK, assets=("fairness_report", "nbp_current"))
    assert result.success and not gap_check(result).passed
    assert pg.current_evaluated_at(defs.resources["postgres"].url) == RANKING_WEEK.evaluated_at


def test_breach_blocks_publishing_when_configured(env):
    env.setenv("NBP_FAIRNESS_BLOCKS_PUBLISH", "true")
    defs = build_definitions()
    assert defs.resolve_asset_graph().get(dg.AssetKey("nbp_current")).parent_keys == {
        dg.AssetKey("nbp_ranked"),
        dg.AssetKey("ranking_weights"),
        dg.AssetKey("fairness_report"),
    }
    spec = next(s for s in defs.resolve_assets_def("fairness_report").check_specs if s.name == checks.FAIRNESS_GAP)
    assert spec.blocking and "stops nbp_current" in spec.description
    url = defs.resources["postgres"].url

    # A clean week publishes.
    write_week(defs, ELIGIBILITY_WEEK, eligibility_only_pairs, customers=bank_customers().assign(jurisdiction="GB"))
    assert run_report(defs, ELIGIBILITY_WEEK, assets=("fairness_report", "nbp_current")).success
    assert pg.current_evaluated_at(url) == ELIGIBILITY_WEEK.evaluated_at
    before = pg.read_current(url)

    # A breaching week: the report and its alerts are written, nbp_current does not run.
    write_week(defs, ELIGIBILITY_WEEK, eligibility_only_pairs)
    result = run_report(defs, ELIGIBILITY_WEEK, assets=("fairness_report", "nbp_current"))
    assert not result.success
    check = gap_check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert result.asset_materializations_for_node("fairness_report")
    assert not result.asset_materializations_for_node("nbp_current")
    pd.testing.assert_frame_equal(pg.read_current(url), before)
    assert [a["product_id"] for a in outbox.alerts(url)] == ["MORT"]

    # nbp_current on its own refuses too, and says why.
    alone = run_report(defs, ELIGIBILITY_WEEK, assets=("nbp_current",))
    failure = next(e for e in alone.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.message
    assert "MORT by jurisdiction (57.1 pp)" in message and "NBP_FAIRNESS_BLOCKS_PUBLISH=true" in message
    pd.testing.assert_frame_equal(pg.read_current(url), before)


def test_ranked_rows_use_the_configured_model_version(defs):
    # The fixture's weights file is the biased one: the report's model_version is the ranking's.
    ranked = write_week(defs, RANKING_WEEK)
    version = defs.resolve_assets_def("fairness_report").code_versions_by_key[dg.AssetKey("fairness_report")]
    assert (ranked["model_version"] == version).all()
    assert ranked["evaluated_at"].iloc[0] == pd.Timestamp(datetime(2026, 11, 9))


SUITABILITY_WEEK = Week.from_key("2026-11-16")


def suitability_pairs(customers: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """SAV, CARD and LOAN eligible for everyone (three each: every candidate is in the top 3)."""
    pairs = customers[["party_id"]].merge(pd.DataFrame({"product_id": ["SAV", "CARD", "LOAN"]}), how="cross")
    return pairs, pd.Series(False, index=customers["party_id"])


def write_withheld(defs: dg.Definitions, week: Week, ranked: pd.DataFrame) -> pd.DataFrame:
    """The suitability rule withholds LOAN from 6 in 10 active IE customers: r < 4 (and the
    65+, r = 0) for low MOD-040 health, r 4-5 for unknown health (16 customers). Their
    LOAN rows leave the top 3, as the signals step would have left them out."""
    people = bank_customers()
    held = people[(people["jurisdiction"] == "IE") & (people["r"] < 6) & (people["status"] == "ACTIVE")]
    unknown = held["r"] >= 4
    withheld = pd.DataFrame(
        {
            "week_start": pd.Timestamp(week.start),
            "party_id": held["party_id"].to_numpy(),
            "product_id": "LOAN",
            "product_class": "LENDING",
            "rule": ["suitability_when_unknown" if u else "suitability_health_below" for u in unknown],
            "financial_health_score": [None if u else 20.0 for u in unknown],
            "health_below": 0.4,
            "reason": "withheld",
        }
    )
    warehouse = defs.resources["warehouse"]
    warehouse.replace_slice("nbp_work.withheld", withheld, where=f"week_start = {sql_date(week.start)}")
    kept = ranked[~(ranked["party_id"].isin(held["party_id"]) & (ranked["product_id"] == "LOAN"))]
    warehouse.replace_slice(
        HISTORY_TABLE, kept, where=f"evaluated_at = {sql_date(week.evaluated_at)}", ddl=HISTORY_DDL, key=HISTORY_KEY
    )
    return withheld


def test_a_gap_that_comes_from_suitability_says_so_and_counts_unknown_health(defs):
    ranked = write_week(defs, SUITABILITY_WEEK, suitability_pairs)
    write_withheld(defs, SUITABILITY_WEEK, ranked)
    result = run_report(defs, SUITABILITY_WEEK)
    assert result.success
    alerts = outbox.alerts(defs.resources["postgres"].url)
    assert [(a["product_id"], a["dimension"]) for a in alerts] == [("LOAN", "jurisdiction")]
    payload = alerts[0]["payload"]
    # GB 84 of 84, IE 32 of 84 (84 eligible, 52 withheld, 32 suitable, all recommended): 52/84
    assert (payload["highest_group"], payload["lowest_group"], payload["gap_pp"]) == ("GB", "IE", 61.9048)
    assert (payload["eligibility_pp"], payload["suitability_pp"], payload["ranking_pp"]) == (0.0, 61.9048, 0.0)
    assert payload["attributable_to"] == "suitability"
    ie = row(report_rows(defs, SUITABILITY_WEEK), "LOAN", "jurisdiction", "IE")
    assert (ie["eligible"], ie["suitable"], ie["recommended"], ie["suitable_rate"]) == (84, 32, 32, 1.0)
    meta = materialization(result)
    assert meta["unknown_health_withheld"] == 16
    assert meta["unknown_health_by_group"].startswith("16 (jurisdiction: IE 16;")
    with open(meta["report_html"]) as f:
        html = f.read()
    assert "customers withheld for unknown MOD-040 health" in html and "from suitability pp" in html
