"""Enforce a pandera input model inside the warehouse, before any row is pulled out.

The pandera models in contract/inputs.py stay the one definition of the contract. For
tables read from the warehouse (tens of millions of rows at the bank) their column
checks are translated to SQL and evaluated where the data lives, in one aggregate query;
only the failing examples come back. pandera in pandas would cost a minute per week at
1M customers for the same answer.

Translated: required columns, nullability, isin, ge/le/gt/lt/in_range, str_length,
column uniqueness and the model's unique key. A check this module cannot translate
fails test_sql_checks, it is never skipped silently. Identifiers are left unquoted: contract
column names are plain snake_case, which Snowflake folds to upper case like its own tables.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd
import pandera.pandas as pa

from nbp_assets.contract.validation import MAX_EXAMPLES, MISSING_COLUMN, ContractViolation, Violation, plain_value


def _lit(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _check_sql(col: str, check: pa.Check) -> str:
    """SQL that is TRUE when a non-null value FAILS the check."""
    s = check.statistics
    q = col
    translations: dict[str, Callable[[], str]] = {
        "isin": lambda: f"{q} NOT IN ({', '.join(_lit(v) for v in s['allowed_values'])})",
        "greater_than_or_equal_to": lambda: f"{q} < {_lit(s['min_value'])}",
        "less_than_or_equal_to": lambda: f"{q} > {_lit(s['max_value'])}",
        "greater_than": lambda: f"{q} <= {_lit(s['min_value'])}",
        "less_than": lambda: f"{q} >= {_lit(s['max_value'])}",
        "in_range": lambda: f"NOT ({q} BETWEEN {_lit(s['min_value'])} AND {_lit(s['max_value'])})",
        "str_length": lambda: " OR ".join(
            part
            for part in (
                f"length({q}) < {s['min_value']}" if s.get("min_value") is not None else "",
                f"length({q}) > {s['max_value']}" if s.get("max_value") is not None else "",
            )
            if part
        ),
    }
    # Asset tables are created from their declaration (contract/tables.py): a text column is
    # VARCHAR there, so every value is text by the engine's own typing.
    translations["all_text"] = lambda: "FALSE"
    if check.name not in translations:
        raise NotImplementedError(f"no SQL translation for pandera check {check.name!r} on column {col!r}")
    return translations[check.name]()


def predicates(model: type[pa.DataFrameModel]) -> list[tuple[str, str, str]]:
    """(column, check description, failing-row predicate) for every column check."""
    out = []
    for name, column in model.to_schema().columns.items():
        if not column.nullable:
            out.append((name, "not_nullable", f"{name} IS NULL"))
        for check in column.checks:
            out.append(
                (name, f"{check.name}({check.statistics})", f"{name} IS NOT NULL AND ({_check_sql(name, check)})")
            )
    return out


def unique_keys(model: type[pa.DataFrameModel]) -> list[list[str]]:
    schema = model.to_schema()
    keys = [[name] for name, column in schema.columns.items() if column.unique]
    if schema.unique:
        keys.append(list(schema.unique))
    return keys


_TEXT_TYPES = ("CHAR", "TEXT", "STRING")
_NUMBER_TYPES = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "NUMBER", "NUMERIC", "REAL")


def _type_problem(dtype: str, sql_type: str) -> str | None:
    """Why a column of this engine type cannot hold the model's dtype (None if it can)."""
    if dtype.startswith("datetime64"):
        if "TIME ZONE" in sql_type or sql_type in ("TIMESTAMPTZ", "TIMESTAMP_TZ", "TIMESTAMP_LTZ"):
            return f"type: a zone-naive timestamp (bank wall time), found zone-aware {sql_type}"
        return None if sql_type.startswith(("TIMESTAMP", "DATE")) else f"type: a date/timestamp, found {sql_type}"
    if dtype in ("float64", "Int64", "int64", "int32"):
        return None if any(k in sql_type for k in _NUMBER_TYPES) else f"type: a number, found {sql_type}"
    if dtype == "bool":
        return None if "BOOL" in sql_type else f"type: a boolean, found {sql_type}"
    return None  # text columns: numbers are accepted (and read as text)


