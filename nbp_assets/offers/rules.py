"""The recipe's offer rule as data: validation, first-match evaluation, coverage analysis.

A rules table holds versions of the recipe's CASE. Each row of a version is one WHEN (its
bounds on INCOME, FICO and PROPENSITY_TO_BUY, all of which must hold) or the ELSE; rows are
tried in priority order and the first match wins, as in SQL. A version applies to events
from its valid_from on, so replaying an old event uses the rule that was in force when it
happened.

Bounds follow SQL's three-valued logic, like ksqlDB evaluating the recipe: a bound on a
missing INCOME or FICO never holds, a rule without a bound on it is not affected.

The coverage analysis is exact, not sampled: every bound of a version cuts its dimension
into pieces (the bound values themselves and the open intervals between them) and no bound
changes its truth inside a piece, so evaluating the rule once per combination of pieces
decides it for every possible input.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from nbp_assets.contract.offers import BOUND_COLUMNS, BOUNDS, FROM_RULE, RULE_DIMENSIONS, OfferRulesInput
from nbp_assets.contract.validation import ContractViolation, Violation, validate

DEFAULT_RULES_FILE = Path(__file__).with_name("default_offer_rules.csv")
TABLE = "offer_rules"

_OPS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}
_SYMBOL = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass(frozen=True)
class Domain:
    """Values a rule input can take under the data contract."""

    column: str  # the recipe's name for it
    lo: float
    hi: float
    integer: bool
    nullable: bool


DOMAINS: dict[str, Domain] = {
    "income": Domain("INCOME", 0, math.inf, integer=True, nullable=True),
    "fico": Domain("FICO", 300, 850, integer=True, nullable=True),
    "propensity": Domain("PROPENSITY_TO_BUY", 0.0, 1.0, integer=False, nullable=False),
}


@dataclass(frozen=True)
class RuleSet:
    """A validated rules table, sorted by version and priority."""

    table: pd.DataFrame
    source: str

    # Cached: the stream processor evaluates a RuleSet on every micro-batch of a few events,
    # where recomputing these small frames each time cost more than the rule itself.
    @cached_property
    def versions(self) -> pd.DataFrame:
        """One row per version: rules_version, valid_from, in time order."""
        return self.table.drop_duplicates("rules_version")[["rules_version", "valid_from"]].reset_index(drop=True)

    @cached_property
    def _by_version(self) -> dict[int, pd.DataFrame]:
        return {int(v): rows.reset_index(drop=True) for v, rows in self.table.groupby("rules_version", sort=True)}

    @cached_property
    def _compiled(self) -> dict[int, "CompiledVersion"]:
        return {v: compile_version(rows) for v, rows in self._by_version.items()}

    def compiled(self, rules_version: int) -> "CompiledVersion":
        return self._compiled[int(rules_version)]

    def version(self, rules_version: int) -> pd.DataFrame:
        rows = self._by_version.get(int(rules_version))
        return rows.copy() if rows is not None else self.table.iloc[0:0].reset_index(drop=True)

    def version_at(self, event_time: pd.Series | np.ndarray) -> np.ndarray:
        """The version in force at each event time; events before the first version use it."""
        versions = self.versions
        starts = versions["valid_from"].to_numpy("datetime64[ns]")
        pos = np.searchsorted(starts, np.asarray(event_time, dtype="datetime64[ns]"), side="right") - 1
        return versions["rules_version"].to_numpy("int64")[np.maximum(pos, 0)]

    @property
    def current_version(self) -> int:
        return int(self.versions["rules_version"].iloc[-1])


def load_rules(path: str | Path | None = None) -> RuleSet:
    """A rules table from CSV (default: the recipe's CASE as version 1)."""
    path = Path(path) if path else DEFAULT_RULES_FILE
    return rules_from_frame(pd.read_csv(path), source=str(path))


def rules_from_frame(
    df: pd.DataFrame, source: str = TABLE, offer_ids: pd.Series | None = None, row_numbers: bool = False
) -> RuleSet:
    """Validate a rules table (contract, then the rule's own consistency); raise ContractViolation.

    The one check of the rules contract: `load` calls it on the user's file before anything is
    written, offer_tables_job on nbp_source.offer_rules. With `row_numbers` the examples name
    each row by the frame's index (the loader's: row N = line N+1 of a CSV file)."""
    df = validate(OfferRulesInput, df, table=TABLE, source=source)
    df = df.sort_values(["rules_version", "priority"], kind="stable")
    problems = _problems(df, offer_ids, row_numbers)
    if problems:
        raise ContractViolation(TABLE, problems, source)
    return RuleSet(table=df.reset_index(drop=True), source=source)


def _problems(df: pd.DataFrame, offer_ids: pd.Series | None, row_numbers: bool = False) -> list[Violation]:
    if df.empty:
        return [
            Violation("(rows)", "the rules table has no rows: it needs at least one version with its ELSE row", 0, [])
        ]
    problems: list[Violation] = []

    def flag(rows: pd.DataFrame, column: str, what: str) -> None:
        if len(rows):
            cols = list(dict.fromkeys(c for c in ("rules_version", "priority", "offer_id", column) if c in rows))
            examples = _records(rows[cols].head(5))
            if row_numbers:
                examples = [{"row": int(i), **ex} for i, ex in zip(rows.index[:5], examples)]
            problems.append(Violation(column, what, len(rows), examples))

    by_version = df.groupby("rules_version", sort=True)
    else_count = by_version["is_else"].transform("sum")
    flag(df[else_count != 1].drop_duplicates("rules_version"), "is_else", "every version needs exactly one ELSE row")
    last = df["priority"] == by_version["priority"].transform("max")
    flag(df[df["is_else"] & ~last], "priority", "the ELSE row must have the highest priority of its version")
    bounded = df[list(BOUND_COLUMNS)].notna()
    flag(df[df["is_else"] & bounded.any(axis=1)], "is_else", "the ELSE row takes no bounds")
    for dim in RULE_DIMENSIONS:
        for a, b in (("gt", "ge"), ("lt", "le")):
            both = bounded[f"{dim}_{a}"] & bounded[f"{dim}_{b}"]
            flag(df[both], f"{dim}_{a}", f"set {dim}_{a} or {dim}_{b}, not both")
    flag(
        df[by_version["valid_from"].transform("nunique") != 1].drop_duplicates("rules_version"),
        "valid_from",
        "all rows of a version share one valid_from",
    )
    starts = by_version["valid_from"].first()
    not_later = starts.index[(starts.diff() <= pd.Timedelta(0)).to_numpy()]
    flag(
        df[df["rules_version"].isin(not_later)].drop_duplicates("rules_version"),
        "valid_from",
        "a later version must start strictly later",
    )
    if offer_ids is not None:
        flag(df[~df["offer_id"].isin(offer_ids)], "offer_id", "offer_id must exist in offers")
    return problems


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {
            k: (
                None
                if pd.isna(v)
                else v.isoformat()
                if isinstance(v, pd.Timestamp)
                else v.item()
                if hasattr(v, "item")
                else v
            )
            for k, v in row.items()
        }
        for row in frame.to_dict("records")
    ]


