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
from nbp_assets.weekly.vocabulary import ALL_SIGNALS, POSITIVE_SIGNALS

# Bump when the scoring code changes meaning (signals, formula, tie-break).
MODEL_CODE_VERSION = "nbp-1.0"

# The suitability rule's other setting per class: the financial health (MOD-040 score / 100)
# below which the class's products are unsuitable for the customer. 0 for a class: no rule.
HEALTH_THRESHOLD = "suitability_health_below"
# The rule's third setting per class: what an unknown financial health means (no MOD-040 row
# in the week's snapshot, or a NULL score). 1.0: the customer is treated as unsuitable (fails
# closed); 0.0: as suitable (fails open). Left out for a class, it is 1.0 where the class's
# rule suppresses (suitability 1.0) and 0.0 elsewhere: suitability fails closed by default.
WHEN_UNKNOWN = "suitability_when_unknown"
# Settings a configuration may leave out for a class (no suitability rule there): a
# configuration written before the rule existed still loads and ranks as it did.
OPTIONAL_SETTINGS = {"suitability": 0.0, HEALTH_THRESHOLD: 0.0, WHEN_UNKNOWN: 0.0}
SETTINGS = ALL_SIGNALS + (HEALTH_THRESHOLD, WHEN_UNKNOWN)

DEFAULT_WEIGHTS_FILE = Path(__file__).with_name("default_weights.csv")


@dataclass(frozen=True)
class Weights:
    """A validated weights matrix: rows are product classes, columns are SETTINGS (the
    signals' weights and the suitability rule's health threshold)."""

    matrix: pd.DataFrame
    source: str

    @property
    def model_version(self) -> str:
        return model_version(self.matrix)

    @property
    def signals_version(self) -> str:
        """The signals' code_version: the code, and the suitability rule when there is one
        (the rule decides which pairs are candidates at all)."""
        return signals_version(self.matrix)

    @property
    def has_suitability_rule(self) -> bool:
        return _has_suitability_rule(self.matrix)

    def as_long(self) -> pd.DataFrame:
        long = self.matrix.stack().rename("weight").reset_index()
        long = long.rename(columns={"level_1": "signal"})
        # a class without a suitability rule has no rows for it, as configured; a class whose
        # rule suppresses says what an unknown health means explicitly, even 0 (left out,
        # it would be 1: fail closed)
        inert = long["signal"].isin(list(OPTIONAL_SETTINGS)) & (long["weight"] == 0.0)
        suppressing = long["product_class"].map(_implicit_when_unknown(self.matrix)) == 1.0
        inert &= ~((long["signal"] == WHEN_UNKNOWN) & suppressing)
        return long[~inert].reset_index(drop=True)


def _implicit_when_unknown(matrix: pd.DataFrame) -> pd.Series:
    """suitability_when_unknown per class when the configuration leaves it out: 1.0 (fail
    closed) where the class's rule suppresses, 0.0 elsewhere."""
    suppressing = (matrix["suitability"] >= 1.0) & (matrix[HEALTH_THRESHOLD] > 0.0)
    return suppressing.astype("float64")


def _has_suitability_rule(matrix: pd.DataFrame) -> bool:
    return bool((matrix.reindex(columns=list(OPTIONAL_SETTINGS)).fillna(0.0) != 0.0).any(axis=None))


def _digest(matrix: pd.DataFrame, columns: list[str]) -> str:
    canon = matrix.loc[sorted(matrix.index), columns]
    text = canon.to_csv(float_format="%.6f", lineterminator="\n")
    return hashlib.sha256(f"{MODEL_CODE_VERSION}\n{text}".encode()).hexdigest()[:12]


def model_version(matrix: pd.DataFrame) -> str:
    """Code version + a digest of the weights, stable under row/column order. Without a
    suitability rule the digest covers nbp-1.0's columns only: such a configuration ranks
    exactly as before the rule existed, so it keeps its model_version. With a rule it covers
    every setting, suitability_when_unknown included (issue 22: the rule now fails closed and
    compares the health unrounded, so every configuration with a rule has a new version)."""
    columns = (
        list(SETTINGS) if _has_suitability_rule(matrix) else [s for s in ALL_SIGNALS if s not in OPTIONAL_SETTINGS]
    )
    return f"{MODEL_CODE_VERSION}+w{_digest(matrix, columns)}"


def signals_version(matrix: pd.DataFrame) -> str:
    if not _has_suitability_rule(matrix):
        return MODEL_CODE_VERSION
    return f"{MODEL_CODE_VERSION}+s{_digest(matrix, list(OPTIONAL_SETTINGS))}"


