"""The ksqlDB next-best-offer recipe as event-driven assets (group next_best_offer).

offers, offer_rules -> next_best_offer -> next_best_offer_lookup

Activity events land in nbp_source.activity (in production the Kafka topic, streamed into
Snowflake by the Kafka connector). next_best_offer_sensor looks every 15 seconds and, when
events are ready, launches one micro-batch run of next_best_offer_job; it launches
offer_tables_job first whenever the offers or rules tables change. The assets are not
partitioned: a batch is a run, keyed by its batch key (see docs/next-best-offer.md).
"""

import json
import time
from dataclasses import asdict, dataclass, replace

import dagster as dg
import pandas as pd
from pydantic import Field

from nbp_assets.contract.offers import (
    NextBestOfferAsset,
    NextBestOfferLookupAsset,
    OfferRulesAsset,
    OfferRulesInput,
    OffersAsset,
    OffersInput,
)
from nbp_assets.contract.tables import NEXT_BEST_OFFER, NEXT_BEST_OFFER_LOOKUP, Table
from nbp_assets.contract.validation import validate
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.offers import inputs
from nbp_assets.offers import rules as offers_rules
from nbp_assets.offers import stream_state as stream
from nbp_assets.offers.model import (
    OFFER_CODE_VERSION,
    as_offers,
    changed_on_replay,
    lookup,
    next_best_offers,
    unaccounted,
)
from nbp_assets.weekly import checks

GROUP = "next_best_offer"
BATCH_JOB = "next_best_offer_job"
TABLES_JOB = "offer_tables_job"
SENSOR = "next_best_offer_sensor"
SENSOR_INTERVAL_SECONDS = 15  # + launch and run time: an offer within a minute of landing
MAX_BATCH_EVENTS = 2_000_000  # a backlog (e.g. after an outage) drains in batches this size
RETRY_AFTER_SECONDS = 120  # a failed batch is retried this long after it failed
STUCK_AFTER_SECONDS = 1800  # a run "in progress" longer than this no longer blocks new batches

RULES_COVERAGE = "rules_coverage"
RULES_HISTORY = "rules_history_unchanged"
EVERY_EVENT_ONCE = "every_event_offered_once"
WAITING = "events_waiting_for_customer"
EVERY_OFFER_FOUND = "every_offer_found"


class OfferBatch(dg.Config):
    batch: str = Field(
        default="",
        description="Micro-batch key, set by next_best_offer_sensor. Re-running a batch recomputes "
        "its own rows and takes any ready event; empty (a manual run) = a new batch manual-<run id>.",
    )


def _batch_key(context: dg.AssetExecutionContext, config: OfferBatch) -> str:
    key = config.batch or f"manual-{context.run_id[:8]}"
    stream.checked_key(key)  # rejects a key that could not be used safely in SQL
    return key


def _preview(df: pd.DataFrame, n: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(n).to_markdown(index=False) if len(df) else "(no rows)")


def _published_offers(wh: WarehouseResource) -> pd.DataFrame:
    if not wh.table_exists(stream.OFFERS_TABLE):
        raise dg.Failure(f"{stream.OFFERS_TABLE} has not been published yet: run {TABLES_JOB} (the sensor does)")
    return validate(OffersInput, stream.read_table(wh, stream.OFFERS_TABLE), table="offers")


def _published_rules(wh: WarehouseResource) -> offers_rules.RuleSet | None:
    if not wh.table_exists(stream.RULES_TABLE):
        return None
    return offers_rules.rules_from_frame(stream.read_table(wh, stream.RULES_TABLE), source=stream.RULES_TABLE)