# ----------------------------------------------------------------------------- evaluation


def _bounds(rules: pd.DataFrame) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(dimension, op, which rules have the bound, the bound values) for every bound used."""
    out = []
    for dim in RULE_DIMENSIONS:
        for op in BOUNDS:
            bound = rules[f"{dim}_{op}"].to_numpy("float64")
            has = ~np.isnan(bound)
            if has.any():
                out.append((dim, op, has, bound[has][:, None]))
    return out


def _matches(rules: pd.DataFrame, values: dict[str, np.ndarray], bounds=None) -> np.ndarray:
    """(rules x inputs) boolean: does each non-ELSE rule hold for each input."""
    n = len(next(iter(values.values())))
    out = np.ones((len(rules), n), dtype=bool)
    for dim, op, has, bound in bounds if bounds is not None else _bounds(rules):
        out[has] &= _OPS[op](values[dim][None, :], bound)  # NaN inputs compare False: SQL's NULL in a WHEN
    return out


@dataclass(frozen=True)
class CompiledVersion:
    """One version's WHENs as arrays (what evaluate needs), built once per version."""

    rules: pd.DataFrame  # the non-ELSE rows, in priority order
    offers: np.ndarray  # offer_id of each WHEN, then the ELSE's
    priorities: np.ndarray
    bounds: list


def compile_version(version: pd.DataFrame) -> CompiledVersion:
    rules = version[~version["is_else"]]
    fallback = version[version["is_else"]].iloc[0]
    return CompiledVersion(
        rules=rules,
        offers=np.append(rules["offer_id"].to_numpy("int64"), int(fallback["offer_id"])),
        priorities=np.append(rules["priority"].to_numpy("int64"), int(fallback["priority"])),
        bounds=_bounds(rules),
    )


