"""The one weekly partitions definition, and what a week means.

A partition is a bank week: it starts Monday 00:00 Europe/London and is keyed by that
Monday's date ("2026-11-09"). The week is evaluated when it closes: evaluated_at is the
following Monday 00:00 local time (stored without a zone, as TIMESTAMP_NTZ), and the
evaluation date is that Monday. Every input is read as it stood before the evaluation
date, so a backfill of an old week sees the bank as it was then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import dagster as dg

from nbp_assets.core import settings

TIMEZONE = "Europe/London"
# A Monday: the first week that can be materialized or backfilled, and the first the UI offers.
FIRST_WEEK = settings.first_week()

weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=FIRST_WEEK,
    day_offset=1,  # Monday
    timezone=TIMEZONE,
)


@dataclass(frozen=True)
class Week:
    """One bank week, derived from its partition key."""

    start: date  # Monday the week starts (the partition key)

    @classmethod
    def from_key(cls, key: str) -> "Week":
        start = date.fromisoformat(key)
        if start.weekday() != 0:
            raise ValueError(f"partition key {key!r} is not a Monday")
        return cls(start)

    @property
    def key(self) -> str:
        return self.start.isoformat()

    @property
    def evaluation_date(self) -> date:
        """The Monday after the week: inputs dated before it are what the run sees."""
        return self.start + timedelta(days=7)

    @property
    def evaluated_at(self) -> datetime:
        """When the week closed, local wall time, zone-naive (TIMESTAMP_NTZ)."""
        return datetime.combine(self.evaluation_date, datetime.min.time())