def _coverage_result(rules: offers_rules.RuleSet, offer_ids: pd.Series) -> dg.AssetCheckResult:
    """The newest version decides the check; older versions are reported in the metadata."""
    reports = {int(v): offers_rules.coverage(rules.version(int(v)), offer_ids) for v in rules.versions["rules_version"]}
    newest = reports[rules.current_version]
    issues = [f"offer {o} can never be given" for o in newest.unreachable_offers] + [
        f"rule priority {r.priority} (offer {r.offer_id}) "
        + (
            f"is never reached: rule(s) {r.shadowed_by} take every input it matches"
            if r.shadowed_by
            else "matches no possible input"
        )
        for r in newest.unreachable_rules.itertuples()
    ]
    summary = {
        str(v): {
            "unreachable_offers": c.unreachable_offers,
            "unreachable_rules": c.unreachable_rules["priority"].tolist(),
            "uncovered_inputs": c.uncovered,
        }
        for v, c in reports.items()
    }
    return dg.AssetCheckResult(
        check_name=RULES_COVERAGE,
        passed=newest.clean,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"rules version {newest.rules_version}: every rule and offer reachable, every input covered"
            if newest.clean
            else f"rules version {newest.rules_version}: "
            + "; ".join(issues + [f"{len(newest.uncovered)} input region(s) only the ELSE covers"])
        ),
        metadata={
            "rules_version": newest.rules_version,
            "unreachable_offers": dg.MetadataValue.json(newest.unreachable_offers),
            "unreachable_rules": dg.MetadataValue.json(newest.unreachable_rules.to_dict("records")),
            "uncovered_inputs": dg.MetadataValue.md("\n".join(f"- {u}" for u in newest.uncovered) or "none"),
            "all_versions": dg.MetadataValue.json(summary),
        },
    )


def _history_problems(wh: WarehouseResource, rules: offers_rules.RuleSet) -> pd.DataFrame:
    """Published versions edited or removed, or a new version starting at or before an event
    already offered: either would make a replay give different offers than the first run."""
    before = _published_rules(wh)
    if before is None:
        return pd.DataFrame(columns=["rules_version", "problem"])
    cols = list(OfferRulesInput.to_schema().columns)
    old, new = before.table[cols], rules.table[cols]  # both as validated: same dtypes
    diff = old.merge(new, how="outer", indicator=True)
    edited = diff.loc[diff["rules_version"].isin(old["rules_version"]) & (diff["_merge"] != "both"), "rules_version"]
    problems = [pd.DataFrame({"rules_version": edited.unique(), "problem": "published version edited or removed"})]
    last = stream.last_offered_time(wh)
    if last is not None and pd.notna(last):
        fresh = rules.versions[~rules.versions["rules_version"].isin(old["rules_version"])]
        early = fresh[fresh["valid_from"] <= pd.Timestamp(last)]
        problems.append(
            pd.DataFrame(
                {
                    "rules_version": early["rules_version"],
                    "problem": f"starts at or before an event already offered ({last})",
                }
            )
        )
    return pd.concat(problems, ignore_index=True)


def _table_metadata(table: Table, **extra) -> dict:
    """Definition metadata from the table's one declaration: where it lives, its columns
    (the UI's column schema) and its key."""
    return {
        "table": table.name,
        "dagster/table_name": table.name,
        "dagster/column_schema": table.column_schema(),
        "key": ", ".join(table.key),
        **extra,
    }


# ----------------------------------------------------------------------------- assets


@dg.asset(
    group_name=GROUP,
    metadata={"table": stream.OFFERS_TABLE},
    check_specs=[checks.contract_spec("offers", OffersAsset)],
    kinds={"pandas", "pandera"},
)
def offers(warehouse: WarehouseResource):
    """The offers the next-best-offer rule can pick (the recipe's OFFERS table): the
    name and link shown to the customer for each OFFER_ID. From nbp_source.offers, or
    the recipe's five offers when the bank provides none."""
    df, source = checks.fail_on_violation(lambda: inputs.offers(warehouse))
    df = df.astype({"offer_name": object, "offer_url": object})
    yield from checks.gate("offers", [checks.contract_result(OffersAsset, df, stream.OFFERS_TABLE)])
    warehouse.replace_table(stream.OFFERS_TABLE, df)
    yield dg.MaterializeResult(metadata={"source": source, "dagster/row_count": len(df), "preview": _preview(df)})


_RULES_CHECKS = [
    checks.contract_spec("offer_rules", OfferRulesAsset),
    dg.AssetCheckSpec(
        RULES_HISTORY,
        asset="offer_rules",
        blocking=True,
        description="A published rules version is never edited, and a new one starts after "
        "the last offered event, so replaying any event gives the offer it first got.",
    ),
    dg.AssetCheckSpec(
        RULES_COVERAGE,
        asset="offer_rules",
        blocking=False,
        description="Exact analysis of the newest version over every possible INCOME, FICO "
        "and PROPENSITY_TO_BUY: offers and rules no input can reach, and the inputs no "
        "WHEN covers (they get the ELSE offer).",
    ),
]