def evaluate(version: pd.DataFrame | CompiledVersion, values: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(offer_id, priority) of the first matching rule of one version, else its ELSE."""
    c = version if isinstance(version, CompiledVersion) else compile_version(version)
    hit = _matches(c.rules, values, c.bounds)
    matched = hit.any(axis=0)
    first = hit.argmax(axis=0) if len(c.rules) else np.zeros(hit.shape[1], dtype="int64")
    pick = np.where(matched, first, len(c.rules))  # past the last WHEN: the ELSE
    return c.offers[pick], c.priorities[pick]


def _floats(values) -> np.ndarray:
    """A nullable number column as float64 with NaN for NULL (NULL compares false, as in SQL)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return values.astype("float64")
    return pd.array(values).astype("Float64").to_numpy("float64", na_value=np.nan)


def assign_arrays(rules: RuleSet, event_time, income, fico, propensity) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(OFFER_ID, RULES_VERSION, RULE_PRIORITY) arrays for each event, by the version in force."""
    version_of = rules.version_at(event_time)
    values = {
        "income": _floats(income),
        "fico": _floats(fico),
        "propensity": np.asarray(propensity, dtype="float64"),
    }
    offer = np.zeros(len(version_of), dtype="int64")
    priority = np.zeros(len(version_of), dtype="int64")
    versions = np.unique(version_of)
    for v in versions:  # a handful of versions, never the events
        rows = version_of == v if len(versions) > 1 else slice(None)
        offer[rows], priority[rows] = evaluate(rules.compiled(int(v)), {k: a[rows] for k, a in values.items()})
    return offer, version_of, priority


def assign(
    rules: RuleSet, event_time: pd.Series, income: pd.Series, fico: pd.Series, propensity: pd.Series
) -> pd.DataFrame:
    """OFFER_ID, RULES_VERSION and RULE_PRIORITY for each event, by the version in force."""
    decided = assign_arrays(rules, event_time, income.array, fico.array, propensity)
    return pd.DataFrame(
        {to: pd.array(values, dtype="Int64") for to, values in zip(FROM_RULE, decided)}, index=event_time.index
    )


# ----------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class _Piece:
    lo: float
    lo_closed: bool
    hi: float
    hi_closed: bool
    value: float  # any input in the piece; NaN for the NULL piece

    @property
    def is_null(self) -> bool:
        return math.isnan(self.value)


def _pieces(bounds: np.ndarray, domain: Domain) -> list[_Piece]:
    """The domain cut at every bound: NULL, each bound value, each open interval between."""
    finite = [domain.lo] + ([domain.hi] if math.isfinite(domain.hi) else [])
    points = np.unique(np.concatenate([bounds[~np.isnan(bounds)], finite]))
    points = points[(points >= domain.lo) & (points <= domain.hi)]
    pieces = [_Piece(math.nan, False, math.nan, False, math.nan)] if domain.nullable else []
    ends = list(points[1:]) + ([math.inf] if not math.isfinite(domain.hi) else [])
    for i, p in enumerate(points):
        if not domain.integer or p == math.floor(p):
            pieces.append(_Piece(p, True, p, True, p))
        if i < len(ends):
            nxt = ends[i]
            inside = math.floor(p) + 1 if domain.integer else (p + nxt) / 2 if math.isfinite(nxt) else p + 1
            if inside < nxt:  # an integer domain may have nothing strictly between two bounds
                pieces.append(_Piece(p, False, nxt, False, inside))
    return pieces


@dataclass(frozen=True)
class Coverage:
    """What a rule version can and cannot do, for every input the contract allows."""

    rules_version: int
    unreachable_rules: pd.DataFrame  # priority, offer_id, shadowed_by (priorities that take its inputs)
    unreachable_offers: list[int]  # offers no input can get, ELSE included
    uncovered: list[str]  # inputs no WHEN covers (they get the ELSE offer), as conditions

    @property
    def clean(self) -> bool:
        return self.unreachable_rules.empty and not self.unreachable_offers and not self.uncovered


def coverage(version: pd.DataFrame, offer_ids: pd.Series | list[int]) -> Coverage:
    """Exact reachability of every rule and offer, and the inputs only the ELSE catches."""
    rules = version[~version["is_else"]].reset_index(drop=True)
    fallback = version[version["is_else"]].iloc[0]
    pieces = {
        d: _pieces(rules[[f"{d}_{op}" for op in BOUNDS]].to_numpy("float64").ravel(), DOMAINS[d])
        for d in RULE_DIMENSIONS
    }
    grid = np.meshgrid(*[np.arange(len(pieces[d])) for d in RULE_DIMENSIONS], indexing="ij")
    cells = np.stack([g.ravel() for g in grid], axis=1)  # one row per combination of pieces
    values = {d: np.array([p.value for p in pieces[d]])[cells[:, i]] for i, d in enumerate(RULE_DIMENSIONS)}

    hit = _matches(rules, values)
    matched = hit.any(axis=0)
    winner = np.where(matched, hit.argmax(axis=0), -1)
    won = np.bincount(winner[matched], minlength=len(rules)) > 0
    unreachable = []
    for r in np.flatnonzero(~won):  # a handful of rules
        takers = sorted({int(rules.at[w, "priority"]) for w in winner[hit[r]]})
        unreachable.append(
            {"priority": int(rules.at[r, "priority"]), "offer_id": int(rules.at[r, "offer_id"]), "shadowed_by": takers}
        )
    reached = set(rules["offer_id"].to_numpy()[won].tolist()) | (
        {int(fallback["offer_id"])} if (~matched).any() else set()
    )
    return Coverage(
        rules_version=int(version["rules_version"].iloc[0]),
        unreachable_rules=pd.DataFrame(unreachable, columns=["priority", "offer_id", "shadowed_by"]),
        unreachable_offers=sorted(set(int(o) for o in offer_ids) - reached),
        uncovered=[_describe(region, pieces) for region in _merge(cells[~matched])],
    )


def _merge(cells: np.ndarray) -> list[tuple[tuple[int, int], ...]]:
    """Join neighbouring cells into boxes (index ranges of pieces), one dimension at a time."""
    regions = [tuple((c, c) for c in row) for row in cells.tolist()]
    changed = True
    while changed:
        changed = False
        for d in range(cells.shape[1]):
            groups: dict[tuple, list] = {}
            for r in regions:
                groups.setdefault(r[:d] + r[d + 1 :], []).append(r)
            regions = []
            for members in groups.values():
                members.sort(key=lambda r: r[d][0])
                current = members[0]
                for r in members[1:]:
                    if r[d][0] == current[d][1] + 1:
                        current = current[:d] + ((current[d][0], r[d][1]),) + current[d + 1 :]
                        changed = True
                    else:
                        regions.append(current)
                        current = r
                regions.append(current)
    return sorted(regions, key=lambda r: [(-(hi - lo), lo) for lo, hi in r[::-1]])


def _describe(region: tuple[tuple[int, int], ...], pieces: dict[str, list[_Piece]]) -> str:
    parts = [_describe_range(DOMAINS[d], pieces[d], *region[i]) for i, d in enumerate(RULE_DIMENSIONS)]
    return " AND ".join(p for p in parts if p) or "every input"


def _describe_range(domain: Domain, pieces: list[_Piece], first: int, last: int) -> str:
    name = domain.column
    null = pieces[first].is_null
    if null:
        first += 1
    if first > last:
        return f"{name} IS NULL"
    lo, hi = pieces[first], pieces[last]
    lower = None if (lo.lo == domain.lo and lo.lo_closed) else ("<=" if lo.lo_closed else "<")
    upper = None if (hi.hi == domain.hi and (hi.hi_closed or math.isinf(hi.hi))) else ("<=" if hi.hi_closed else "<")
    if lower and upper:
        text = f"{_num(lo.lo)} {lower} {name} {upper} {_num(hi.hi)}"
    elif lower:
        text = f"{name} {'>=' if lo.lo_closed else '>'} {_num(lo.lo)}"
    elif upper:
        text = f"{name} {upper} {_num(hi.hi)}"
    else:
        text = "" if null or not domain.nullable else f"{name} IS NOT NULL"
    if null and text:
        return f"({name} IS NULL OR {text})"
    return text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def describe_rule(rule: pd.Series) -> str:
    """A rule row as the WHEN it stands for."""
    if rule["is_else"]:
        return f"ELSE {int(rule['offer_id'])}"
    conds = [
        f"{DOMAINS[d].column} {_SYMBOL[op]} {_num(rule[f'{d}_{op}'])}"
        for d in RULE_DIMENSIONS
        for op in BOUNDS
        if pd.notna(rule[f"{d}_{op}"])
    ]
    return f"WHEN {' AND '.join(conds) or 'TRUE'} THEN {int(rule['offer_id'])}"
