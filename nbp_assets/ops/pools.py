"""Concurrency pools of a Dagster instance, for the operator: who holds a slot, and freeing
the slots of runs whose process is gone.

Every weekly step is in pool `nbp_weekly` (one slot locally). A step holds its slot until it
ends; a run process killed by SIGKILL, the OOM killer or a lost host never gives it back, and
every later run waits on it. Dagster's daemon frees the slots of *finished* runs
(`run_monitoring.free_slots_after_run_end_seconds` in dagster.yaml), but the CLI runs jobs
in its own process without a daemon, and a killed in-process run stays STARTED for ever.

So the CLI (cli.py) tags each run it starts with its process (host, pid, process start time:
a recycled pid is not mistaken for the run), and before it launches a run it:

- fails every unfinished run whose recorded process is gone on this host, and frees its slots;
- frees the slots still held by finished runs.

While its run waits for a slot it prints which run holds it, since when, and how to free it
(PoolWaitReporter), and frees it itself if that holder's process dies meanwhile.
`python -m nbp_assets pools [--free RUN_ID]` shows the holders and frees a dead run's slots.
Runs started elsewhere (UI, schedule, another host) are never freed automatically: their
process cannot be checked from here; the operator decides with `pools --free`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from nbp_assets.ops import dagster_compat

if TYPE_CHECKING:
    import dagster as dg

# Run tags written by the CLI: where the run's process lives.
HOST_TAG = "nbp/host"
PID_TAG = "nbp/pid"
PID_START_TAG = "nbp/pid_start"  # the process's start time (clock ticks since boot, /proc/<pid>/stat)
LAUNCHED_BY_TAG = "nbp/launched_by"

Print = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------------------ processes


def _process_start(pid: int) -> str | None:
    """The start time of a live process (Linux), "" where /proc is unavailable, None if the
    process does not exist or is a zombie (killed, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3, starttime field 22
    return None if fields[0] in ("Z", "X") else fields[19]


def process_tags() -> dict[str, str]:
    """Tags that identify this process, for a run it executes in-process."""
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        PID_START_TAG: _process_start(pid) or "",
        LAUNCHED_BY_TAG: "cli",
    }


@dataclass(frozen=True)
class RunProcess:
    alive: bool | None  # None: cannot be told from here
    text: str  # for the operator, e.g. "pid 4242 on this host: running"


def run_process(tags: dict) -> RunProcess:
    host, pid = tags.get(HOST_TAG), tags.get(PID_TAG)
    if not host or not pid or not pid.isdigit():
        return RunProcess(
            None, "not started by the nbp_assets CLI (UI, schedule or sensor): its process is not recorded"
        )
    if host != socket.gethostname():
        return RunProcess(None, f"pid {pid} on host {host}: cannot be checked from {socket.gethostname()}")
    start = _process_start(int(pid))
    recorded = tags.get(PID_START_TAG, "")
    if start is None or (start and recorded and start != recorded):
        return RunProcess(False, f"pid {pid} on this host: process gone")
    return RunProcess(True, f"pid {pid} on this host: running")


# ---------------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class Slot:
    pool: str
    run_id: str
    step_key: str
    since: datetime | None  # when the slot was assigned to the step


@dataclass(frozen=True)
class PoolState:
    pool: str
    limit: int | None
    held: list[Slot]
    waiting: list[Slot]  # steps queued for a slot; `since` = when they asked


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def pool_states(instance: dg.DagsterInstance, pools: Iterable[str] | None = None) -> list[PoolState]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    keys = sorted(pools if pools is not None else storage.get_concurrency_keys())
    states = []
    for key, info in storage.get_concurrency_infos(keys).items():
        assigned = {(p.run_id, p.step_key): _utc(p.assigned_timestamp) for p in info.pending_steps}
        held = [Slot(key, s.run_id, s.step_key, assigned.get((s.run_id, s.step_key))) for s in info.claimed_slots]
        waiting = [
            Slot(key, p.run_id, p.step_key, _utc(p.enqueued_timestamp))
            for p in info.pending_steps
            if p.assigned_timestamp is None
        ]
        states.append(PoolState(key, info.limit, held, waiting))
    return states


