"""Turn pandera's failure report into one readable error: table, column, check, example rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.errors as pa_errors
import pandera.pandas as pa

MAX_EXAMPLES = 5
MISSING_COLUMN = "required column is missing"
MAX_SHOWN_TEXT = 80


@dataclass(frozen=True)
class Violation:
    column: str
    check: str
    failing_rows: int
    examples: list[dict]


class ContractViolation(ValueError):
    """Raised when a table does not meet its contract; nothing downstream may use it."""

    def __init__(self, table: str, violations: list[Violation], source: str | None = None):
        self.table = table
        self.violations = violations
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        where = f"table '{self.table}'" + (f" (from {self.source})" if self.source else "")
        lines = [f"{where} breaks its data contract:"]
        for v in self.violations:
            if v.check == MISSING_COLUMN:
                lines.append(f"  - column '{v.column}': {MISSING_COLUMN}")
                continue
            lines.append(
                f"  - column '{v.column}': {v.check} failed on {v.failing_rows} row(s); examples: {v.examples}"
            )
        return "\n".join(lines)

    def failure_table(self) -> pd.DataFrame:
        """One row per violated (column, check), for Dagster metadata."""
        return pd.DataFrame(
            [
                {
                    "column": v.column,
                    "check": v.check,
                    "failing_rows": v.failing_rows,
                    "examples": str(v.examples),
                }
                for v in self.violations
            ]
        )


def _examples(df: pd.DataFrame, index_values, column: str, failure_values) -> list[dict]:
    """Example rows: the offending value plus the row's key-ish columns, with row numbers."""
    out: list[dict] = []
    id_cols = [c for c in ("party_id", "product_id", "as_of_date", "activity_id") if c in df]
    for idx, value in list(zip(index_values, failure_values))[:MAX_EXAMPLES]:
        row: dict = {"row": None if pd.isna(idx) else int(idx) if isinstance(idx, (int, float)) else str(idx)}
        if idx is not None and not pd.isna(idx) and idx in df.index:
            for c in id_cols:
                row[c] = plain_value(df.at[idx, c])
        row[column] = plain_value(value)
        out.append(row)
    return out


def plain_value(value):
    """A cell as a plain Python value for error messages and metadata (None for any null)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, str) and len(value) > MAX_SHOWN_TEXT:  # a 1 MB identifier must not flood the log
        return f"{value[:MAX_SHOWN_TEXT]}... ({len(value):,} characters)"
    return value


def validate(model: type[pa.DataFrameModel], df: pd.DataFrame, table: str, source: str | None = None) -> pd.DataFrame:
    """Validate df against model; return the coerced frame or raise ContractViolation."""
    try:
        return model.validate(df, lazy=True)
    except pa_errors.SchemaErrors as exc:
        raise _violation_from(exc, df, table, source) from None
    except pa_errors.SchemaError as exc:  # non-lazy paths (e.g. dataframe-level coercion)
        raise ContractViolation(table, [Violation(str(exc.schema.name or "?"), str(exc), 0, [])], source) from None


def _violation_from(exc: pa_errors.SchemaErrors, df: pd.DataFrame, table: str, source: str | None) -> ContractViolation:
    fc = exc.failure_cases.copy()
    fc["column"] = fc["column"].fillna("<table>").astype(str)
    fc["check"] = fc["check"].astype(str)
    violations = []
    for (column, check), grp in fc.groupby(["column", "check"], sort=True, dropna=False):
        # pandera reports a missing column under the model's name, not the column's.
        if check.startswith("column_in_dataframe"):
            column, check = str(grp["failure_case"].iloc[0]), MISSING_COLUMN
        violations.append(
            Violation(
                column=column,
                check=check,
                failing_rows=int(len(grp)),
                examples=_examples(df, grp["index"].tolist(), column, grp["failure_case"].tolist()),
            )
        )
    return ContractViolation(table, violations, source)
