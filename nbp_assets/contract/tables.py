"""One declaration per output table: its pandera model, key and partition column. The
columns, SQL types, DDL (per engine) and the UI's column schema all derive from it.

Key columns are not enforced by the engines' constraints (Snowflake does not enforce them,
and in DuckDB a primary-key index on a 30M-row weekly history costs gigabytes of memory):
each week is checked for key uniqueness by a blocking check before it is committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandera.pandas as pa

from nbp_assets.contract import assets as models

# pandera dtype -> SQL type both engines accept (timestamps are zone-naive: bank wall time)
_SQL_TYPES = {
    "object": "VARCHAR",
    "str": "VARCHAR",
    "float64": "DOUBLE",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "Int64": "BIGINT",
    "bool": "BOOLEAN",
    "datetime64[ns]": "TIMESTAMP",
}
_DIALECT_TYPES = {"snowflake": {"TIMESTAMP": "TIMESTAMP_NTZ"}, "duckdb": {}}


@dataclass(frozen=True)
class Table:
    name: str  # schema.table
    model: type[pa.DataFrameModel]
    key: tuple[str, ...]
    partition_column: str  # the column a week's slice is selected and replaced by
    description: str
    sql_types: dict[str, str] = field(default_factory=dict)  # where the seed fixes a type

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    @property
    def columns(self) -> list[str]:
        return list(self.model.to_schema().columns)

    def column_types(self) -> dict[str, str]:
        out = {}
        for name, column in self.model.to_schema().columns.items():
            out[name] = self.sql_types.get(name) or _SQL_TYPES[str(column.dtype)]
        return out

    def nullable(self, column: str) -> bool:
        return bool(self.model.to_schema().columns[column].nullable)

    def ddl(self, dialect: str) -> str:
        swap = _DIALECT_TYPES[dialect]
        cols = ",\n    ".join(
            f"{c} {swap.get(t, t)}{'' if self.nullable(c) else ' NOT NULL'}" for c, t in self.column_types().items()
        )
        if dialect == "snowflake":  # informational there (not enforced): documents the key for readers
            cols += f",\n    PRIMARY KEY ({', '.join(self.key)})"
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {cols}\n)"


def _work(name: str, model, key: tuple[str, ...], description: str) -> Table:
    return Table(f"nbp_work.{name}", model, ("week_start", *key), "week_start", description)


CUSTOMERS = _work("customers", models.CustomersAsset, ("party_id",), "Customers as of the week's close, all statuses.")
ACTIVITY = _work("activity", models.ActivityAsset, ("activity_id",), "The week's activity events.")
PRODUCTS = _work(
    "products",
    models.ProductsAsset,
    ("product_id",),
    "The product register in force at the week's evaluation date, read once per week.",
)
ELIGIBILITY = _work(
    "eligibility",
    models.EligibilityAsset,
    ("party_id", "product_id"),
    "ELIGIBLE pairs of active customers and registered products.",
)
SIGNALS = _work("signals", models.SignalsAsset, ("party_id", "product_id"), "Ranking signals per candidate pair.")
WITHHELD = _work(
    "withheld",
    models.WithheldAsset,
    ("party_id", "product_id"),
    "Why not: each candidate pair the suitability rule withheld this week, with its rule, "
    "the MOD-040 health score as delivered (NULL: unknown) and the class's threshold.",
)
SCORES = _work("scores", models.ScoresAsset, ("party_id", "product_id"), "Score and primary_signal per candidate pair.")
# The seed's DDL: NUMBER(8,6) (DECIMAL(8,6) is the same type in both engines) and TIMESTAMP_NTZ.
HISTORY = Table(
    "product_intelligence.next_best_product",
    models.NbpRankedAsset,
    ("party_id", "rank", "evaluated_at"),
    "evaluated_at",
    "Weekly next-best-product history: top 3 per active customer.",
    {"score": "DECIMAL(8,6)"},
)
