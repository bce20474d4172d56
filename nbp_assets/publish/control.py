"""The control group: a stable share of the week's active customers, ranked and kept in the
history as usual but not published to nbp_current, and recorded as held out in
nbp_work.control_group (docs/apps.md, "Held-out customers").

Who is held out depends only on the salt and the party_id: md5(salt ':' party_id), its first
8 hex digits as a number in [0, 2^32), below floor(share x 2^32). The same customers every
week and every run, in DuckDB and in Snowflake (publish/sql/_control.sql spells the hash
once for both); a customer stays held out while share and salt stay. Share 0 (the default)
turns it off: nothing is recorded and nbp_current receives the history's rows exactly as
before.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from nbp_assets.contract.tables import CONTROL_GROUP, CUSTOMERS
from nbp_assets.core import settings
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseResource, WarehouseSession
from nbp_assets.weekly.eligibility import ACTIVE
from nbp_assets.weekly.io import replace_week, week_filter, week_slice

BUCKETS = 2**32  # the first 8 hex digits of the md5


@dataclass(frozen=True)
class ControlGroup:
    share: float  # 0 = off
    salt: str

    @classmethod
    def from_settings(cls) -> "ControlGroup":
        """NBP_CONTROL_GROUP_SHARE and NBP_CONTROL_GROUP_SALT (ConfigurationError if bad)."""
        return cls(settings.control_group_share(), settings.control_group_salt())

    @property
    def on(self) -> bool:
        return self.share > 0

    @property
    def threshold(self) -> int:
        """A customer whose bucket is below this is held out: floor(share x 2^32)."""
        return math.floor(self.share * BUCKETS)

    @property
    def salt_digest(self) -> str:
        """Recorded with the group (the salt itself is configuration, not data)."""
        return hashlib.sha256(self.salt.encode("utf-8")).hexdigest()[:12]

    def bucket(self, party_id: str) -> int:
        """The customer's bucket in [0, 2^32), as the SQL computes it."""
        return int(hashlib.md5(f"{self.salt}:{party_id}".encode()).hexdigest()[:8], 16)

    def holds_out(self, party_id: str) -> bool:
        return self.on and self.bucket(party_id) < self.threshold

    def week_rows_params(self) -> dict:
        """week_rows.sql's `control`: the filter that leaves the held-out customers out."""
        return {"control": {"salt": self.salt, "threshold": self.threshold} if self.on else None}


def control_group_sql(customers: str, control: ControlGroup) -> str:
    """The held-out active customers of `customers` (a week's slice): party_id, share, salt_digest."""
    return render(
        "publish",
        "control_group",
        customers=customers,
        active=ACTIVE,
        salt=control.salt,
        threshold=control.threshold,
        share=repr(float(control.share)),
        salt_digest=control.salt_digest,
    ).text


def prepare(warehouse: WarehouseResource, control: ControlGroup) -> bool:
    """Create nbp_work.control_group when the group is on; True if the table exists."""
    if control.on:
        warehouse.ensure_table(CONTROL_GROUP)
        return True
    return warehouse.table_exists(CONTROL_GROUP.name)


def record(tx: WarehouseSession, week: Week, control: ControlGroup) -> int:
    """Replace the week's slice of nbp_work.control_group (set-based, in the warehouse) by the
    week's held-out active customers; with the group off, the slice is emptied (a re-run
    with share 0 leaves no stale record). Returns the held-out customers."""
    if not control.on:
        tx.execute(
            render("core", "delete_where", table=CONTROL_GROUP.name, where=week_filter(CONTROL_GROUP, week)).text
        )
        return 0
    return replace_week(tx, CONTROL_GROUP, week, control_group_sql(week_slice(CUSTOMERS, week), control))


def counts(tx: WarehouseSession, history_slice: str, week: Week) -> tuple[int, int]:
    """(customers ranked this week, of whom held out)."""
    row = tx.query(
        render("publish", "control_counts", history=history_slice, control=week_slice(CONTROL_GROUP, week)).text
    ).iloc[0]
    return int(row["ranked_customers"]), int(row["held_out_ranked"])
