"""Load a user's own input files and prove they meet the data contract before any use.

A folder holds one file per source table, named after the table: `customers.csv` or
`customers.parquet`, and so on for every table in SOURCE_TABLES, plus optionally the
ranking weights as `weights.csv` / `weights.parquet` and the next-best-offer recipe's
`offers` and `offer_rules` (OFFER_SOURCE_TABLES). Other files are ignored.

Everything is checked before anything is returned, and every problem found in every file
is reported at once in one LoadError, so a user fixes their extract in one round trip.
`store` then writes the whole folder as one unit: the warehouse has the previous load's
tables or this one's, never some of each, even if the process is killed midway.

CSV text is parsed here rather than by pandas' type guessing, because guessing is unsafe
for a bank's inputs: `astype(bool)` turns the text "false" into True, "1.5" can slip into
an integer column as 1, and "01/02/2024" is a different day in London and New York.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.csv as pa_csv

from nbp_assets.contract.inputs import SOURCE_TABLES, WeightsInput
from nbp_assets.contract.offers import OFFER_SOURCE_TABLES
from nbp_assets.contract.validation import MAX_EXAMPLES, ContractViolation, Violation, plain_value, validate
from nbp_assets.offers.rules import rules_from_frame
from nbp_assets.weekly.weights import Weights, weights_from_frame

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

# Versioned masters (SCD type 2) and their key: a version is valid from valid_from up to, not
# including, valid_to (NULL: still valid), and at most one version of a key on any day, or a
# week would rank a customer twice or a product under two lifecycle stages.
VERSIONED: dict[str, str] = {"customers": "party_id", "product_register": "product_id"}

# Snapshot tables a week cannot run without: the weeks a folder covers are the ones they all cover.
REQUIRED_SNAPSHOTS = tuple(
    t for t, (model, required) in SOURCE_TABLES.items() if required and "as_of_date" in model.to_schema().columns
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

    if "offer_rules" in tables:  # the rule's own consistency, by the check offer_tables_job runs
        try:
            rules_from_frame(tables["offer_rules"], source=str(files["offer_rules"]), row_numbers=True)
        except ContractViolation as exc:
            problems.append(exc)
            del tables["offer_rules"]
    problems.extend(_reference_problems(readable, files))
    problems.extend(_version_problems(readable, files))

    weights = None
    if WEIGHTS_TABLE in files:
        checked = _load_weights(files[WEIGHTS_TABLE], problems)
        weights = checked.as_long() if checked is not None else None

    if problems:
        raise LoadError(_one_block_per_file(problems))
    return LoadedInputs(
        tables={t: df.reset_index(drop=True) for t, df in tables.items()},
        weights=weights,
        files=files,
        missing_optional=missing_optional,
    )


def store(
    warehouse,
    loaded: LoadedInputs,
    weights_file: Path | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write a checked folder to the warehouse's source schema as one unit; rows per table.

    All its tables are replaced in one warehouse transaction (`replace_tables`), and an
    optional source table the folder does not have is removed in the same transaction: the
    new set has no such table, and the old one would be stale next to the new tables. Tables
    the folder does not name (the offer recipe's, when absent) are left as they are.

    So a load killed at any moment leaves the previous set or this one, and the weekly run
    never sees a mix: there is no half-finished load for it to refuse. (On Snowflake, where
    DDL commits by itself, a table that did not exist before a load killed midway is left
    with one placeholder row, which the weekly run rejects; see
    SnowflakeWarehouse.replace_tables.) The weights, a file and not a table, are written to
    a temporary file first and renamed into place right after the commit: the rename is
    atomic, so weights_file is always a whole file, old or new, but a kill in the instant
    between commit and rename leaves the new tables with the previous weights.
    `progress(table, rows)` is called as each table is written, before the commit."""
    from nbp_assets.core.warehouse import SOURCE_SCHEMA

    tables = {f"{SOURCE_SCHEMA}.{name}": df for name, df in loaded.tables.items()}
    remove = tuple(f"{SOURCE_SCHEMA}.{name}" for name in loaded.missing_optional)
    report = (lambda table, rows: progress(table.split(".", 1)[1], rows)) if progress else None
    staged_weights = None
    if loaded.weights is not None and weights_file is not None:
        staged_weights = weights_file.with_name(f".{weights_file.name}.{os.getpid()}.tmp")
        weights_file.parent.mkdir(parents=True, exist_ok=True)
        loaded.weights.to_csv(staged_weights, index=False)
    try:
        with warehouse.session() as wh:  # one login for the whole load (Snowflake)
            rows = wh.replace_tables(tables, remove=remove, progress=report)
        if staged_weights is not None:
            os.replace(staged_weights, weights_file)
            staged_weights = None
    finally:
        if staged_weights is not None:
            staged_weights.unlink(missing_ok=True)
    return {table.split(".", 1)[1]: n for table, n in rows.items()}