@dg.asset(
    group_name=GROUP,
    deps=[offers],
    code_version=OFFER_CODE_VERSION,
    metadata={"table": stream.RULES_TABLE},
    check_specs=_RULES_CHECKS,
    kinds={"pandas", "pandera"},
)
def offer_rules(warehouse: WarehouseResource):
    """The next-best-offer rule as data: every version of the recipe's CASE, one row per
    WHEN (bounds on INCOME, FICO and PROPENSITY_TO_BUY) plus its ELSE, tried in priority
    order, first match wins. A version applies to events from its valid_from on. From
    nbp_source.offer_rules, or the recipe's own CASE as version 1; edit the table, not
    the code."""
    offer_ids = _published_offers(warehouse)["offer_id"]
    rules = checks.fail_on_violation(lambda: inputs.rules(warehouse, offer_ids))
    df = rules.table.astype({"description": object})
    history = checks.rows_result(
        RULES_HISTORY,
        _history_problems(warehouse, rules),
        "published versions unchanged; new versions start after the last offered event",
    )
    yield from checks.gate(
        "offer_rules",
        [checks.contract_result(OfferRulesAsset, df, stream.RULES_TABLE), history, _coverage_result(rules, offer_ids)],
    )
    warehouse.replace_table(stream.RULES_TABLE, df)
    current = rules.version(rules.current_version)
    yield dg.MaterializeResult(
        metadata={
            "source": rules.source,
            "versions": dg.MetadataValue.json({str(v): str(t) for v, t in rules.versions.itertuples(index=False)}),
            "current_version": rules.current_version,
            "current_rule": dg.MetadataValue.md(
                "\n".join(f"    {offers_rules.describe_rule(r)}" for _, r in current.iterrows())
            ),
            "dagster/row_count": len(df),
        }
    )


_OFFER_CHECKS = [
    checks.contract_spec("next_best_offer", NextBestOfferAsset),
    dg.AssetCheckSpec(
        EVERY_EVENT_ONCE,
        asset="next_best_offer",
        blocking=True,
        description="Every event the batch took gets exactly one offer row: none twice, "
        "none lost, none an earlier run of this batch offered and this one dropped.",
    ),
    dg.AssetCheckSpec(
        WAITING,
        asset="next_best_offer",
        blocking=False,
        description="Events whose customer has no record yet: the recipe's INNER JOIN "
        "gives them no offer. They wait in next_best_offer_pending and are offered "
        "when the record arrives.",
    ),
]


def _waiting_result(pending: pd.DataFrame) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=WAITING,
        passed=pending.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description="no event waits for a customer record"
        if pending.empty
        else f"{len(pending)} event(s) of {pending['party_id'].nunique()} unknown customer(s) wait in {stream.PENDING_TABLE}",
        metadata={"pending_events": len(pending), "examples": _preview(pending)},
    )


def _offer_metadata(df: pd.DataFrame, events: int, started: float) -> dict:
    seconds = time.perf_counter() - started
    return {
        "dagster/row_count": len(df),
        "offers_by_id": dg.MetadataValue.json(
            {str(k): int(v) for k, v in df["OFFER_ID"].value_counts().sort_index().items()}
        ),
        "rules_versions": dg.MetadataValue.json(sorted(int(v) for v in df["RULES_VERSION"].unique())),
        "seconds": round(seconds, 2),
        "events_per_second": round(events / seconds),
        "preview": _preview(df),
    }


