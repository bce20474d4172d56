"""Load a user's own input files and prove they meet the data contract before any use.

A folder holds one file per source table, named after the table: `customers.csv` or
`customers.parquet`, and so on for every table in SOURCE_TABLES, plus optionally the
ranking weights as `weights.csv` / `weights.parquet` and the next-best-offer recipe's
`offers` and `offer_rules` (OFFER_SOURCE_TABLES). Other files are ignored.

Everything is checked before anything is returned, and every problem found in every file
is reported at once in one LoadError, so a user fixes their extract in one round trip.

CSV text is parsed here rather than by pandas' type guessing, because guessing is unsafe
for a bank's inputs: `astype(bool)` turns the text "false" into True, "1.5" can slip into
an integer column as 1, and "01/02/2024" is a different day in London and New York.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.csv as pa_csv

from nbp_assets.contract.inputs import SOURCE_TABLES, WeightsInput
from nbp_assets.contract.offers import OFFER_SOURCE_TABLES
from nbp_assets.contract.validation import MAX_EXAMPLES, ContractViolation, Violation, plain_value, validate
from nbp_assets.model.weights import weights_from_frame

WEIGHTS_TABLE = "weights"
FORMATS = (".csv", ".parquet")

# (table, column, referenced table): a row pointing at a party or product the bank does
# not know would be ranked, offered or counted for someone who does not exist.
REFERENCES: tuple[tuple[str, str, str], ...] = (
    *((t, "product_id", "product_register") for t in ("eligibility", "holdings", "offer_history")),
    *(
        (t, "party_id", "customers")
        for t in (
            "eligibility",
            "holdings",
            "churn_health",
            "customer_rote",
            "behaviour",
            "offer_history",
            "activity",
        )
    ),
    ("offer_rules", "offer_id", "offers"),
)

# Input models by file stem: the weekly engine's tables and the offer recipe's optional ones.
_MODELS = {**{t: model for t, (model, _) in SOURCE_TABLES.items()}, **OFFER_SOURCE_TABLES}

# Columns shown next to an offending value so a person can find the row in their extract.
_ID_COLUMNS = ("party_id", "product_id", "as_of_date", "offer_id", "activity_id", "product_class", "signal")

_BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False}
_INTEGER_TEXT = r"[+-]?\d{1,18}"  # 18 digits always fit in int64
_DECIMAL_TEXT = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"  # no "nan", "inf", "1,000"
_ISO_DATETIME_TEXT = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"


class LoadError(ValueError):
    """The folder cannot be used: one block per file, each naming column, check and rows."""

    def __init__(self, problems: list[ContractViolation]):
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [
            f"input files break the data contract ({len(self.problems)} file(s) with problems; "
            "row N is the N-th data row, i.e. line N+1 of a CSV file):"
        ]
        for problem in self.problems:
            lines.append("")
            lines.append(f"{problem.source}  [table '{problem.table}']")
            for v in problem.violations:
                where = "" if v.column.startswith("(") else f"column '{v.column}': "
                if v.failing_rows == 0 and not v.examples:
                    lines.append(f"  - {where}{v.check}")
                    continue
                lines.append(f"  - {where}{v.check} [{v.failing_rows} row(s)], e.g.")
                lines.extend(f"      {_render_example(ex)}" for ex in v.examples)
        return "\n".join(lines)


@dataclass(frozen=True)
class LoadedInputs:
    """A user's inputs, coerced to the contract's types and proven consistent."""

    tables: dict[str, pd.DataFrame]  # keyed by SOURCE_TABLES name
    weights: pd.DataFrame | None  # long (product_class, signal, weight), if the folder had weights
    files: dict[str, Path]  # table (and "weights") -> the file it came from
    missing_optional: list[str]  # optional tables the folder did not provide


def load_directory(path: str | Path) -> LoadedInputs:
    """Read, type and check every input file in `path`; raise LoadError listing all problems."""
    folder = Path(path)
    if not folder.is_dir():
        raise LoadError([_file_problem("(all)", str(folder), "(folder)", "is not a folder that exists")])

    problems: list[ContractViolation] = []
    files, missing_optional = _find_files(folder, problems)

    tables: dict[str, pd.DataFrame] = {}
    readable: dict[str, pd.DataFrame] = {}  # also tables that broke their contract
    for table, file in files.items():
        if table == WEIGHTS_TABLE:
            continue
        validated, typed = _load_table(table, _MODELS[table], file, problems)
        if validated is not None:
            tables[table] = validated
        if typed is not None:
            readable[table] = validated if validated is not None else typed

    problems.extend(_reference_problems(readable, files))

    weights = None
    if WEIGHTS_TABLE in files:
        weights = _load_weights(files[WEIGHTS_TABLE], problems)

    if problems:
        raise LoadError(_one_block_per_file(problems))
    return LoadedInputs(
        tables={t: df.reset_index(drop=True) for t, df in tables.items()},
        weights=weights,
        files=files,
        missing_optional=missing_optional,
    )


def _find_files(folder: Path, problems: list[ContractViolation]) -> tuple[dict[str, Path], list[str]]:
    wanted = {t: required for t, (_, required) in SOURCE_TABLES.items()}
    wanted[WEIGHTS_TABLE] = False
    wanted.update(dict.fromkeys(OFFER_SOURCE_TABLES, False))
    files: dict[str, Path] = {}
    missing_optional: list[str] = []
    for table, required in wanted.items():
        candidates = [folder / f"{table}{ext}" for ext in FORMATS]
        present = [c for c in candidates if c.is_file()]
        if len(present) > 1:
            # Two versions of one table: picking either silently could rank on stale data.
            problems.append(_file_problem(table, " and ".join(map(str, present)), "(file)",
                                          "both a CSV and a Parquet file exist; keep exactly one"))
        elif present:
            files[table] = present[0]
        elif required:
            problems.append(_file_problem(table, str(folder), "(file)",
                                          f"required table is missing: expected "
                                          f"{candidates[0].name} or {candidates[1].name}"))
        elif table != WEIGHTS_TABLE and table not in OFFER_SOURCE_TABLES:  # absent: the recipe's own
            missing_optional.append(table)
    return files, missing_optional


def _load_table(table: str, model: type[pa.DataFrameModel], file: Path, problems: list[ContractViolation]
                ) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(validated frame or None, best-effort typed frame or None if unreadable).

    Problems are appended to `problems`; the typed frame still serves referential checks
    so a user learns about orphaned rows in the same round trip.
    """
    source = str(file)
    raw, read_problem = _read(file)
    if read_problem is not None:
        problems.append(_file_problem(table, source, "(file)", read_problem))
        return None, None

    schema = model.to_schema()
    typed, parse_violations, unparseable = _to_declared_types(raw, schema)
    violations = _missing_columns(raw, schema) + parse_violations

    # Rows already reported as unparseable are left out so the contract check does not
    # report the same cell a second time as a null or a wrong dtype.
    try:
        validated = validate(model, typed.loc[~unparseable], table, source=source)
    except ContractViolation as exc:
        violations += _without_noise(exc.violations)
        validated = None

    if violations:
        problems.append(ContractViolation(table, violations, source))
        return None, typed
    return validated, typed