def next_steps(tables: dict[str, pd.DataFrame], latest_closed: str) -> list[str]:
    """What to run after a load: the latest week the folder's snapshots cover (clipped to the
    weeks that can run: FIRST_WEEK to `latest_closed`), and the earlier weeks it covers.

    A week uses the latest snapshot dated before its evaluation date, and only if it is from
    that week (NBP_MAX_SNAPSHOT_AGE_DAYS, 7 by default): a snapshot dated d serves the week
    of Monday d - weekday. So the folder covers the weeks from the latest first snapshot to
    the earliest last snapshot of the snapshot tables a week needs."""
    from nbp_assets.core.partitions import FIRST_WEEK

    firsts, lasts = [], []
    for name in REQUIRED_SNAPSHOTS:
        dates = tables[name]["as_of_date"].dropna() if name in tables else pd.Series(dtype="datetime64[ns]")
        if dates.empty:
            return [
                f"next: no week can be ranked yet: {name} has no snapshot (a week needs one of each of "
                f"{', '.join(REQUIRED_SNAPSHOTS)} dated before its evaluation date)"
            ]
        firsts.append(dates.min().date())
        lasts.append(dates.max().date())

    def week(day: date) -> str:
        monday = (day - timedelta(days=day.weekday())).isoformat()
        return min(max(monday, FIRST_WEEK), latest_closed)

    if min(lasts) < date.fromisoformat(FIRST_WEEK):
        return [
            f"next: no week can be ranked on these files: their latest snapshots (up to {min(lasts)}) "
            f"are from before the first week the engine runs ({FIRST_WEEK})"
        ]
    first, last = week(max(firsts)), week(min(lasts))
    lines = [f"next: python -m nbp_assets materialize --week {last}"]
    if first < last:
        lines.append(f"      (earlier weeks: python -m nbp_assets backfill {first} {last})")
    return lines


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
            problems.append(
                _file_problem(
                    table,
                    " and ".join(map(str, present)),
                    "(file)",
                    "both a CSV and a Parquet file exist; keep exactly one",
                )
            )
        elif present:
            files[table] = present[0]
        elif required:
            problems.append(
                _file_problem(
                    table,
                    str(folder),
                    "(file)",
                    f"required table is missing: expected {candidates[0].name} or {candidates[1].name}",
                )
            )
        elif table != WEIGHTS_TABLE and table not in OFFER_SOURCE_TABLES:  # absent: the recipe's own
            missing_optional.append(table)
    return files, missing_optional


