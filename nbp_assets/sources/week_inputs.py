"""The upstream inputs of a week as they stood at its evaluation date (point in time),
as SQL relations over the warehouse's source tables: nothing is pulled out of it.

Every reader first enforces the data contract inside the warehouse (contract/sql_checks.py)
on every row the week depends on, including the rows its filters would drop: a status in
lower case, a NULL date or a version that ends before it starts must fail the week, not
silently change who is ranked. In production the source tables are written by other
systems (MOD-105, MOD-040, ...) and not by our loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from nbp_assets.contract.inputs import SOURCE_TABLES
from nbp_assets.contract.validation import ContractViolation, Violation
from nbp_assets.core import settings
from nbp_assets.core.partitions import Week
from nbp_assets.core.sqltext import day, timestamp
from nbp_assets.core.warehouse import SOURCE_SCHEMA, WarehouseResource
from nbp_assets.sources.reader import checked_relation
from nbp_assets.weekly.signals import COOLING_OFF_DAYS


class MissingInput(RuntimeError):
    """A required upstream table or snapshot is not there for the week being evaluated."""


@dataclass(frozen=True)
class Snapshot:
    relation: str  # the snapshot's rows, as a parenthesised subquery
    as_of_date: pd.Timestamp


def _table(name: str) -> str:
    return f"{SOURCE_SCHEMA}.{name}"


def _require(wh: WarehouseResource, name: str) -> None:
    if not wh.table_exists(_table(name)):
        raise MissingInput(
            f"source table {_table(name)} does not exist in {wh.describe()}: generate data "
            "(python -m nbp_assets generate) or load your files (python -m nbp_assets load DIR)"
        )


def _checked(
    wh: WarehouseResource, name: str, depends_on: str, where: str, party_shards: list[str | None] | None = None
) -> str:
    """Check every row the week depends on (`depends_on`), return the rows it uses (`where`)."""
    model, _ = SOURCE_TABLES[name]
    return checked_relation(wh, model, _table(name), depends_on, where, party_shards=party_shards)


def _versions(wh: WarehouseResource, name: str, week: Week, key: str) -> str:
    """Rows of a versioned master valid on the last day before the evaluation date.

    Every version that starts before the evaluation date is checked (and a NULL start), and
    so are version bounds (valid_to before valid_from) and overlaps on that day."""
    _require(wh, name)
    ev = day(week.evaluation_date)
    table = _table(name)
    relation = _checked(
        wh,
        name,
        f"valid_from IS NULL OR valid_from < {ev}",
        f"valid_from < {ev} AND (valid_to IS NULL OR valid_to >= {ev})",
    )
    problems = []
    backwards = wh.query(
        f"SELECT {key}, valid_from, valid_to FROM {table} WHERE valid_from < {ev} AND valid_to < valid_from "
        f"ORDER BY {key} LIMIT 5"
    )
    if len(backwards):
        n = int(wh.scalar(f"SELECT count(*) FROM {table} WHERE valid_from < {ev} AND valid_to < valid_from"))
        problems.append(Violation("valid_to", "valid_to >= valid_from", n, backwards.to_dict("records")))
    overlaps = wh.query(
        f"SELECT {key}, count(*) AS versions FROM {relation} v GROUP BY {key} HAVING count(*) > 1 ORDER BY {key} LIMIT 5"
    )
    if len(overlaps):
        n = int(
            wh.scalar(f"SELECT count(*) FROM (SELECT {key} FROM {relation} v GROUP BY {key} HAVING count(*) > 1) d")
        )
        problems.append(
            Violation(
                f"{key}, valid_from, valid_to",
                f"one version per {key} on {week.evaluation_date - timedelta(days=1)} (versions overlap)",
                n,
                overlaps.to_dict("records"),
            )
        )
    if problems:
        raise ContractViolation(table, problems, wh.describe())
    return relation


def customers(wh: WarehouseResource, week: Week) -> str:
    return _versions(wh, "customers", week, "party_id")


def products(wh: WarehouseResource, week: Week) -> str:
    return _versions(wh, "product_register", week, "product_id")


def snapshot(
    wh: WarehouseResource, name: str, week: Week, party_shards: list[str | None] | None = None
) -> Snapshot | None:
    """The latest snapshot dated before the evaluation date, all of it checked (its key one
    party range at a time, given `party_shards`); None if there is none and the input is
    optional."""
    _, required = SOURCE_TABLES[name]
    if not wh.table_exists(_table(name)):
        if required:
            _require(wh, name)
        return None
    ev = day(week.evaluation_date)
    latest = wh.query(f"SELECT max(as_of_date) AS d FROM {_table(name)} WHERE as_of_date < {ev}")["d"].iloc[0]
    if pd.isna(latest):
        if required:
            raise MissingInput(f"{_table(name)} has no snapshot dated before {week.evaluation_date}")
        return None
    latest = pd.Timestamp(latest)
    age = (week.evaluation_date - latest.date()).days
    if age > (max_age := settings.max_snapshot_age_days()):
        raise MissingInput(
            f"{_table(name)}: the latest snapshot before {week.evaluation_date} is dated {latest.date()}, "
            f"{age} days old; a week uses snapshots at most {max_age} days old (NBP_MAX_SNAPSHOT_AGE_DAYS). "
            "Load the missing snapshot, or raise the limit if an older one is acceptable."
        )
    on = f"as_of_date = {day(latest.date())}"
    return Snapshot(_checked(wh, name, on, on, party_shards), latest)


def eligibility_status_counts(wh: WarehouseResource, as_of: pd.Timestamp) -> dict[str, int]:
    return wh.counts(
        f"SELECT eligibility_status, count(*) FROM {_table('eligibility')} "
        f"WHERE as_of_date = {day(as_of.date())} GROUP BY 1 ORDER BY 1"
    )


def holdings(wh: WarehouseResource, week: Week) -> str:
    """Products held (open) at the evaluation date; every holding opened before it is checked."""
    _require(wh, "holdings")
    ev = day(week.evaluation_date)
    return _checked(
        wh,
        "holdings",
        f"opened_on IS NULL OR opened_on < {ev}",
        f"opened_on < {ev} AND (closed_on IS NULL OR closed_on >= {ev})",
    )


def rejections(wh: WarehouseResource, week: Week) -> str:
    """Offers rejected in the cooling-off window before the evaluation date; every offer
    made before the evaluation date is checked (an outcome outside the contract fails)."""
    _require(wh, "offer_history")
    ev = timestamp(week.evaluation_date)
    since = timestamp(week.evaluation_date - timedelta(days=COOLING_OFF_DAYS + 1))
    return _checked(
        wh,
        "offer_history",
        f"offered_at IS NULL OR offered_at < {ev}",
        f"outcome = 'REJECTED' AND outcome_at < {ev} AND outcome_at >= {since}",
    )


def offers_made(wh: WarehouseResource, week: Week) -> str:
    """Offers made during the week (outcome monitoring); every offer made before the
    evaluation date is checked."""
    _require(wh, "offer_history")
    ev = timestamp(week.evaluation_date)
    return _checked(
        wh,
        "offer_history",
        f"offered_at IS NULL OR offered_at < {ev}",
        f"offered_at >= {timestamp(week.start)} AND offered_at < {ev}",
    )


def activity(wh: WarehouseResource, week: Week) -> str:
    """Activity events that happened during the week (and any without a time: they fail)."""
    _require(wh, "activity")
    during = f"event_time >= {timestamp(week.start)} AND event_time < {timestamp(week.evaluation_date)}"
    return _checked(wh, "activity", f"event_time IS NULL OR ({during})", during)
