"""The ksqlDB recipe's own example, end to end through the project's normal input path.

The recipe's INSERT statements (10 activities, 3 customers, 5 offers) run verbatim in
DuckDB staging tables shaped like the recipe's streams and tables. The staged rows become
the contract's files (`activity.csv`, `customers.csv`, `offers.csv`), `python -m
nbp_assets load` validates and loads them, the sensor publishes the offers and rules and
launches the micro-batch, and every row of next_best_offer_lookup is asserted.

What the recipe does not have, and the mapping used here (docs/next-best-offer.md):
- CUSTOMER_ID 1, 2, 3 -> party_id "1", "2", "3".
- Customers: gender Male/Female -> M/F; jurisdiction GB, segment MASS, age band 35-44,
  status ACTIVE, valid from 2026-01-01 (one version each); names and e-mails are dropped
  (not in the contract).
- Events have no time in the recipe: activity n happened at 2026-11-16 09:00:00 + n seconds,
  the order of the INSERTs.
- The weekly engine's other tables are empty: the recipe has no products or snapshots.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from nbp_assets.cli import main as cli
from nbp_assets.contract.inputs import SOURCE_TABLES
from nbp_assets.definitions import build_definitions
from nbp_assets.offers import assets as nbo
from nbp_assets_tests.offer_helpers import Stream, check, materialization

# Verbatim from the recipe.
RECIPE_INSERTS = """
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (1,'121.219.110.170',1,'branch_visit',0.4);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (2,'210.232.55.188',2,'deposit',0.56);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (3,'84.197.123.173',3,'web_open',0.33);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (4,'70.149.233.32',1,'deposit',0.41);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (5,'221.234.209.67',2,'deposit',0.44);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (6,'102.187.28.148',3,'web_open',0.33);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (7,'135.37.250.250',1,'mobile_open',0.97);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (8,'122.157.243.25',2,'deposit',0.83);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (9,'114.215.212.181',3,'deposit',0.86);
INSERT INTO customer_activity_stream (activity_id, ip_address, customer_id, activity_type, propensity_to_buy) VALUES (10,'248.248.0.78',1,'new_account',0.14);
INSERT INTO customers (customer_id, first_name, last_name, email, gender, income, fico) VALUES  (1,'Waylen','Tubble','wtubble0@hc360.com','Male',403646, 465);
INSERT INTO customers (customer_id, first_name, last_name, email, gender, income, fico) VALUES  (2,'Joell','Wilshin','jwilshin1@yellowpages.com','Female',109825, 624);
INSERT INTO customers (customer_id, first_name, last_name, email, gender, income, fico) VALUES  (3,'Ilaire','Latus','ilatus2@baidu.com','Male',407964, 683);
INSERT INTO offers (offer_id, offer_name, offer_url) VALUES (1,'new_savings','http://google.com.br/magnis/dis/parturient.json');
INSERT INTO offers (offer_id, offer_name, offer_url) VALUES (2,'new_checking','https://earthlink.net/in/ante.js');
INSERT INTO offers (offer_id, offer_name, offer_url) VALUES (3,'new_home_loan','https://webs.com/in/ante.jpg');
INSERT INTO offers (offer_id, offer_name, offer_url) VALUES (4,'new_auto_loan','http://squidoo.com/venenatis/non/sodales/sed/tincidunt/eu.js');
INSERT INTO offers (offer_id, offer_name, offer_url) VALUES (5,'no_offer','https://ezinearticles.com/ipsum/primis/in/faucibus/orci/luctus.html');
"""

# The recipe's stream and tables, without ksqlDB's KEY / PRIMARY KEY / WITH (...) clauses.
STAGING_DDL = """
CREATE TABLE customer_activity_stream (ACTIVITY_ID INTEGER, IP_ADDRESS VARCHAR, CUSTOMER_ID INTEGER,
    ACTIVITY_TYPE VARCHAR, PROPENSITY_TO_BUY DOUBLE);
CREATE TABLE customers (CUSTOMER_ID INTEGER, FIRST_NAME VARCHAR, LAST_NAME VARCHAR, EMAIL VARCHAR,
    GENDER VARCHAR, INCOME INTEGER, FICO INTEGER);