def holding_run_ids(instance: dg.DagsterInstance) -> set[str]:
    """Runs with a claimed slot or a queued/assigned step in any pool."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return set()
    run_ids = set(storage.get_concurrency_run_ids())
    for state in pool_states(instance):
        run_ids.update(slot.run_id for slot in state.held)
    return run_ids


def _ago(when: datetime | None) -> str:
    if when is None:
        return "unknown time"
    seconds = int(time.time() - when.timestamp())
    span = f"{seconds}s" if seconds < 120 else f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"
    return f"{when.astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')} ({span} ago)"


def describe_run(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (not in this instance's run storage)"
    week = run.tags.get("dagster/partition")
    return (
        f"run {run_id} ({run.job_name}{f', week {week}' if week else ''}; status {run.status.value}; "
        f"{run_process(run.tags).text})"
    )


# ------------------------------------------------------------------------------- freeing


def free_run(instance: dg.DagsterInstance, run_id: str, reason: str) -> str:
    """Fail the run if it is unfinished, then free every pool slot and queued step it holds."""
    run = instance.get_run_by_id(run_id)
    what = describe_run(instance, run_id)
    if run is not None and not run.is_finished:
        instance.report_run_failed(run, f"Marked failed by the nbp_assets CLI: {reason}. Its pool slots were freed.")
        what += " -> marked FAILURE"
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return f"freed the pool slots of {what}: {reason}"


def free_dead_runs(instance: dg.DagsterInstance, out: Print = _print) -> list[str]:
    """Free the slots of runs that can no longer give them back. Returns their run ids.

    - an unfinished run whose recorded process (this host) is gone: marked failed, slots freed;
    - a finished run that still holds slots (killed after Dagster marked it, or freed by no
      daemon): slots freed, unless its process is known to be still running;
    - slots of a run unknown to the run storage: freed.
    Unfinished runs whose process cannot be checked here are left alone (see `pools`).
    """
    freed = []
    for run_id in sorted(holding_run_ids(instance)):
        run = instance.get_run_by_id(run_id)
        if run is None:
            reason = "the run does not exist in this instance"
        else:
            process = run_process(run.tags)
            if run.is_finished and process.alive is not True:
                reason = f"the run had already ended ({run.status.value}) without giving them back"
            elif not run.is_finished and process.alive is False:
                reason = "its process was killed (SIGKILL, out of memory or a lost host) while the run was in progress"
            else:
                continue
        out(free_run(instance, run_id, reason))
        freed.append(run_id)
    return freed


def pools_report(instance: dg.DagsterInstance) -> list[str]:
    """What `python -m nbp_assets pools` prints."""
    states = pool_states(instance)
    if not states:
        return ["no concurrency pool has been used in this instance yet"]
    lines = []
    for state in states:
        lines.append(
            f"pool {state.pool}: limit {state.limit if state.limit is not None else 'none'}, "
            f"{len(state.held)} slot(s) held, {len(state.waiting)} step(s) waiting"
        )
        for slot in state.held:
            run = instance.get_run_by_id(slot.run_id)
            alive = run_process(run.tags).alive if run is not None else False
            lines.append(
                f"  held by step {slot.step_key} of {describe_run(instance, slot.run_id)} since {_ago(slot.since)}"
            )
            if run is None or run.is_finished or alive is False:
                lines.append(
                    f"    it can never give the slot back: free it with "
                    f"`python -m nbp_assets pools --free {slot.run_id}` (or `pools --free-dead`)"
                )
            elif alive is None:
                lines.append(
                    f"    if that run's process is gone (killed, lost host), free it with "
                    f"`python -m nbp_assets pools --free {slot.run_id}`"
                )
        for slot in state.waiting:
            lines.append(f"  waiting: step {slot.step_key} of run {slot.run_id} since {_ago(slot.since)}")
    return lines


# ------------------------------------------------------------------------------- waiting


class PoolWaitReporter:
    """While `run_id` executes, says when one of its steps waits for a pool slot: which run
    holds the slot, since when, and how to free it. If the holder is a CLI run of this host
    whose process is gone, frees it (the waiting step then claims the slot).

    Polls the instance from a thread, with its own instance object (storage connections are
    not shared with the run's thread)."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        out: Print = _print,
        poll_seconds: float = 2.0,
        repeat_seconds: float = 60.0,
    ):
        self._ref = instance.get_ref() if not instance.is_ephemeral else None
        self._instance = instance
        self.run_id = run_id
        self._out = out
        self._poll = poll_seconds
        self._repeat = repeat_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nbp-pool-wait", daemon=True)
        self._told: dict[str, tuple[frozenset, float]] = {}  # waiting step -> (holders told, when)

    def __enter__(self) -> PoolWaitReporter:
        if self._instance.event_log_storage.supports_global_concurrency_limits:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        import dagster as dg

        instance = dg.DagsterInstance.from_ref(self._ref) if self._ref else self._instance
        try:
            while not self._stop.wait(self._poll):
                try:
                    self.check(instance)
                except Exception as exc:  # a report must never break the run it reports on
                    self._out(f"(pool wait report unavailable: {type(exc).__name__}: {exc})")
                    return
        finally:
            if instance is not self._instance:
                instance.dispose()

    def check(self, instance: dg.DagsterInstance) -> None:
        now = time.time()
        for state in pool_states(instance):
            mine = [
                s
                for s in state.waiting
                if s.run_id == self.run_id and s.since is not None and now - s.since.timestamp() >= self._poll
            ]
            holders = [h for h in state.held if h.run_id != self.run_id]
            if mine:  # a holder that can never give its slot back is freed at once
                freed = set()
                for holder in holders:
                    run = instance.get_run_by_id(holder.run_id)
                    if holder.run_id in freed or not (
                        run is None or run.is_finished or run_process(run.tags).alive is False
                    ):
                        continue
                    reason = (
                        "the run had ended without giving its slots back"
                        if run is None or run.is_finished
                        else "its process is gone (killed while holding the slot)"
                    )
                    self._out(
                        f"while this run ({self.run_id}) waited for pool {state.pool}, "
                        + free_run(instance, holder.run_id, reason)
                    )
                    freed.add(holder.run_id)
                holders = [h for h in holders if h.run_id not in freed]
                if freed:  # said enough: the step now claims the slot
                    for slot in mine:
                        self._told[slot.step_key] = (frozenset((h.run_id, h.step_key) for h in holders), now)
            for slot in mine:
                key = frozenset((h.run_id, h.step_key) for h in holders)
                told, when = self._told.get(slot.step_key, (None, 0.0))
                if key == told and now - when < self._repeat:
                    continue
                self._told[slot.step_key] = (key, now)
                self._out(
                    f"step {slot.step_key} of this run ({self.run_id}) is waiting for a slot of pool "
                    f"{state.pool} (limit {state.limit}) since {_ago(slot.since)}"
                )
                if not holders:
                    self._out("  no run holds a slot now: the step claims one within seconds")
                for holder in holders:
                    self._out(
                        f"  held by step {holder.step_key} of {describe_run(instance, holder.run_id)} "
                        f"since {_ago(holder.since)}"
                    )
                    run = instance.get_run_by_id(holder.run_id)
                    if run is not None and run_process(run.tags).alive is None:
                        self._out(
                            f"  this run continues when that step ends. If that run's process is gone "
                            f"(killed, lost host), free its slot with: "
                            f"python -m nbp_assets pools --free {holder.run_id}"
                        )
                    else:
                        self._out("  this run continues when that step ends")


def execute_job(job, instance: dg.DagsterInstance, out: Print = _print, **kwargs):
    """`job.execute_in_process` against a persistent instance, with the pool guard: frees the
    slots of dead runs first, tags the run with this process, reports waits for a slot."""
    dagster_compat.patch_pool_wait()
    free_dead_runs(instance, out)
    run_id = str(uuid.uuid4())
    tags = {**(kwargs.pop("tags", None) or {}), **process_tags()}
    with PoolWaitReporter(instance, run_id, out):
        return job.execute_in_process(instance=instance, run_id=run_id, tags=tags, **kwargs)