def _load_table(
    table: str, model: type[pa.DataFrameModel], file: Path, problems: list[ContractViolation]
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


def _to_declared_types(
    raw: pd.DataFrame, schema: pa.DataFrameSchema
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
    return (
        converted,
        present & converted.isna(),
        (
            "ISO date or timestamp without time zone expected (YYYY-MM-DD[ HH:MM[:SS]]), "
            "between 1677-09-22 and 2262-04-11; leave open-ended dates empty"
        ),
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
        kept[first] = Violation(
            " + ".join(key_columns),
            "duplicate key: these columns must be unique together",
            dup.failing_rows,
            dup.examples,
        )
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
                Violation(
                    column,
                    f"{column} must exist in {referenced} ({files[referenced].name})",
                    int(orphan.sum()),
                    _examples(frame, orphan, column),
                )
            )
    return [ContractViolation(t, v, str(files[t])) for t, v in by_table.items()]


def _version_problems(tables: dict[str, pd.DataFrame], files: dict[str, Path]) -> list[ContractViolation]:
    """Versions of a versioned master that end before they start or overlap, per table.

    Also run on a table that broke its contract (its other problems are reported too), but
    only on rows whose dates parsed: a missing or unreadable date is already reported."""
    out = []
    for table, key in VERSIONED.items():
        frame = tables.get(table)
        if frame is None or not {key, "valid_from", "valid_to"} <= set(frame.columns):
            continue
        if not all(pd.api.types.is_datetime64_dtype(frame[c]) for c in ("valid_from", "valid_to")):
            continue
        violations = _version_violations(frame, key)
        if violations:
            out.append(ContractViolation(table, violations, str(files[table])))
    return out


def _version_violations(versions: pd.DataFrame, key: str) -> list[Violation]:
    """valid_to before valid_from, and overlapping versions of one key (the rows on both sides).

    Versions are sorted by key and start; a version overlaps an earlier one when it starts
    before the latest end so far of its key (NULL valid_to: never ends). One sort, no pairs."""
    shown = [key, "valid_from", "valid_to"]
    start, end = versions["valid_from"], versions["valid_to"]
    backwards = start.notna() & end.notna() & (end < start)
    violations = []
    if backwards.any():
        violations.append(
            Violation(
                "valid_to",
                "valid_to must not be before valid_from",
                int(backwards.sum()),
                _examples(versions, backwards, "valid_to", shown),
            )
        )

    # Left out: rows already reported (backwards, or no key or start), empty versions (valid on
    # no day), and repeated (key, valid_from), which the contract reports as a duplicate key.
    candidates = versions[
        versions[key].notna()
        & start.notna()
        & ~backwards
        & ~(end == start)
        & ~versions.duplicated([key, "valid_from"], keep=False)
    ]
    v = (
        candidates[[key, "valid_from"]]
        .assign(_end=candidates["valid_to"].fillna(pd.Timestamp.max), _row=candidates.index)
        .sort_values([key, "valid_from"], kind="stable")
    )
    group = v[key].ne(v[key].shift()).cumsum()
    latest_end = v.groupby(group)["_end"].cummax()
    later = (v["valid_from"] < latest_end.groupby(group).shift()).to_numpy()
    # The row whose end is the latest so far, carried forward: the version a later one overlaps.
    holder = v["_row"].where(v["_end"].eq(latest_end)).groupby(group).ffill()
    earlier = holder.groupby(group).shift()[later]
    overlapping = versions.index.isin(v["_row"][later]) | versions.index.isin(earlier)
    if overlapping.any():
        violations.append(
            Violation(
                "valid_from + valid_to",
                f"overlapping versions of the same {key}: at most one may be valid on any day (a version is "
                "valid from valid_from up to, not including, valid_to; an empty valid_to means still valid)",
                int(overlapping.sum()),
                _examples(versions, pd.Series(overlapping, index=versions.index), key, shown),
            )
        )
    return violations


def _as_text(ids: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(ids, skipna=True) in ("string", "empty"):
        return ids
    return ids.astype(str).where(ids.notna())


def read_weights(path: str | Path) -> Weights:
    """A weights file (CSV or Parquet) read and checked as `load` does: cells parsed strictly,
    problems reported with row numbers (row N = line N+1 of a CSV file). Raises
    ContractViolation naming the file."""
    file = Path(path)
    if not file.is_file():
        what = "is a folder, not a weights file" if file.is_dir() else "no such file"
        raise _file_problem(WEIGHTS_TABLE, str(file), "(file)", what)
    if file.suffix not in FORMATS:
        raise _file_problem(WEIGHTS_TABLE, str(file), "(file)", "a weights file must be .csv or .parquet")
    problems: list[ContractViolation] = []
    weights = _load_weights(file, problems)
    if problems:
        raise problems[0]
    return weights


def _load_weights(file: Path, problems: list[ContractViolation]) -> Weights | None:
    """The validated weights; weights_from_frame owns the business rules."""
    raw, read_problem = _read(file)
    if read_problem is not None:
        problems.append(_file_problem(WEIGHTS_TABLE, str(file), "(file)", read_problem))
        return None
    schema = WeightsInput.to_schema()
    typed, parse_violations, _ = _to_declared_types(raw, schema)
    violations = _missing_columns(raw, schema) + parse_violations
    if not violations:
        try:
            return weights_from_frame(typed, source=str(file))
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


def _examples(frame: pd.DataFrame, mask: pd.Series, column: str, shown: list[str] | None = None) -> list[dict]:
    """The first failing rows: row number, identifying columns and the offending value
    (or the columns in `shown`)."""
    shown = shown or [c for c in _ID_COLUMNS if c in frame.columns and c != column] + [column]
    sample = frame.loc[mask, shown].head(MAX_EXAMPLES)
    return [
        {"row": int(row), **{k: plain_value(v) for k, v in record.items()}}
        for row, record in zip(sample.index, sample.to_dict("records"))
    ]


def _render_example(example: dict) -> str:
    values = ", ".join(f"{k}={v!r}" for k, v in example.items() if k != "row")
    row = example.get("row")
    return f"row {row}: {values}" if row is not None else values