def _read(file: Path) -> tuple[pd.DataFrame | None, str | None]:
    """The file as a frame indexed by data row number (1 = first data row), or why not."""
    try:
        if file.suffix == ".csv":
            header = _csv_header(file)
            duplicated = sorted({name for name in header if header.count(name) > 1})
            if duplicated:
                # The contract would read one copy and silently ignore the other.
                return None, f"column(s) {duplicated} appear more than once in the header"
            df = _read_csv_as_text(file, header)
        else:
            df = pd.read_parquet(file)
            if any(name is not None for name in df.index.names):
                df = df.reset_index()  # a pandas-written file may keep a key column as the index
    except (OSError, ValueError) as exc:  # unreadable, ragged, not UTF-8, not Parquet
        kind = "CSV" if file.suffix == ".csv" else "Parquet"
        return None, f"could not be read as {kind}: {exc}"
    df.index = pd.RangeIndex(1, len(df) + 1)
    return df, None


def _csv_header(file: Path) -> list[str]:
    with file.open(newline="", encoding="utf-8-sig") as handle:  # Excel writes a byte-order mark
        header = next(csv.reader(handle), None)
    if not header:
        raise ValueError("the file is empty; the first line must name the columns")
    return header


def _read_csv_as_text(file: Path, header: list[str]) -> pd.DataFrame:
    """Every cell as text, only empty cells null ("NA" stays the text "NA").

    The same contract as pandas' read_csv(dtype=str, keep_default_na=False,
    na_values=[""]), but Arrow's reader also rejects rows with too few or too many
    cells, where pandas would pad with nulls or turn the extra cells into an index.
    """
    table = pa_csv.read_csv(
        file,
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pyarrow.string() for name in header},
            null_values=[""],
            strings_can_be_null=True,
        ),
    )
    return table.to_pandas()


