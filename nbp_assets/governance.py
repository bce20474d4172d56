"""Who answers for each asset, which assets hold personal data and which carry the model.

Shown in the UI as each asset's owners and tags (filterable in the catalog): a data
protection review finds every table with customer-level rows by `personal_data=yes`, a
model review every output that depends on the ranking weights by `model=MOD-107`.
"""

from __future__ import annotations

import dagster as dg

DATA_PLATFORM = "team:data-platform"  # runs the weekly engine and the offer stream
COMPLIANCE = "team:compliance"  # reviews fairness (CON-001) and acts on its alerts

PERSONAL_DATA = "personal_data"  # yes: rows about identifiable customers (party_id)
MODEL = "model"  # the model whose version is on every row

# asset -> (owners, holds personal data, model it carries or None)
GOVERNANCE: dict[str, tuple[tuple[str, ...], bool, str | None]] = {
    "ranking_weights": ((DATA_PLATFORM,), False, "MOD-107"),
    "customers": ((DATA_PLATFORM,), True, None),
    "activity": ((DATA_PLATFORM,), True, None),
    "eligibility": ((DATA_PLATFORM,), True, None),
    "signals": ((DATA_PLATFORM,), True, None),
    "scores": ((DATA_PLATFORM,), True, "MOD-107"),
    "nbp_ranked": ((DATA_PLATFORM,), True, "MOD-107"),
    "nbp_current": ((DATA_PLATFORM,), True, "MOD-107"),
    # rates per group of customers, never a customer: not personal data
    "fairness_report": ((COMPLIANCE, DATA_PLATFORM), False, "MOD-107"),
    # rates and drift statistics per product, group or signal: never a customer
    "offer_outcomes": ((DATA_PLATFORM, COMPLIANCE), False, "MOD-107"),
    "model_drift": ((DATA_PLATFORM,), False, "MOD-107"),
    "offers": ((DATA_PLATFORM,), False, None),
    "offer_rules": ((DATA_PLATFORM,), False, "MOD-108"),
    "next_best_offer": ((DATA_PLATFORM,), True, "MOD-108"),
    "next_best_offer_lookup": ((DATA_PLATFORM,), True, "MOD-108"),
    # the offers and rules versions published to their Kafka topics (only with NBP_KAFKA_BOOTSTRAP_SERVERS)
    "offer_topics": ((DATA_PLATFORM,), False, "MOD-108"),
}


def tags_of(asset: str) -> dict[str, str]:
    _, personal, model = GOVERNANCE[asset]
    return {PERSONAL_DATA: "yes" if personal else "no", **({MODEL: model} if model else {})}


def govern(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The spec with its owners and governance tags (an asset missing from GOVERNANCE is an
    error: every asset must say whether it holds personal data)."""
    name = spec.key.to_user_string()
    if name not in GOVERNANCE:
        raise KeyError(f"asset {name} has no entry in nbp_assets/governance.py GOVERNANCE")
    return spec.merge_attributes(owners=list(GOVERNANCE[name][0]), tags=tags_of(name))
