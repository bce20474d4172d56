"""Shared helpers of the next-best-offer tests: a local deployment, and sensor ticks run the
way the daemon runs them (evaluate, launch each run request, keep the cursor)."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from nbp_assets.offers import assets as nbo
from nbp_assets.offers import stream_state as stream


@dataclass
class Stream:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: str | None = None
    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)  # run keys, in launch order

    @property
    def warehouse(self):
        return self.defs.resources["warehouse"]

    def sql(self, query: str) -> pd.DataFrame:
        return self.warehouse.query(query)

    def evaluate(self, cursor: str | None = None) -> dg.SensorResult:
        """One sensor evaluation from `cursor` (default: the saved one), nothing launched."""
        sensor = self.defs.resolve_sensor_def(nbo.SENSOR)
        context = dg.build_sensor_context(
            instance=self.instance, cursor=cursor or self.cursor, resources=self.defs.resources
        )
        return sensor.evaluate_tick(context)

    def launch(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(request.job_name)
        result = job.execute_in_process(
            run_config=request.run_config, tags=request.tags, instance=self.instance, raise_on_error=False
        )
        self.results.append(result)
        return result

    def tick(self) -> dg.SensorResult:
        """Evaluate, launch what it requests, save the cursor (as the daemon does)."""
        result = self.evaluate()
        for request in result.run_requests or []:
            self.launch(request)
            self.launched.append(request.run_key)
        self.cursor = result.cursor or self.cursor
        return result

    def drain(self, max_ticks: int = 6) -> list[str]:
        """Tick until the sensor skips; the run keys it launched, in order."""
        keys = []
        for _ in range(max_ticks):
            result = self.tick()
            if not result.run_requests:
                return keys
            keys += [r.run_key for r in result.run_requests]
        raise AssertionError(f"the sensor still requested runs after {max_ticks} ticks: {keys}")

    def offers(self) -> pd.DataFrame:
        return self.sql(f"SELECT * FROM {stream.NBO_TABLE} ORDER BY ACTIVITY_ID")

    def lookup(self) -> pd.DataFrame:
        return self.sql(f"SELECT * FROM {stream.LOOKUP_TABLE} ORDER BY ACTIVITY_ID")


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    mats = result.asset_materializations_for_node(asset)
    assert mats, f"{asset} was not materialized"
    return {k: v.value for k, v in mats[-1].metadata.items()}


def check(result: dg.ExecuteInProcessResult, asset: str, name: str) -> dg.AssetCheckEvaluation:
    found = [
        e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(asset) and e.check_name == name
    ]
    assert found, f"check {asset}:{name} did not run"
    return found[-1]