def _missing_columns(raw: pd.DataFrame, schema: pa.DataFrameSchema) -> list[Violation]:
    # Reported here because pandera names the model, not the column, when one is absent.
    return [
        Violation(name, "required column is missing", 0, [])
        for name, column in schema.columns.items()
        if column.required and name not in raw.columns
    ]


def _to_declared_types(raw: pd.DataFrame, schema: pa.DataFrameSchema
                       ) -> tuple[pd.DataFrame, list[Violation], pd.Series]:
    """Convert text columns to the contract's dtypes strictly; report what does not parse."""
    typed = raw.copy()
    violations: list[Violation] = []
    unparseable = pd.Series(False, index=raw.index)
    for name, column in schema.columns.items():
        if name not in raw.columns:
            continue
        kind = _kind(column.dtype)
        if kind is None:
            continue
        series = raw[name]
        if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
            converted, bad, expected = _parse_text(series, kind)
        else:
            converted, bad, expected = _check_typed(series, kind)
        typed[name] = converted
        if bad.any():
            violations.append(Violation(name, expected, int(bad.sum()), _examples(raw, bad, name)))
            unparseable |= bad
    return typed, violations, unparseable


def _kind(dtype) -> str | None:
    name = str(dtype)
    if name == "bool":
        return "bool"
    if name.lower().startswith("int"):
        return "int"
    if name.startswith("float"):
        return "float"
    if name.startswith("datetime64"):
        return "datetime"
    return None  # text columns stay text; the contract checks their values


def _parse_text(series: pd.Series, kind: str) -> tuple[pd.Series, pd.Series, str]:
    """(converted, bad mask, what was expected) for a column of text; empty text is null."""
    present = series.notna()
    text = series.where(present, "").astype(str)
    if kind == "bool":
        converted = text.str.lower().map(_BOOLEAN_TEXT).astype("boolean")
        return converted, present & converted.isna(), "boolean expected (true/false/1/0, any case)"
    if kind == "int":
        ok = text.str.fullmatch(_INTEGER_TEXT)
        # The nullable backend keeps 18-digit ids exact instead of passing through float64.
        converted = pd.to_numeric(text.where(ok), errors="coerce", dtype_backend="numpy_nullable")
        converted = converted.astype("Int64")
        return converted, present & ~ok, "whole number expected"
    if kind == "float":
        ok = text.str.fullmatch(_DECIMAL_TEXT)
        converted = pd.to_numeric(text.where(ok), errors="coerce").astype("float64")
        return converted, present & ~ok, "decimal number expected"
    ok = text.str.fullmatch(_ISO_DATETIME_TEXT)
    # The format check alone lets through 2024-02-30 and years beyond datetime64[ns].
    converted = pd.to_datetime(text.where(ok), format="ISO8601", errors="coerce")
    return converted, present & converted.isna(), (
        "ISO date or timestamp without time zone expected (YYYY-MM-DD[ HH:MM[:SS]]), "
        "between 1677-09-22 and 2262-04-11; leave open-ended dates empty"
    )


def _check_typed(series: pd.Series, kind: str) -> tuple[pd.Series, pd.Series, str]:
    """Typed (Parquet) columns: catch what the contract's coercion would get silently wrong."""
    nothing = pd.Series(False, index=series.index)
    if kind == "bool" and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        bad = series.notna() & ~series.isin([0, 1])  # astype(bool) would call 2 True
        return series.where(~bad).astype("boolean"), bad, "boolean expected (0 or 1)"
    if kind == "datetime" and isinstance(series.dtype, pd.DatetimeTZDtype):
        return series, series.notna(), "timestamp without time zone expected (TIMESTAMP_NTZ)"
    return series, nothing, ""


