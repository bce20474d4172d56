"""Asset checks: names, specs and the gate that stops a bad week from being written.

Checks run inside the step's warehouse transaction, on the week's rows it is about to
commit: a failed ERROR check is recorded in the UI with its failure cases, then the step
fails and the transaction rolls back, so nothing from the bad run is written and the last
good output stays in place. Downstream steps (including the PostgreSQL publish) do not run.
Every check is a query in the warehouse: only counts and a few example rows come back.
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterator, TypeVar

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from nbp_assets.contract.sql_checks import check_in_warehouse
from nbp_assets.contract.tables import Table
from nbp_assets.contract.validation import ContractViolation, validate
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseSession
from nbp_assets.sources.week_inputs import MissingInput

# Check names are constants: tests, sensors and the UI refer to them.
CONTRACT = "contract"
ELIGIBILITY_GATE = "eligibility_gate"
RANKS = "ranks_1_to_n"
SCORES = "scores_in_range"
MODEL_VERSION = "model_version_on_every_row"
NOT_EMPTY = "week_not_empty"
SUITABILITY = "suitability"
# The threshold is configuration (fairness/config.py), so the name does not carry it.
FAIRNESS_GAP = "fairness_gap_within_threshold"

MAX_EXAMPLE_ROWS = 10
T = TypeVar("T")


def check_spec(
    name: str,
    asset: str,
    description: str,
    blocking: bool = True,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetCheckSpec:
    """partitions_def: a weekly asset's checks are recorded per week, so the UI answers "did
    week X pass the eligibility gate?" (a preview feature in Dagster 1.13, pinned here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset, blocking=blocking, description=description, partitions_def=partitions_def
        )


def contract_spec(
    asset: str, model: type[pa.DataFrameModel], partitions_def: dg.PartitionsDefinition | None = None
) -> dg.AssetCheckSpec:
    return check_spec(
        CONTRACT,
        asset,
        f"pandera model {model.__name__}: every column, type and range this table promises.",
        partitions_def=partitions_def,
    )


def _violation_result(exc: ContractViolation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CONTRACT,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=exc.render(),
        metadata={
            "failure_cases": dg.MetadataValue.md(exc.failure_table().to_markdown(index=False)),
            "violations": len(exc.violations),
        },
    )


def contract_result(model: type[pa.DataFrameModel], df: pd.DataFrame, table: str) -> dg.AssetCheckResult:
    """The contract of a small frame checked in pandas (the fairness report)."""
    try:
        validate(model, df, table=table)
    except ContractViolation as exc:
        return _violation_result(exc)
    return dg.AssetCheckResult(check_name=CONTRACT, passed=True, metadata={"rows": len(df)})


def contract_in_warehouse(
    tx: WarehouseSession, table: Table, where: str, rows: int, model: type[pa.DataFrameModel] | None = None
) -> dg.AssetCheckResult:
    """The table's pandera model, translated to SQL, on the rows matching `where`."""
    try:
        check_in_warehouse(tx.query, model or table.model, table.name, where, set(table.columns), source="warehouse")
    except ContractViolation as exc:
        return _violation_result(exc)
    return dg.AssetCheckResult(check_name=CONTRACT, passed=True, metadata={"rows": rows})


def rows_result(name: str, offending: pd.DataFrame, what: str) -> dg.AssetCheckResult:
    """A business check from a (small) frame of offending rows (empty = pass)."""
    passed = offending.empty
    metadata: dict = {"failing_rows": len(offending)}
    if not passed:
        metadata["examples"] = dg.MetadataValue.md(offending.head(MAX_EXAMPLE_ROWS).to_markdown(index=False))
    return dg.AssetCheckResult(
        check_name=name,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=what if passed else f"{len(offending)} row(s) break: {what}",
        metadata=metadata,
    )


def _select(relation: str, columns: str, **clauses) -> str:
    return render("core", "select", columns=columns, relation=relation, **clauses).text


def query_result(
    tx: WarehouseSession, name: str, offending_sql: str, what: str, count_sql: str | list[str] | None = None
) -> dg.AssetCheckResult:
    """A business check from a query of offending rows (none = pass); `count_sql` counts
    them more cheaply where the engine can, or is a list of queries (one per party shard)
    whose counts add up to it."""
    offending = f"({offending_sql})"
    counts = [count_sql] if isinstance(count_sql, str) else count_sql or [_select(offending, "count(*)")]
    failing = sum(int(tx.scalar(q)) for q in counts)
    metadata: dict = {"failing_rows": failing}
    if failing:
        examples = tx.query(_select(offending, "*", limit=MAX_EXAMPLE_ROWS))
        metadata["examples"] = dg.MetadataValue.md(examples.to_markdown(index=False))
    return dg.AssetCheckResult(
        check_name=name,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=what if not failing else f"{failing} row(s) break: {what}",
        metadata=metadata,
    )


def gate(table: str, results: list[dg.AssetCheckResult]) -> Iterator[dg.AssetCheckResult]:
    """Yield every result; if an ERROR check failed, fail the step before anything is committed."""
    yield from results
    failed = [r for r in results if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR]
    if failed:
        raise dg.Failure(
            description=f"{table}: {len(failed)} blocking check(s) failed; nothing was written.\n"
            + "\n".join(f"[{r.check_name}] {r.description}" for r in failed),
            metadata={"failed_checks": ", ".join(r.check_name for r in failed)},
        )


def fail_on_violation(fn: Callable[[], T]) -> T:
    """Run an input read; bad or missing input becomes one readable step failure."""
    try:
        return fn()
    except ContractViolation as exc:
        raise dg.Failure(
            description=exc.render(),
            metadata={
                "table": exc.table,
                "failure_cases": dg.MetadataValue.md(exc.failure_table().to_markdown(index=False)),
            },
        ) from None
    except MissingInput as exc:
        raise dg.Failure(description=str(exc)) from None
