"""The next best offer's definitions: the batch assets, jobs and sensor over the warehouse,
and, when NBP_KAFKA_BOOTSTRAP_SERVERS is set, the Kafka path's assets and sensors."""

from __future__ import annotations

import dagster as dg

from nbp_assets.offers.assets import next_best_offer_definitions
from nbp_assets.offers.kafka_assets import definitions_if_configured


def definitions() -> dg.Definitions:
    return dg.Definitions.merge(next_best_offer_definitions(), *definitions_if_configured())