def weights_from_frame(df: pd.DataFrame, source: str = "weights") -> Weights:
    """Validate a long (product_class, signal, weight) table and pivot it."""
    df = validate(WeightsInput, df, table="weights", source=source)
    problems: list[Violation] = []
    unknown = df.loc[~df["signal"].isin(SETTINGS)]
    if len(unknown):
        problems.append(
            Violation(
                "signal", f"signal must be one of {list(SETTINGS)}", len(unknown), unknown.head(5).to_dict("records")
            )
        )
    matrix = _pivoted(df)
    problems += _coverage_problems(matrix) + _suitability_problems(matrix)
    if not problems:
        problems += _sum_problems(matrix)
    if problems:
        raise ContractViolation("weights", problems, source)
    return Weights(matrix=matrix.astype("float64").sort_index(), source=source)


def _pivoted(df: pd.DataFrame) -> pd.DataFrame:
    """One row per class, one column per setting; optional settings filled as documented."""
    matrix = df.pivot(index="product_class", columns="signal", values="weight")
    matrix = matrix.reindex(columns=list(SETTINGS))
    for setting, inert in OPTIONAL_SETTINGS.items():
        if setting != WHEN_UNKNOWN:
            matrix[setting] = matrix[setting].fillna(inert)
    # left out: fail closed where the class's rule suppresses, nothing to decide elsewhere
    matrix[WHEN_UNKNOWN] = matrix[WHEN_UNKNOWN].fillna(_implicit_when_unknown(matrix))
    return matrix


def _coverage_problems(matrix: pd.DataFrame) -> list[Violation]:
    """Every class present, with a weight for every signal."""
    problems = []
    missing_classes = sorted(set(PRODUCT_CLASSES) - set(matrix.index))
    if missing_classes:
        problems.append(
            Violation(
                "product_class",
                "every product class needs weights",
                len(missing_classes),
                [{"product_class": c} for c in missing_classes[:5]],
            )
        )
    gaps = matrix[matrix.isna().any(axis=1)]
    if len(gaps):
        problems.append(
            Violation(
                "signal",
                "every class needs a weight for every signal",
                len(gaps),
                [
                    {"product_class": c, "missing": [s for s in ALL_SIGNALS if pd.isna(gaps.at[c, s])]}
                    for c in gaps.index[:5]
                ],
            )
        )
    return problems


def _suitability_problems(matrix: pd.DataFrame) -> list[Violation]:
    """A suitability rule is whole (weight and threshold), and its unknown-health setting is 0
    or 1 on a class that has a rule."""
    problems = []
    half_rules = matrix[(matrix["suitability"] > 0.0) != (matrix[HEALTH_THRESHOLD] > 0.0)]
    if len(half_rules):
        problems.append(
            Violation(
                "signal",
                f"a suitability rule needs both a suitability weight and a {HEALTH_THRESHOLD} above 0 (or neither)",
                len(half_rules),
                [
                    {
                        "product_class": c,
                        "suitability": matrix.at[c, "suitability"],
                        HEALTH_THRESHOLD: matrix.at[c, HEALTH_THRESHOLD],
                    }
                    for c in half_rules.index[:5]
                ],
            )
        )
    unknown_bad = matrix[~matrix[WHEN_UNKNOWN].isin([0.0, 1.0])]
    if len(unknown_bad):
        problems.append(
            Violation(
                "weight",
                f"{WHEN_UNKNOWN} must be 1 (unknown health is unsuitable: fail closed) or 0 (fail open)",
                len(unknown_bad),
                [{"product_class": c, WHEN_UNKNOWN: matrix.at[c, WHEN_UNKNOWN]} for c in unknown_bad.index[:5]],
            )
        )
    orphan = matrix[(matrix[WHEN_UNKNOWN] > 0.0) & ~(matrix[HEALTH_THRESHOLD] > 0.0)]
    if len(orphan):
        problems.append(
            Violation(
                "signal",
                f"{WHEN_UNKNOWN} needs the class's suitability rule (suitability and {HEALTH_THRESHOLD} above 0)",
                len(orphan),
                [{"product_class": c, WHEN_UNKNOWN: matrix.at[c, WHEN_UNKNOWN]} for c in orphan.index[:5]],
            )
        )
    return problems


def _sum_problems(matrix: pd.DataFrame) -> list[Violation]:
    """The lifting weights of a class sum to at most 1, so a score stays in [0, 1]."""
    sums = matrix[list(POSITIVE_SIGNALS)].sum(axis=1)
    over = sums[sums > 1.0 + 1e-9]
    if not len(over):
        return []
    return [
        Violation(
            "weight",
            "positive-signal weights of a class must sum to <= 1",
            len(over),
            [{"product_class": c, "sum": round(float(s), 6)} for c, s in over.head(5).items()],
        )
    ]


def load_weights(path: str | Path | None = None) -> Weights:
    """Load weights from a CSV file (default: the packaged default weights)."""
    path = Path(path) if path else DEFAULT_WEIGHTS_FILE
    return weights_from_frame(pd.read_csv(path), source=str(path))
