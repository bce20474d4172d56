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
from nbp_assets.contract import offers as offer_models

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
    # The engine refuses a second row per key (small keyed tables such as the offers'; the
    # weekly tables are checked instead, see above).
    enforced_key: bool = False
    # The JSON field order of the table's rows as Kafka messages (empty: not on a topic).
    message_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.message_fields) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.name}: message fields {sorted(unknown)} are not columns")

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

    def ddl_template(self) -> str:
        """The DDL for the warehouses' replace_slice(ddl=...), which fill in {timestamp} per
        engine. The key is declared (and, in DuckDB, enforced) when enforced_key is set."""
        cols = ",\n    ".join(
            f"{c} {'{timestamp}' if t == 'TIMESTAMP' else t}{'' if self.nullable(c) else ' NOT NULL'}"
            for c, t in self.column_types().items()
        )
        if self.enforced_key:
            cols += f",\n    PRIMARY KEY ({', '.join(self.key)})"
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {cols}\n)"

    def dtypes(self) -> dict[str, str]:
        """pandas dtype of each column, as the model declares it."""
        return {name: str(column.dtype) for name, column in self.model.to_schema().columns.items()}

    def column_schema(self):
        """The UI's column schema (Dagster's dagster/column_schema metadata)."""
        import dagster as dg

        return dg.TableSchema(
            columns=[
                dg.TableColumn(name, sql_type, constraints=dg.TableColumnConstraints(nullable=self.nullable(name)))
                for name, sql_type in self.column_types().items()
            ]
        )


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


# The control group (docs/apps.md): the week's held-out active customers, written by the
# nbp_current step before it publishes; offer_outcomes compares them with the treated.
CONTROL_GROUP = _work(
    "control_group",
    models.ControlGroupAsset,
    ("party_id",),
    "Held-out active customers of the week: ranked and kept in the history, not published to nbp_current.",
)
CONTROL_OUTCOMES = _work(
    "control_outcomes",
    models.ControlOutcomesAsset,
    ("product_id",),
    "Acceptance of treated against held-out customers per product, with 95% intervals and their difference.",
)


# ----------------------------------------------------------------------------- offers
# The next-best-offer recipe's outputs (nbp_offers unless named). Their keys are enforced:
# DuckDB itself refuses a second row per event.


def _offers(name: str, model, key: tuple[str, ...], description: str, message_fields: tuple[str, ...] = ()) -> Table:
    return Table(name, model, key, "", description, enforced_key=True, message_fields=message_fields)


NEXT_BEST_OFFER = _offers(
    "nbp_offers.next_best_offer",
    offer_models.NextBestOfferAsset,
    ("ACTIVITY_ID",),
    "The recipe's NEXT_BEST_OFFER: one row per offered event, with its lineage and micro-batch.",
    # on the topic: the recipe's fields, then the lineage (no BATCH_KEY: the stream has none)
    message_fields=(
        "ACTIVITY_ID",
        "CUSTOMER_ID",
        "PROPENSITY_TO_BUY",
        "ACTIVITY_TYPE",
        "INCOME",
        "FICO",
        "OFFER_ID",
        "EVENT_TIME",
        "RULES_VERSION",
        "RULE_PRIORITY",
        "CUSTOMER_VALID_FROM",
    ),
)
NEXT_BEST_OFFER_LOOKUP = _offers(
    "product_intelligence.next_best_offer_lookup",
    offer_models.NextBestOfferLookupAsset,
    ("ACTIVITY_ID",),
    "The recipe's NEXT_BEST_OFFER_LOOKUP: exactly its nine columns, in its order.",
    message_fields=tuple(offer_models.NextBestOfferLookupAsset.to_schema().columns),
)
# NEXT_BEST_OFFER as the Kafka stream processor produced it (BATCH_KEY 'kafka'), sunk by the sink.
NEXT_BEST_OFFER_STREAM = _offers(
    "nbp_offers.next_best_offer_stream",
    offer_models.NextBestOfferAsset,
    ("ACTIVITY_ID",),
    "NEXT_BEST_OFFER as produced by the Kafka stream processor, moved into the warehouse by its sink.",
)
NEXT_BEST_OFFER_PENDING = _offers(
    "nbp_offers.next_best_offer_pending",
    offer_models.NextBestOfferPendingAsset,
    ("ACTIVITY_ID",),
    "Events waiting for their customer's record, with the micro-batch that first saw each.",
)
NEXT_BEST_OFFER_CLAIMS = _offers(
    "nbp_offers.next_best_offer_claims",
    offer_models.NextBestOfferClaimsAsset,
    ("BATCH_KEY", "ACTIVITY_ID"),
    "The events each micro-batch set out to offer.",
)


# ----------------------------------------------------------------------------- model registry
# Small keyed tables (a row per model_version, simulation or weight), written in the weekly
# transaction or by `simulate` / `approve`: docs/governance.md.


def _registry(name: str, model, key: tuple[str, ...], description: str) -> Table:
    return Table(f"product_intelligence.{name}", model, key, "", description)


MODEL_VERSIONS = _registry(
    "model_versions",
    models.ModelVersionsAsset,
    ("model_version",),
    "One row per model_version: code version, weights digest, SQL digest, weeks ranked, approval.",
)
MODEL_WEIGHTS = _registry(
    "model_weights",
    models.ModelWeightsAsset,
    ("model_version", "product_class", "signal"),
    "Every weight and suitability setting of each model_version (live or challenger), long format.",
)
SIMULATIONS = _registry(
    "simulations",
    models.SimulationsAsset,
    ("simulation_id",),
    "Every challenger simulation: who, when, the challenger, the week and the results.",
)
