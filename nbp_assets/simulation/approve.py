"""`python -m nbp_assets approve --simulation ID --reason "..."`, and the publish's approval
gate (NBP_REQUIRE_APPROVAL).

A challenger becomes the champion: simulate -> review the recorded simulation -> approve it
(this command: who = NBP_OPERATOR or the login name, when, why, which simulation, on the
challenger's model_version row of product_intelligence.model_versions) -> deploy its weights
-> the first week that ranks with them records the version's first week in the registry.
With NBP_REQUIRE_APPROVAL on (production's default) nbp_current does not publish a week whose
model_version has no approval. docs/governance.md.

Exit codes of `approve`: 0 recorded; 2 refused (an empty or multi-line reason, a malformed or
unknown simulation id, a model_version already approved, a bad NBP_* setting), one line on
stderr, nothing written.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from nbp_assets.core import settings
from nbp_assets.simulation import trail
from nbp_assets.weekly import registry


def _refused(message: str) -> SystemExit:
    print(f"approve: {message}", file=sys.stderr)
    return SystemExit(2)


def cmd_approve(args: argparse.Namespace) -> None:
    from nbp_assets.resources import open_warehouse

    try:
        by = settings.operator_name()
        # the input is checked before the warehouse is opened
        if not (args.reason or "").strip():
            raise trail.ApprovalRefused(
                '--reason is empty: say why the challenger may ship, e.g. --reason "CR-123: ..."'
            )
        with open_warehouse().session() as warehouse:
            model_version = trail.approve(warehouse, args.simulation, args.reason, by)
            line = registry.approval_of(warehouse, model_version)
    except (trail.ApprovalRefused, settings.ConfigurationError) as exc:
        raise _refused(str(exc)) from None
    print(line)


def add_parser(sub) -> None:
    """Register `approve` on the CLI (nbp_assets/cli.py)."""
    summary = "record who approved a simulated challenger's model_version, when, why and after which simulation"
    p = sub.add_parser(
        "approve",
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]} (product_intelligence.model_versions). "
        "Who is NBP_OPERATOR, else the login name. An approval is never overwritten. Exit codes: 0 recorded; "
        "2 refused (empty reason, unknown simulation, already approved), one line on stderr, nothing written.",
    )
    p.add_argument(
        "--simulation",
        required=True,
        help="the simulation's id, as `simulate` printed it (sim-YYYYMMDD-HHMMSS-xxxxxxxx) (required, no default)",
    )
    p.add_argument("--reason", required=True, help="why the challenger may ship, one line (required, no default)")
    p.set_defaults(func=cmd_approve)


def approval_gate(warehouse, model_version: str, log) -> str:
    """Before nbp_current publishes: with NBP_REQUIRE_APPROVAL on, a model_version without a
    recorded approval fails the step (nothing published). Returns the line for the metadata."""
    try:
        required = settings.require_approval()
    except settings.ConfigurationError as exc:
        raise dg.Failure(description=str(exc), metadata={"published": False}) from None
    if not required:
        where = "locally" if settings.deployment() == "local" else "in this deployment"
        line = f"approval not required {where} (NBP_REQUIRE_APPROVAL off); {registry.approval_of(warehouse, model_version)}"
        log.info(line)
        return line
    if not registry.is_approved(warehouse, model_version):
        raise dg.Failure(
            description=f"nbp_current not published: model_version {model_version} has no approval recorded in "
            f"{registry.MODEL_VERSIONS.name} (NBP_REQUIRE_APPROVAL is on). Simulate its weights "
            "(python -m nbp_assets simulate --weights FILE --week W), then "
            'python -m nbp_assets approve --simulation ID --reason "..."; docs/governance.md.',
            metadata={"published": False, "model_version": model_version},
        )
    return registry.approval_of(warehouse, model_version)
