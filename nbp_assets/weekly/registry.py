"""The model registry in the warehouse: which configuration produced each history row.

`product_intelligence.model_versions` has one row per model_version: its code version, the
digest of its weights, the digest of the SQL it ran (first and latest run), the first and
last week it ranked, when it first and last ran, and its approval (who, when, why, after
which simulation). `product_intelligence.model_weights` holds every weight and suitability
setting of each model_version in the weights file's long format, so `Weights` can be rebuilt
from the warehouse alone (`weights_of`) and yields the same model_version.

The nbp_ranked step writes its model_version's rows in the week's own transaction
(`record_week`): a week committed to the history is always tied to its configuration, and a
week rolled back leaves no registry trace. Every history row joins to model_versions by
model_version. docs/governance.md says what is recorded where and how to reconstruct a week.
No query text is written here: weekly/sql/registry_*.sql.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from nbp_assets.contract.tables import HISTORY, MODEL_VERSIONS, MODEL_WEIGHTS
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import digest, render
from nbp_assets.weekly.weights import MODEL_CODE_VERSION, Weights, weights_from_frame

# The week the registry's sql_digest renders the model's SQL for: week-independent, so a
# model_version's digest changes only when its scoring or ranking SQL (or a macro) does.
REFERENCE_WEEK = Week.from_key("2025-01-06")


def now() -> datetime:
    """When something is recorded: UTC, to the second, zone-naive (the tables' TIMESTAMP)."""
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def code_version_of(model_version: str) -> str:
    return model_version.split("+w", 1)[0]


def weights_digest_of(model_version: str) -> str:
    return model_version.split("+w", 1)[1] if "+w" in model_version else ""


def model_sql_digest(weights: Weights, dialect: str) -> str:
    """sha256 of the scores and nbp_ranked statements of this model (weights, code, engine),
    rendered unsharded for REFERENCE_WEEK: the digest of the SQL the model_version runs."""
    from nbp_assets.weekly import steps  # steps imports the model's SQL builders

    scores = steps.scores(REFERENCE_WEEK, weights, [None])
    ranked = steps.nbp_ranked(REFERENCE_WEEK, weights.model_version, [None], dialect)
    return digest([*scores.statements(), *ranked.statements()])


def ensure_tables(warehouse) -> None:
    """Create the registry's tables if missing (before the step's transaction)."""
    warehouse.ensure_table(MODEL_VERSIONS)
    warehouse.ensure_table(MODEL_WEIGHTS)


def register_statements(weights: Weights) -> list[str]:
    """The model_version's registry row (if missing) and its weights rows."""
    mv = weights.model_version
    rows = [tuple(r) for r in weights.as_long()[["product_class", "signal", "weight"]].itertuples(index=False)]
    return [
        render(
            "weekly",
            "registry_insert_version",
            table=MODEL_VERSIONS.name,
            model_version=mv,
            code_version=code_version_of(mv),
            weights_digest=weights_digest_of(mv),
        ).text,
        render("weekly", "registry_delete_weights", table=MODEL_WEIGHTS.name, model_version=mv).text,
        render("weekly", "registry_insert_weights", table=MODEL_WEIGHTS.name, model_version=mv, rows=rows).text,
    ]


def record_week(tx, weights: Weights, week: Week, dialect: str, run_at: datetime | None = None) -> str:
    """Tie the week to its configuration, in the week's transaction `tx`: the model_version's
    row and weights, its first / last week and run, and its SQL digest. Returns the digest."""
    sql_digest = model_sql_digest(weights, dialect)
    for statement in register_statements(weights):
        tx.execute(statement)
    tx.execute(
        render(
            "weekly",
            "registry_touch",
            table=MODEL_VERSIONS.name,
            model_version=weights.model_version,
            week=week.start,
            run_at=run_at or now(),
            sql_digest=sql_digest,
        ).text
    )
    return sql_digest


def version_row(reader, model_version: str) -> dict | None:
    """The registry row of `model_version` (None if it never ran nor was approved, or no registry yet)."""
    if not reader.table_exists(MODEL_VERSIONS.name):
        return None
    rows = reader.query(
        render("weekly", "registry_version", table=MODEL_VERSIONS.name, model_version=model_version).text
    )
    return None if rows.empty else rows.iloc[0].to_dict()


def weights_rows(reader, model_version: str) -> pd.DataFrame:
    """The long weights rows (product_class, signal, weight) recorded for `model_version`."""
    return reader.query(
        render("weekly", "registry_weights_of", table=MODEL_WEIGHTS.name, model_version=model_version).text
    )


def weights_of(reader, model_version: str) -> Weights:
    """The Weights of a model_version, from the warehouse alone. Refused (ValueError) when the
    rows are missing or do not yield that model_version (code of another version)."""
    rows = weights_rows(reader, model_version)
    if rows.empty:
        raise ValueError(f"no weights recorded for {model_version} in {MODEL_WEIGHTS.name}")
    weights = weights_from_frame(rows.astype({"weight": "float64"}), source=f"{MODEL_WEIGHTS.name}:{model_version}")
    if weights.model_version != model_version:
        raise ValueError(
            f"the weights recorded for {model_version} yield {weights.model_version} with this code "
            f"({MODEL_CODE_VERSION}): check out the code of {code_version_of(model_version)}"
        )
    return weights


def unjoined_history_rows(reader) -> int:
    """History rows whose model_version has no registry row (0: every week is tied)."""
    return int(
        reader.scalar(render("weekly", "registry_unjoined", history=HISTORY.name, table=MODEL_VERSIONS.name).text)
    )


def _when(value) -> str:
    return "?" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M} UTC"


def approval_of(reader, model_version: str) -> str:
    """The approval of `model_version` in one line, for `show`, the fairness report and the
    publish gate: who, when, after which simulation and why, or that none is recorded."""
    row = version_row(reader, model_version)
    if not row or row.get("approved_by") is None or pd.isna(row.get("approved_by")):
        return f"{model_version}: not approved (no approval recorded in {MODEL_VERSIONS.name})"
    return (
        f"{model_version}: approved by {row['approved_by']} at {_when(row['approved_at'])} "
        f"after simulation {row['approval_simulation_id']}: {row['approval_reason']}"
    )


def is_approved(reader, model_version: str) -> bool:
    row = version_row(reader, model_version)
    return bool(row) and row.get("approved_by") is not None and not pd.isna(row.get("approved_by"))


def approve_statements(model_version: str, by: str, at: datetime, reason: str, simulation_id: str) -> list[str]:
    """The approval of `model_version` (its registry row first, if it has not run yet)."""
    return [
        render(
            "weekly",
            "registry_insert_version",
            table=MODEL_VERSIONS.name,
            model_version=model_version,
            code_version=code_version_of(model_version),
            weights_digest=weights_digest_of(model_version),
        ).text,
        render(
            "weekly",
            "registry_approve",
            table=MODEL_VERSIONS.name,
            model_version=model_version,
            approved_by=by,
            approved_at=at,
            reason=reason,
            simulation_id=simulation_id,
        ).text,
    ]
