"""The challengers' trail: every simulation kept in the warehouse, and the approval of a
challenger's model_version.

`record_simulation` writes one `product_intelligence.simulations` row per simulation (who ran
it, when, the week, the champion and the challenger, the challenger's weights digest, the
results: top 1 / top 3 changes, breaches before / after / added / removed, the fairness gaps
before and after as JSON and the report as printed) and the challenger's weights into
`product_intelligence.model_weights`, in one transaction. The sandbox is overwritten by the
next simulation; these rows are not.

`approve` records who approved a simulated challenger's model_version, when, why and after
which simulation, on its `product_intelligence.model_versions` row (created there if the
version has not ranked a week yet). A refusal writes nothing. docs/governance.md.
No query text is written here: simulation/sql/*.sql and weekly/sql/registry_*.sql.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime

from nbp_assets.contract.tables import MODEL_VERSIONS, MODEL_WEIGHTS, SIMULATIONS
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.weekly import registry
from nbp_assets.weekly.weights import Weights

SIMULATION_ID = re.compile(r"sim-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")
_RESULTS = (
    "customers",
    "top1_changed",
    "top1_changed_share",
    "top3_changed",
    "top3_changed_share",
    "breaches_live",
    "breaches_challenger",
    "breaches_added",
    "breaches_removed",
)


class ApprovalRefused(ValueError):
    """An approval that cannot be recorded: one line saying why; nothing was written."""


def new_simulation_id(at: datetime) -> str:
    return f"sim-{at:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


def _row(simulation_id, at, by, week: Week, result, challenger: Weights) -> list[tuple[str, str, object]]:
    summary = result.summary
    row = [
        ("simulation_id", "text", simulation_id),
        ("run_at", "timestamp", at),
        ("run_by", "text", by),
        ("week_start", "timestamp", week.start),
        ("champion_model_version", "text", result.live_model_version),
        ("challenger_model_version", "text", result.challenger_model_version),
        ("challenger_weights_digest", "text", registry.weights_digest_of(result.challenger_model_version)),
        ("weights_source", "text", challenger.source),
    ]
    row += [(k, "float" if k.endswith("_share") else "int", summary[k]) for k in _RESULTS]
    gaps = json.loads(result.fairness.to_json(orient="records", double_precision=6))
    row += [
        ("fairness_gaps", "text", json.dumps(gaps, ensure_ascii=False, separators=(",", ":"))),
        ("report", "text", result.render()),
    ]
    return row


def record_simulation(warehouse, week: Week, result, challenger: Weights, by: str, at: datetime | None = None) -> str:
    """Keep the simulation and the challenger's weights; returns its simulation_id."""
    at = at or registry.now()
    simulation_id = new_simulation_id(at)
    warehouse.ensure_table(SIMULATIONS)
    warehouse.ensure_table(MODEL_WEIGHTS)
    row = _row(simulation_id, at, by, week, result, challenger)
    with warehouse.transaction() as tx:
        tx.execute(render("simulation", "record_simulation", table=SIMULATIONS.name, row=row).text)
        for statement in registry.register_statements(challenger)[1:]:  # its weights, not a registry row
            tx.execute(statement)
    return simulation_id


def simulation(reader, simulation_id: str) -> dict | None:
    if not reader.table_exists(SIMULATIONS.name):
        return None
    rows = reader.query(
        render("simulation", "simulation_by_id", table=SIMULATIONS.name, simulation_id=simulation_id).text
    )
    return None if rows.empty else rows.iloc[0].to_dict()


def approve(warehouse, simulation_id: str, reason: str, by: str, at: datetime | None = None) -> str:
    """Record the approval of the simulation's challenger model_version; returns it. Refused
    (ApprovalRefused, nothing written) for a malformed or unknown id, an empty reason, or a
    model_version already approved (an approval is never overwritten: docs/governance.md)."""
    reason = (reason or "").strip()
    if not reason:
        raise ApprovalRefused('--reason is empty: say why the challenger may ship, e.g. --reason "CR-123: ..."')
    if "\n" in reason or len(reason) > 1000:
        raise ApprovalRefused("--reason must be one line of at most 1000 characters")
    if not SIMULATION_ID.fullmatch(simulation_id or ""):
        raise ApprovalRefused(f"--simulation {simulation_id!r} is not a simulation id (sim-YYYYMMDD-HHMMSS-xxxxxxxx)")
    found = simulation(warehouse, simulation_id)
    if found is None:
        raise ApprovalRefused(f"--simulation {simulation_id}: no such simulation in {SIMULATIONS.name}")
    model_version = found["challenger_model_version"]
    if registry.is_approved(warehouse, model_version):
        raise ApprovalRefused(f"already approved, not changed: {registry.approval_of(warehouse, model_version)}")
    warehouse.ensure_table(MODEL_VERSIONS)
    with warehouse.transaction() as tx:
        for statement in registry.approve_statements(model_version, by, at or registry.now(), reason, simulation_id):
            tx.execute(statement)
    return model_version