def _type_violations(query, model, table: str, column_types: dict[str, str], id_cols: list[str]) -> list[Violation]:
    """Type drift (text in a numeric column, a zone-aware timestamp) named before any check
    compares values, which would otherwise end in the engine's own conversion error. A
    column's type is the whole table's, so the whole table is judged (the week's filter
    itself may not even run on a drifted date column)."""
    where = "TRUE"
    out = []
    for name, column in model.to_schema().columns.items():
        problem = _type_problem(str(column.dtype), column_types.get(name, ""))
        if problem is None:
            continue
        cols = ", ".join(dict.fromkeys([*id_cols, name]))
        if any(k in column_types[name] for k in _TEXT_TYPES):  # the values that are not numbers / dates
            cast = "DOUBLE" if "number" in problem else "TIMESTAMP"
            bad = f"{name} IS NOT NULL AND TRY_CAST({name} AS {cast}) IS NULL"
            n = int(query(f"SELECT count(*) AS n FROM {table} WHERE ({where}) AND {bad}")["n"].iloc[0])
            examples = query(f"SELECT {cols} FROM {table} WHERE ({where}) AND {bad} LIMIT {MAX_EXAMPLES}")
            if not n:  # every value converts, but the column's type is still wrong
                examples = query(f"SELECT {cols} FROM {table} WHERE {where} LIMIT {MAX_EXAMPLES}")
        else:
            n = int(query(f"SELECT count(*) AS n FROM {table} WHERE {where}")["n"].iloc[0])
            examples = query(f"SELECT {cols} FROM {table} WHERE {where} LIMIT {MAX_EXAMPLES}")
        out.append(Violation(name, problem, n, _records(examples)))
    return out


def check_in_warehouse(
    query: Callable[[str], pd.DataFrame],
    model: type[pa.DataFrameModel],
    table: str,
    where: str,
    present_columns: set[str] | dict[str, str],
    source: str,
    party_shards: list[str | None] | None = None,
) -> None:
    """Raise ContractViolation for the rows of `table` matching `where` that break `model`.

    present_columns: the table's column names, or a {name: engine type} mapping, which also
    checks the column types. party_shards: predicates on party_id that split the rows into
    ranges covering every party (weekly_io.party_shards); a unique key holding party_id is
    then checked one range at a time, since equal keys fall in the same range."""
    violations: list[Violation] = []
    missing = [c for c in model.to_schema().columns if c not in present_columns]
    violations += [Violation(c, MISSING_COLUMN, 0, []) for c in missing]
    if missing:
        raise ContractViolation(table, violations, source)
    if isinstance(present_columns, dict):
        ids = [c for c in ("party_id", "product_id", "as_of_date", "activity_id", "offer_id") if c in present_columns]
        violations = _type_violations(query, model, table, present_columns, ids)
        if violations:
            raise ContractViolation(table, violations, source)

    preds = predicates(model)
    counts = query(
        "SELECT "
        + ", ".join(f"count(CASE WHEN {p} THEN 1 END) AS c{i}" for i, (_, _, p) in enumerate(preds))
        + f" FROM {table} WHERE {where}"
    ).iloc[0]
    id_cols = [c for c in ("party_id", "product_id", "as_of_date", "activity_id") if c in present_columns]
    for i, (column, what, pred) in enumerate(preds):
        n = int(counts[f"c{i}"])
        if n:
            cols = ", ".join(dict.fromkeys([*id_cols, column]))
            examples = query(f"SELECT {cols} FROM {table} WHERE {where} AND ({pred}) LIMIT {MAX_EXAMPLES}")
            violations.append(Violation(column, what, n, _records(examples)))
    for key in unique_keys(model):
        cols = ", ".join(key)
        # Grouping 20M rows by one 64-bit hash is several times cheaper than by the text
        # columns; equal keys hash equally, so no group here means no duplicate. Only on a
        # hash collision (or a real duplicate) does the exact query run.
        # By party range where the key holds party_id: at 10M customers one grouping of the
        # 190M-row MOD-105 snapshot spilled (23 s); ten ranges of 19M rows did not (16 s).
        ranges = (party_shards or [None]) if "party_id" in key else [None]
        scopes = [where if shard is None else f"({where}) AND ({shard})" for shard in ranges]
        colliding = sum(
            int(
                query(
                    f"SELECT count(*) AS n FROM (SELECT hash({cols}) AS h FROM {table} WHERE {scope} "
                    f"GROUP BY hash({cols}) HAVING count(*) > 1) d"
                )["n"].iloc[0]
            )
            for scope in scopes
        )
        if not colliding:
            continue
        dupes = query(
            f"SELECT {cols}, count(*) AS copies FROM {table} WHERE {where} GROUP BY {cols} HAVING count(*) > 1"
        )
        if len(dupes):
            violations.append(
                Violation(" + ".join(key), "unique", int(dupes["copies"].sum()), _records(dupes.head(MAX_EXAMPLES)))
            )
    if violations:
        raise ContractViolation(table, violations, source)


def coerce_types(model: type[pa.DataFrameModel], df: pd.DataFrame) -> pd.DataFrame:
    """Give a warehouse result the model's pandas dtypes (column-wise, no row loop)."""
    df = df[list(model.to_schema().columns)]
    for name, column in model.to_schema().columns.items():
        dtype = str(column.dtype)
        if dtype.startswith("datetime64"):
            df[name] = pd.to_datetime(df[name])
        elif dtype in ("Int64", "bool", "float64"):
            df[name] = df[name].astype(dtype)
        elif dtype == "str" and df[name].dtype != object:  # e.g. a numeric party_id column
            df[name] = df[name].astype("string").astype(object)
    return df


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: plain_value(v) for k, v in row.items()} for row in frame.to_dict("records")]
