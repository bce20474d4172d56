"""Every recommendation explains itself: each week's contributions and penalty factors are in
the warehouse and give back the published score bit for bit; apps get a documented reason."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly.assets import build_engine_assets
from nbp_assets.weekly.reasons import REASONS
from nbp_assets.weekly.vocabulary import NO_SIGNAL, PENALTY_SIGNALS, POSITIVE_SIGNALS, contribution, factor
from nbp_assets.weekly.weights import load_weights

WEIGHTS = load_weights()
WEEK = Week.from_key("2026-11-09")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "explanations.md"


def reproduce(explained: pd.DataFrame, weights=WEIGHTS) -> pd.DataFrame:
    """Every explanation column and the score, recomputed from signals and weights with
    numpy in the model's order of operations; returns the rows that differ."""
    w = weights.matrix.loc[explained["product_class"]].reset_index(drop=True)
    e = explained.reset_index(drop=True)
    wrong = pd.Series(False, index=e.index)
    total = None
    for s in POSITIVE_SIGNALS:
        c = w[s].to_numpy() * e[s].to_numpy()
        wrong |= c != e[contribution(s)].to_numpy()
        total = c if total is None else total + c
    score = np.minimum(total, 1.0)
    for s in PENALTY_SIGNALS:
        f = 1.0 - w[s].to_numpy() * e[s].to_numpy()
        wrong |= f != e[factor(s)].to_numpy()
        score = score * f
    wrong |= np.round(np.clip(score, 0.0, 1.0), 6) != e["score"].to_numpy()
    return e[wrong]


def test_every_published_score_is_reproduced_from_the_weeks_explanation(tmp_path):
    tables = generate(800, 5, end_week=WEEK.start, history_weeks=1)
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    for name, df in tables.items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    assets = [a for a in build_engine_assets(WEIGHTS) if a.key.path[-1] != "nbp_current"]
    assert dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}).success
    explained = warehouse.query(f"""
        SELECT h.rank, h.score AS published_score, h.primary_signal AS published_signal, p.product_class,
               s.*, g.* EXCLUDE (week_start, party_id, product_id)
        FROM {HISTORY_TABLE} h
        JOIN nbp_work.scores s ON s.party_id = h.party_id AND s.product_id = h.product_id
        JOIN nbp_work.signals g ON g.party_id = s.party_id AND g.product_id = s.product_id AND g.week_start = s.week_start
        JOIN nbp_work.products p ON p.product_id = s.product_id AND p.week_start = s.week_start
        ORDER BY h.party_id, h.rank""")
    published = int(warehouse.scalar(f"SELECT count(*) FROM {HISTORY_TABLE}"))
    assert len(explained) == published > 0  # every published row has its explanation
    assert (explained["published_score"].astype("float64") == explained["score"]).all()
    assert (explained["published_signal"] == explained["primary_signal"]).all()
    assert reproduce(explained).empty
    # the down-weighted pairs show their suitability factor
    assert (explained["suitability_factor"] == 0.5).any()
    # and the check can fail: one contribution off by one ulp is found
    broken = explained.copy()
    broken.loc[0, contribution("relationship_gap")] = np.nextafter(broken.loc[0, contribution("relationship_gap")], 1.0)
    assert len(reproduce(broken)) == 1


def test_the_reason_table_in_the_docs_is_the_one_the_apps_get():
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+?) \|$", DOCS.read_text(), flags=re.M)
    assert dict(rows) == REASONS
    assert set(REASONS) == {*POSITIVE_SIGNALS, NO_SIGNAL}
    assert REASONS["idle_cash"] == "You have money that could earn more in savings"