@dg.asset(
    group_name=GROUP,
    deps=[offer_rules],
    code_version=OFFER_CODE_VERSION,
    metadata=_table_metadata(NEXT_BEST_OFFER, pending_table=stream.PENDING_TABLE),
    check_specs=_OFFER_CHECKS,
    kinds={"pandas", "pandera"},
)
def next_best_offer(context: dg.AssetExecutionContext, config: OfferBatch, warehouse: WarehouseResource):
    """The recipe's NEXT_BEST_OFFER stream: one offer per customer activity event. Each
    event joins the customer record valid when it happened (the first record if the
    event came earlier), and the rules version in force then picks OFFER_ID: first
    matching WHEN, else the ELSE offer. RULES_VERSION, RULE_PRIORITY, CUSTOMER_VALID_FROM
    and BATCH_KEY say why. One materialization per micro-batch."""
    started, batch = time.perf_counter(), _batch_key(context, config)
    rules = _published_rules(warehouse)
    if rules is None:
        raise dg.Failure(f"{stream.RULES_TABLE} has not been published yet: run {TABLES_JOB} (the sensor does)")
    replayed, new = stream.claim(warehouse, batch, MAX_BATCH_EVENTS)
    events = checks.fail_on_violation(lambda: stream.batch_events(warehouse, batch))
    versions = checks.fail_on_violation(lambda: inputs.customer_versions(warehouse, stream.parties_of(batch)))
    df, unknown = next_best_offers(events, versions, rules, batch)
    previous = stream.previous_rows(warehouse, batch)
    pending = checks.fail_on_violation(lambda: stream.pending_events(warehouse))
    bad = unaccounted(
        events["activity_id"].astype("int64"),
        df.astype({"ACTIVITY_ID": "int64"}),
        unknown["activity_id"].astype("int64"),
        previous["ACTIVITY_ID"].astype("int64"),
    )
    yield from checks.gate(
        "next_best_offer",
        [
            checks.contract_result(NextBestOfferAsset, df, stream.NBO_TABLE),
            checks.rows_result(EVERY_EVENT_ONCE, bad, "every event taken is offered exactly once or pending"),
            _waiting_result(pending),
        ],
    )
    stream.write_offers(warehouse, batch, df)
    stream.write_pending(warehouse, pending, batch)
    yield dg.MaterializeResult(
        metadata={
            "batch": batch,
            "events_new": new,
            "events_replayed": replayed,
            "replayed_offers_changed": changed_on_replay(previous, df),
            "pending_events": len(pending),
            **_offer_metadata(df, len(events), started),
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[next_best_offer, offers],
    code_version=OFFER_CODE_VERSION,
    metadata=_table_metadata(NEXT_BEST_OFFER_LOOKUP),
    check_specs=[
        checks.contract_spec("next_best_offer_lookup", NextBestOfferLookupAsset),
        dg.AssetCheckSpec(
            EVERY_OFFER_FOUND,
            asset="next_best_offer_lookup",
            blocking=True,
            description="Every OFFER_ID given is in the offers table: the recipe's final INNER JOIN drops no offer.",
        ),
    ],
    kinds={"pandas", "pandera"},
)
def next_best_offer_lookup(context: dg.AssetExecutionContext, config: OfferBatch, warehouse: WarehouseResource):
    """The recipe's NEXT_BEST_OFFER_LOOKUP, exactly its columns: each offer with the
    offer's name and link, ready for the channel that shows it. Rebuilt for this batch
    and for any earlier batch whose lookup step did not finish."""
    started, batch = time.perf_counter(), _batch_key(context, config)
    offers_df = _published_offers(warehouse)
    keys = stream.lookup_batches(warehouse, batch)
    df, missing = lookup(as_offers(stream.offer_rows(warehouse, keys)), offers_df)
    yield from checks.gate(
        "next_best_offer_lookup",
        [
            checks.contract_result(NextBestOfferLookupAsset, df, stream.LOOKUP_TABLE),
            checks.rows_result(EVERY_OFFER_FOUND, missing, "every OFFER_ID is in the offers table"),
        ],
    )
    stream.write_lookup(warehouse, df, keys)
    yield dg.MaterializeResult(
        metadata={
            "batch": batch,
            "batches_rebuilt": dg.MetadataValue.json(keys),
            "dagster/row_count": len(df),
            "seconds": round(time.perf_counter() - started, 2),
            "preview": _preview(df),
        }
    )


OFFER_ASSETS = [offers, offer_rules, next_best_offer, next_best_offer_lookup]


def build_offer_assets() -> list[dg.AssetsDefinition]:
    """offers, offer_rules, next_best_offer and next_best_offer_lookup."""
    return list(OFFER_ASSETS)


# ----------------------------------------------------------------------------- sensor


@dataclass(frozen=True)
class StreamCursor:
    """What the sensor remembers between ticks (JSON in Dagster's cursor)."""

    batch: int = 0  # number of the last batch requested; batch n's key and run_key: nbo-<n>
    tables: str | None = None  # digest of the offers/rules sources last published
    seen: list[int] | None = None  # fingerprint when the stream was last found settled
    landed: int = 0  # landed events and highest activity_id at the last batch request
    max_activity_id: int = 0
    pending: int = 0  # events waiting for a customer record when last settled

    @classmethod
    def parse(cls, text: str | None) -> "StreamCursor":
        return cls(**json.loads(text)) if text else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def batch_key(n: int) -> str:
    return f"nbo-{n:08d}"


def batch_run_config(key: str) -> dict:
    return {"ops": {name: {"config": {"batch": key}} for name in ("next_best_offer", "next_best_offer_lookup")}}


def _blocking_run(instance: dg.DagsterInstance) -> dg.RunRecord | None:
    """A run of either job still in progress (and not stuck), which the next batch must wait for."""
    busy = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    horizon = time.time() - STUCK_AFTER_SECONDS
    for job in (BATCH_JOB, TABLES_JOB):
        for record in instance.get_run_records(dg.RunsFilter(job_name=job, statuses=busy), limit=5):
            if record.create_timestamp.timestamp() > horizon:
                return record
    return None


def _recent_failure(instance: dg.DagsterInstance) -> dg.RunRecord | None:
    records = instance.get_run_records(dg.RunsFilter(job_name=BATCH_JOB), limit=1)
    if records and records[0].dagster_run.status == dg.DagsterRunStatus.FAILURE:
        ended = records[0].end_time or records[0].update_timestamp.timestamp()
        if time.time() - ended < RETRY_AFTER_SECONDS:
            return records[0]
    return None


def evaluate_stream(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    cursor = StreamCursor.parse(context.cursor)
    busy = _blocking_run(context.instance)
    if busy:
        return dg.SkipReason(f"waiting for run {busy.dagster_run.run_id} of {busy.dagster_run.job_name}")
    digest = inputs.digest(warehouse)
    if digest != cursor.tables:
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(job_name=TABLES_JOB, run_key=f"offer-tables-{digest}", tags={"nbo/tables_digest": digest})
            ],
            cursor=replace(cursor, tables=digest, seen=None).dump(),
        )
    if not (warehouse.table_exists(stream.OFFERS_TABLE) and warehouse.table_exists(stream.RULES_TABLE)):
        return dg.SkipReason(f"offers and rules not published: see the last {TABLES_JOB} run")
    fingerprint = stream.fingerprint(warehouse)
    if fingerprint == cursor.seen:
        return dg.SkipReason(
            f"nothing new since batch {batch_key(cursor.batch)}; "
            f"{cursor.pending} event(s) waiting for a customer record"
        )
    todo = stream.backlog(warehouse)
    if not (todo["ready"] or todo["lookup_gap"]):
        return dg.SensorResult(
            skip_reason=f"every landed event offered; {todo['pending']} event(s) waiting for a customer record",
            cursor=replace(cursor, seen=fingerprint, pending=todo["pending"]).dump(),
        )
    failed = _recent_failure(context.instance)
    if failed:
        return dg.SkipReason(f"batch run {failed.dagster_run.run_id} failed; retrying {RETRY_AFTER_SECONDS}s after it")
    n = cursor.batch + 1
    key = batch_key(n)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                job_name=BATCH_JOB,
                run_key=key,
                run_config=batch_run_config(key),
                tags={
                    "nbo/batch": key,
                    "nbo/ready_events": str(todo["ready"]),
                    "nbo/pending_events": str(todo["pending"]),
                },
            )
        ],
        cursor=replace(cursor, batch=n, seen=None, landed=fingerprint[0], max_activity_id=fingerprint[1]).dump(),
    )