def _without_noise(violations: list[Violation]) -> list[Violation]:
    """Drop or merge pandera's echoes of problems, so each is reported once in plain words.

    Missing columns are reported by the loader itself; a null in a non-nullable boolean
    column also fails dtype coercion, which says nothing more than "not_nullable"; a
    duplicated key arrives once per key column with the same rows.
    """
    null_counts = {v.column: v.failing_rows for v in violations if v.check == "not_nullable"}
    kept: list[Violation] = []
    key_columns: list[str] = []
    for v in violations:
        if v.check.startswith("column_in_dataframe") or v.check == "required column is missing":
            continue
        if v.check.startswith(("coerce_dtype", "dtype(")) and null_counts.get(v.column) == v.failing_rows:
            continue
        if v.check == "multiple_fields_uniqueness":
            if not key_columns:
                kept.append(v)  # placeholder, replaced below with the whole key
            key_columns.append(v.column)
            continue
        kept.append(v)
    if key_columns:
        first = next(i for i, v in enumerate(kept) if v.check == "multiple_fields_uniqueness")
        dup = kept[first]
        kept[first] = Violation(" + ".join(key_columns), "duplicate key: these columns must be unique together",
                                dup.failing_rows, dup.examples)
    return kept


def _reference_problems(tables: dict[str, pd.DataFrame], files: dict[str, Path]) -> list[ContractViolation]:
    """Rows pointing at a party or product missing from the master tables.

    Ids are compared as text, as the contract declares them, so a Parquet file that
    stored ids as numbers is compared the same way before and after coercion. A table
    whose key column is absent is skipped: its missing column is already reported.
    """
    by_table: dict[str, list[Violation]] = {}
    for table, column, referenced in REFERENCES:
        if table not in tables or referenced not in tables:
            continue
        if column not in tables[table] or column not in tables[referenced]:
            continue
        frame = tables[table]
        ids = _as_text(frame[column])
        orphan = ids.notna() & ~ids.isin(_as_text(tables[referenced][column]).unique())
        if orphan.any():
            by_table.setdefault(table, []).append(
                Violation(column, f"{column} must exist in {referenced} ({files[referenced].name})",
                          int(orphan.sum()), _examples(frame, orphan, column))
            )
    return [ContractViolation(t, v, str(files[t])) for t, v in by_table.items()]


def _as_text(ids: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(ids, skipna=True) in ("string", "empty"):
        return ids
    return ids.astype(str).where(ids.notna())


def _load_weights(file: Path, problems: list[ContractViolation]) -> pd.DataFrame | None:
    """The validated long weights table; weights_from_frame owns the business rules."""
    raw, read_problem = _read(file)
    if read_problem is not None:
        problems.append(_file_problem(WEIGHTS_TABLE, str(file), "(file)", read_problem))
        return None
    schema = WeightsInput.to_schema()
    typed, parse_violations, _ = _to_declared_types(raw, schema)
    violations = _missing_columns(raw, schema) + parse_violations
    if not violations:
        try:
            return weights_from_frame(typed, source=str(file)).as_long()
        except ContractViolation as exc:
            violations = _without_noise(exc.violations)
    problems.append(ContractViolation(WEIGHTS_TABLE, violations, str(file)))
    return None


def _one_block_per_file(problems: list[ContractViolation]) -> list[ContractViolation]:
    merged: dict[tuple[str, str | None], list[Violation]] = {}
    for p in problems:
        merged.setdefault((p.table, p.source), []).extend(p.violations)
    return [ContractViolation(table, violations, source) for (table, source), violations in merged.items()]


def _file_problem(table: str, source: str, column: str, what: str) -> ContractViolation:
    return ContractViolation(table, [Violation(column, what, 0, [])], source)


def _examples(frame: pd.DataFrame, mask: pd.Series, column: str) -> list[dict]:
    """The first failing rows: row number, identifying columns and the offending value."""
    shown = [c for c in _ID_COLUMNS if c in frame.columns and c != column] + [column]
    sample = frame.loc[mask, shown].head(MAX_EXAMPLES)
    return [
        {"row": int(row), **{k: plain_value(v) for k, v in record.items()}}
        for row, record in zip(sample.index, sample.to_dict("records"))
    ]


def _render_example(example: dict) -> str:
    values = ", ".join(f"{k}={v!r}" for k, v in example.items() if k != "row")
    row = example.get("row")
    return f"row {row}: {values}" if row is not None else values