CREATE TABLE offers (OFFER_ID INTEGER, OFFER_NAME VARCHAR, OFFER_URL VARCHAR);
"""

# The staged rows as the contract's tables (the mapping in the module docstring), with the
# contract's lower-case column names.
TO_CONTRACT = {
    "activity": """SELECT activity_id AS activity_id, CAST(customer_id AS VARCHAR) AS party_id,
        TIMESTAMP '2026-11-16 09:00:00' + activity_id * INTERVAL 1 SECOND AS event_time,
        activity_type AS activity_type, propensity_to_buy AS propensity_to_buy, ip_address AS ip_address
        FROM customer_activity_stream ORDER BY activity_id""",
    "customers": """SELECT CAST(customer_id AS VARCHAR) AS party_id, 'GB' AS jurisdiction, 'MASS' AS segment,
        '35-44' AS age_band, CASE gender WHEN 'Male' THEN 'M' WHEN 'Female' THEN 'F' END AS gender,
        'ACTIVE' AS status, income AS income, fico AS fico, DATE '2026-01-01' AS valid_from, CAST(NULL AS DATE) AS valid_to
        FROM customers ORDER BY customer_id""",
    "offers": "SELECT offer_id AS offer_id, offer_name AS offer_name, offer_url AS offer_url FROM offers ORDER BY offer_id",
}

URL = {
    "new_savings": "http://google.com.br/magnis/dis/parturient.json",
    "no_offer": "https://ezinearticles.com/ipsum/primis/in/faucibus/orci/luctus.html",
}
CUSTOMER = {"1": (403646, 465), "2": (109825, 624), "3": (407964, 683)}
# By hand from the CASE: every customer has INCOME > 100000 and FICO < 700, so the first
# WHEN gives offer 1 whenever PROPENSITY_TO_BUY < 0.9; activity 7 (0.97) gets the ELSE, 5.
EVENTS = [  # ACTIVITY_ID, CUSTOMER_ID, PROPENSITY_TO_BUY, ACTIVITY_TYPE, OFFER_ID, OFFER_NAME
    (1, "1", 0.40, "branch_visit", 1, "new_savings"),
    (2, "2", 0.56, "deposit", 1, "new_savings"),
    (3, "3", 0.33, "web_open", 1, "new_savings"),
    (4, "1", 0.41, "deposit", 1, "new_savings"),
    (5, "2", 0.44, "deposit", 1, "new_savings"),
    (6, "3", 0.33, "web_open", 1, "new_savings"),
    (7, "1", 0.97, "mobile_open", 5, "no_offer"),
    (8, "2", 0.83, "deposit", 1, "new_savings"),
    (9, "3", 0.86, "deposit", 1, "new_savings"),
    (10, "1", 0.14, "new_account", 1, "new_savings"),
]


def expected_lookup() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "OFFER_ID": [e[4] for e in EVENTS],
            "ACTIVITY_ID": [e[0] for e in EVENTS],
            "CUSTOMER_ID": [e[1] for e in EVENTS],
            "PROPENSITY_TO_BUY": [e[2] for e in EVENTS],
            "ACTIVITY_TYPE": [e[3] for e in EVENTS],
            "INCOME": [CUSTOMER[e[1]][0] for e in EVENTS],
            "FICO": [CUSTOMER[e[1]][1] for e in EVENTS],
            "OFFER_NAME": [e[5] for e in EVENTS],
            "OFFER_URL": [URL[e[5]] for e in EVENTS],
        }
    )


def write_recipe_files(folder: Path) -> None:
    folder.mkdir()
    with duckdb.connect() as con:
        con.execute(STAGING_DDL)
        con.execute(RECIPE_INSERTS)
        for table, select in TO_CONTRACT.items():
            con.execute(f"COPY ({select}) TO '{folder / (table + '.csv')}' (HEADER)")
    for table, (model, required) in SOURCE_TABLES.items():  # the weekly engine's tables: empty
        if required and not (folder / f"{table}.csv").exists():
            (folder / f"{table}.csv").write_text(",".join(model.to_schema().columns) + "\n")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """Load the recipe through `python -m nbp_assets load`, then let the sensor run it."""
    root = tmp_path_factory.mktemp("recipe")
    with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
        mp.setenv("NBP_HOME", str(root / "home"))
        for var in ("NBP_WAREHOUSE_PATH", "NBP_DEPLOYMENT", "NBP_WEIGHTS_FILE"):
            mp.delenv(var, raising=False)
        write_recipe_files(root / "files")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            cli(["load", str(root / "files")])
        assert "nbp_source.offers" in printed.getvalue() and "nbp_source.activity" in printed.getvalue()
        s = Stream(build_definitions(), instance)
        s.drain()
        yield s


def test_recipe_example_gives_exactly_the_recipes_offers(recipe):
    keys = recipe.launched
    assert keys[0].startswith("offer-tables-") and keys[1:] == ["nbo-00000001"]
    tables_run, batch_run = recipe.results
    assert tables_run.success and batch_run.success
    assert materialization(tables_run, "offers")["source"] == "nbp_source.offers"  # the loaded file

    lookup = recipe.lookup()
    assert list(lookup.columns) == [
        "OFFER_ID",
        "ACTIVITY_ID",
        "CUSTOMER_ID",
        "PROPENSITY_TO_BUY",
        "ACTIVITY_TYPE",
        "INCOME",
        "FICO",
        "OFFER_NAME",
        "OFFER_URL",
    ]
    pd.testing.assert_frame_equal(lookup, expected_lookup())

    offers = recipe.offers()
    assert offers["RULES_VERSION"].tolist() == [1] * 10
    assert offers["RULE_PRIORITY"].tolist() == [1, 1, 1, 1, 1, 1, 5, 1, 1, 1]  # 5: the ELSE
    assert materialization(batch_run, "next_best_offer")["pending_events"] == 0


def test_rules_check_on_the_recipes_own_rule(recipe):
    coverage = check(recipe.results[0], "offer_rules", nbo.RULES_COVERAGE)
    assert coverage.passed is False and coverage.severity == dg.AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in coverage.metadata.items()}
    assert meta["unreachable_offers"] == [4]  # new_auto_loan: rule 3 takes every input rule 4 matches
    assert meta["unreachable_rules"] == [{"priority": 4, "offer_id": 4, "shadowed_by": [3]}]
    assert "rule priority 4 (offer 4) is never reached: rule(s) [3] take every input it matches" in coverage.description
    assert meta["uncovered_inputs"].splitlines() == [
        "- PROPENSITY_TO_BUY >= 0.9",
        "- INCOME IS NULL AND PROPENSITY_TO_BUY < 0.9",
        "- 50000 <= INCOME <= 100000 AND FICO < 600 AND PROPENSITY_TO_BUY < 0.9",
        "- INCOME >= 50000 AND FICO IS NULL AND PROPENSITY_TO_BUY < 0.9",
    ]