next_best_offer_job = dg.define_asset_job(
    BATCH_JOB,
    selection=dg.AssetSelection.assets(next_best_offer, next_best_offer_lookup),
    description="One micro-batch of the offer stream: offer every ready activity event, then publish the lookup.",
    executor_def=dg.in_process_executor,
)
offer_tables_job = dg.define_asset_job(
    TABLES_JOB,
    selection=dg.AssetSelection.assets(offers, offer_rules),
    description="Publish the offers and the rules (and check the rules) after either source table changed.",
    executor_def=dg.in_process_executor,
)


@dg.sensor(
    name=SENSOR,
    jobs=[next_best_offer_job, offer_tables_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 15 s: publish changed offers/rules, then launch a micro-batch when activity events "
    "are ready to offer (or an offer is missing from the lookup). One run at a time; each batch's run_key "
    "is its key, so a restarted daemon never launches a batch twice.",
)
def next_best_offer_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    return evaluate_stream(context, warehouse)


def next_best_offer_definitions() -> dg.Definitions:
    """The next-best-offer recipe: its assets, the micro-batch and tables jobs, and the sensor."""
    return dg.Definitions(
        assets=build_offer_assets(), jobs=[next_best_offer_job, offer_tables_job], sensors=[next_best_offer_sensor]
    )
