"""The ranking weights configuration as an observable source asset.

Its data version is the weights' digest (the `w...` part of model_version), so when the
weights change and are observed again, every asset whose rows carry model_version (scores,
nbp_ranked, nbp_current, fairness_report: each depends on it) shows in the UI as stale
("ranking_weights has a new data version") for the weeks computed before, until re-run.
"""

from __future__ import annotations

import warnings

import dagster as dg

from nbp_assets.weekly.io import GROUP
from nbp_assets.weekly.weights import Weights

RANKING_WEIGHTS = "ranking_weights"


def weights_digest(weights: Weights) -> str:
    """The weights' digest, as in model_version (`nbp-1.0+w<digest>`): it changes when any weight does."""
    return weights.model_version.split("+w", 1)[1]


def observation(weights: Weights) -> dg.ObserveResult:
    return dg.ObserveResult(
        data_version=dg.DataVersion(weights_digest(weights)),
        metadata={
            "model_version": weights.model_version,
            "weights_source": weights.source,
            "weights": dg.MetadataValue.md(weights.matrix.to_markdown()),
        },
    )


def _observe_weights(context) -> dg.ObserveResult:
    from nbp_assets.resources import deployment_weights

    return observation(deployment_weights())


def build_ranking_weights() -> dg.AssetsDefinition:
    """The observable source asset; built as a one-spec multi_observable_source_asset so
    that it carries owners like every other asset (observable_source_asset cannot)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # multi_observable_source_asset is beta in 1.13
        return dg.multi_observable_source_asset(
            name=RANKING_WEIGHTS,
            specs=[
                dg.AssetSpec(
                    RANKING_WEIGHTS,
                    group_name=GROUP,
                    description=(
                        "The ranking weights configuration in force: per product class, the weight of each signal "
                        "(NBP_WEIGHTS_FILE or $NBP_HOME/weights.csv locally, the NBP_WEIGHTS_TABLE configuration table in "
                        "production). Every weekly run observes it first and records the weights' digest as its data "
                        "version: after a change, scores, nbp_ranked, nbp_current and fairness_report show as stale "
                        "for the weeks computed before, until re-run (reload the code location too, so the runs use the new weights)."
                    ),
                )
            ],
        )(_observe_weights)
