"""The one patch of Dagster's private API is applied on the verified version only, and fails
soft (a warning, the code location still loads) when the version or the names move."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dagster
import pytest

from nbp_assets.ops import dagster_compat


def test_the_patch_is_in_force_on_the_verified_dagster():
    from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

    assert dagster.__version__ == dagster_compat.TESTED_DAGSTER, "pinned Dagster moved: re-verify the patch"
    assert dagster_compat.patch_pool_wait() is True
    patched = InstanceConcurrencyContext.interval_to_next_pending_claim_check
    assert patched.__module__ == dagster_compat.__name__


def test_another_dagster_version_gets_a_warning_and_no_patch(monkeypatch):
    monkeypatch.setattr(dagster, "__version__", "9.9.9")
    with pytest.warns(dagster_compat.DagsterCompatWarning, match="9.9.9.*dagster-io/dagster/issues/20367"):
        assert dagster_compat._apply() is False


def test_the_code_location_loads_when_the_private_names_moved():
    """A fresh process where the private class the patch wraps has moved out of its module: one
    warning, and the definitions still load."""
    script = textwrap.dedent(
        """
        import warnings
        import dagster._core.execution.plan.instance_concurrency_context as moved
        del moved.InstanceConcurrencyContext  # as if an upgrade had moved it elsewhere
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from nbp_assets.definitions import defs
        assert defs.resolve_all_asset_keys(), "no assets"
        print([str(w.message) for w in caught if w.category.__name__ == "DagsterCompatWarning"])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "private names moved" in out.stdout
