"""Ranking weights per product class, and the model_version they yield.

The weights are the model's tunable part; the scoring code is the fixed part. Both go
into model_version, so a change of either gives every output row a new version and the
Dagster UI marks the governed assets as changed (model_version is their code_version).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nbp_assets.contract.inputs import PRODUCT_CLASSES, WeightsInput
from nbp_assets.contract.validation import ContractViolation, Violation, validate

# Bump when the scoring code changes meaning (signals, formula, tie-break).
MODEL_CODE_VERSION = "nbp-1.0"

# Signals that lift a product; their weights per class must sum to at most 1, so a score
# built from [0, 1] signals stays in [0, 1] without clipping hiding anything.
POSITIVE_SIGNALS = (
    "relationship_gap",
    "churn_risk",
    "rote_uplift",
    "idle_cash",
    "regular_fx",
    "spend_affinity",
)
# Signals that push a product down: score is multiplied by (1 - weight * signal).
PENALTY_SIGNALS = ("cooling_off", "lifecycle")
ALL_SIGNALS = POSITIVE_SIGNALS + PENALTY_SIGNALS

DEFAULT_WEIGHTS_FILE = Path(__file__).with_name("default_weights.csv")


@dataclass(frozen=True)
class Weights:
    """A validated weights matrix: rows are product classes, columns are ALL_SIGNALS."""

    matrix: pd.DataFrame
    source: str

    @property
    def model_version(self) -> str:
        return model_version(self.matrix)

    def as_long(self) -> pd.DataFrame:
        long = self.matrix.stack().rename("weight").reset_index()
        return long.rename(columns={"level_1": "signal"})


def model_version(matrix: pd.DataFrame) -> str:
    """Code version + a digest of the weights, stable under row/column order."""
    canon = matrix.loc[sorted(matrix.index), list(ALL_SIGNALS)]
    text = canon.to_csv(float_format="%.6f", lineterminator="\n")
    digest = hashlib.sha256(f"{MODEL_CODE_VERSION}\n{text}".encode()).hexdigest()[:12]
    return f"{MODEL_CODE_VERSION}+w{digest}"


def weights_from_frame(df: pd.DataFrame, source: str = "weights") -> Weights:
    """Validate a long (product_class, signal, weight) table and pivot it."""
    df = validate(WeightsInput, df, table="weights", source=source)
    problems: list[Violation] = []
    unknown = df.loc[~df["signal"].isin(ALL_SIGNALS)]
    if len(unknown):
        problems.append(
            Violation("signal", f"signal must be one of {list(ALL_SIGNALS)}", len(unknown),
                      unknown.head(5).to_dict("records"))
        )
    matrix = df.pivot(index="product_class", columns="signal", values="weight")
    matrix = matrix.reindex(columns=list(ALL_SIGNALS))
    missing_classes = sorted(set(PRODUCT_CLASSES) - set(matrix.index))
    if missing_classes:
        problems.append(
            Violation("product_class", "every product class needs weights", len(missing_classes),
                      [{"product_class": c} for c in missing_classes[:5]])
        )
    gaps = matrix[matrix.isna().any(axis=1)]
    if len(gaps):
        problems.append(
            Violation("signal", "every class needs a weight for every signal", len(gaps),
                      [{"product_class": c, "missing": [s for s in ALL_SIGNALS if pd.isna(gaps.at[c, s])]}
                       for c in gaps.index[:5]])
        )
    if not problems:
        sums = matrix[list(POSITIVE_SIGNALS)].sum(axis=1)
        over = sums[sums > 1.0 + 1e-9]
        if len(over):
            problems.append(
                Violation("weight", "positive-signal weights of a class must sum to <= 1", len(over),
                          [{"product_class": c, "sum": round(float(s), 6)} for c, s in over.head(5).items()])
            )
    if problems:
        raise ContractViolation("weights", problems, source)
    return Weights(matrix=matrix.astype("float64").sort_index(), source=source)


def load_weights(path: str | Path | None = None) -> Weights:
    """Load weights from a CSV file (default: the packaged default weights)."""
    path = Path(path) if path else DEFAULT_WEIGHTS_FILE
    return weights_from_frame(pd.read_csv(path), source=str(path))
