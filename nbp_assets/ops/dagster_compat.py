"""The one place this code location changes Dagster's own behaviour, and how it stays safe
across Dagster upgrades.

Upstream: dagster-io/dagster#20367 (closed unmerged). In Dagster 1.13 the in-process
executor (the weekly job's) waits for a concurrency pool slot in a loop that never sleeps:
`InstanceConcurrencyContext.interval_to_next_pending_claim_check` returns `min([0, ...])`. A
waiting run spins a core at 100% the whole time, slowing the run it waits for, and Ctrl-C /
SIGTERM are only captured during the wait (raised when a step starts), so it cannot be stopped.

The patch makes the loop sleep at least POOL_WAIT_POLL_SECONDS while a claim is pending
(claims are still re-checked on Dagster's own backoff) and ends the wait as an interrupted run
when an interrupt was captured. It is applied only on the Dagster version it was verified on
(TESTED_DAGSTER); on any other version, or when the private names it needs have moved, it
warns once and does nothing: runs then wait as Dagster makes them wait, and the code location
still loads. On an upgrade: re-read the upstream issue, re-run test_pool_recovery.py, then
move TESTED_DAGSTER (or drop this module if Dagster sleeps by itself).
"""

from __future__ import annotations

import warnings

TESTED_DAGSTER = "1.13.27"
UPSTREAM_ISSUE = "https://github.com/dagster-io/dagster/issues/20367"
POOL_WAIT_POLL_SECONDS = 0.5

_state = {"tried": False, "applied": False}


class DagsterCompatWarning(UserWarning):
    """The pool-wait patch was not applied (another Dagster version, or its names moved)."""


def patch_pool_wait() -> bool:
    """Apply the pool-wait patch once per process; True when it is in force."""
    if not _state["tried"]:
        _state["tried"] = True
        _state["applied"] = _apply()
    return _state["applied"]


def _apply() -> bool:
    import dagster

    if dagster.__version__ != TESTED_DAGSTER:
        return _skip(f"Dagster {dagster.__version__} is not the verified {TESTED_DAGSTER}")
    try:
        from dagster._core.errors import DagsterExecutionInterruptedError
        from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
        from dagster._utils.interrupts import pop_captured_interrupt
    except ImportError as moved:
        return _skip(f"Dagster's private names moved ({moved})")
    original = getattr(InstanceConcurrencyContext, "interval_to_next_pending_claim_check", None)
    if original is None or not hasattr(InstanceConcurrencyContext, "has_pending_claims"):
        return _skip("InstanceConcurrencyContext no longer has the methods the patch wraps")

    def interval_to_next_pending_claim_check(self) -> float:
        interval = original(self)
        if not self.has_pending_claims():
            return interval
        if pop_captured_interrupt():
            raise DagsterExecutionInterruptedError("interrupted while waiting for a concurrency pool slot")
        return max(interval, POOL_WAIT_POLL_SECONDS)

    InstanceConcurrencyContext.interval_to_next_pending_claim_check = interval_to_next_pending_claim_check
    return True


def _skip(reason: str) -> bool:
    warnings.warn(
        f"pool-wait patch not applied: {reason}; a run waiting for a pool slot may spin a core "
        f"and ignore Ctrl-C until its step starts ({UPSTREAM_ISSUE})",
        DagsterCompatWarning,
        stacklevel=3,
    )
    return False
