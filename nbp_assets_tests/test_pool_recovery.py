"""A run killed while it holds the `nbp_weekly` pool slot must not wedge later runs.

The local instance limits pools to one slot. A run process killed by SIGKILL (the OOM killer,
a lost host) never gives its slot back and its run stays STARTED: without a guard the next
`materialize` waits for ever. The CLI tags its runs with their process, and before launching
fails the runs whose process is gone and frees their slots; while a step waits it says who
holds the slot; `pools` shows holders and frees a dead run's slots.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from nbp_assets.cli import LOCAL_INSTANCE_YAML, _ensure_dagster_home, main
from nbp_assets.ops import pools as ops_pools

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[1]
POOL = "nbp_weekly"

# The real CLI, with a first weekly step that takes for ever: the process claims the pool
# slot, then sleeps in it until it is killed (a heavy step killed by the OOM killer).
HANG_AFTER_CLAIM = textwrap.dedent("""
    import sys, time
    from dagster._core.execution.plan import instance_concurrency_context as icc

    claim = icc.InstanceConcurrencyContext.claim

    def claim_then_hang(self, *args, **kwargs):
        claimed = claim(self, *args, **kwargs)
        if claimed:
            time.sleep(3600)
        return claimed

    icc.InstanceConcurrencyContext.claim = claim_then_hang
    from nbp_assets.cli import main
    main(sys.argv[1:])
""")


def _create_instance() -> None:
    """The instance of $DAGSTER_HOME, written and its storage created, as the CLI does."""
    _ensure_dagster_home()
    with dg.DagsterInstance.get():
        pass


def _held(dagster_home: Path) -> list[ops_pools.Slot]:
    if not (dagster_home / "dagster.yaml").exists():
        return []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return [slot for state in ops_pools.pool_states(instance) for slot in state.held]


def _wait_for_held_slot(dagster_home: Path, proc: subprocess.Popen, log: Path, timeout: float = 60) -> ops_pools.Slot:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the first run ended early:\n{log.read_text()[-3000:]}"
        held = _held(dagster_home)
        if held:
            return held[0]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the first run never claimed a pool slot:\n{log.read_text()[-3000:]}")


def _wait_for_waiting_step(dagster_home: Path, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the waiting run ended early:\n{log.read_text()[-3000:]}"
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            if any(state.waiting for state in ops_pools.pool_states(instance)):
                return
        time.sleep(0.2)
    raise AssertionError(f"no step ever waited for the pool:\n{log.read_text()[-3000:]}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_killed_materialize_does_not_wedge_the_next(tmp_path, monkeypatch, clean_postgres, capsys):
    home = tmp_path / "home"
    dagster_home = home / "dagster_home"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(NBP_HOME=str(home), NBP_POSTGRES_URL=clean_postgres, PYTHONUNBUFFERED="1")
    cli = [sys.executable, "-m", "nbp_assets"]

    monkeypatch.setenv("NBP_HOME", str(home))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_postgres)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))  # what the CLI would pick; for `pools` below
    main(["generate", "--customers", "300", "--weeks", "1"])
    _create_instance()  # as the CLI does; created here, this test's polling never races its creation

    # 1. A materialize holds the slot of pool nbp_weekly, and is killed (SIGKILL) in it.
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as out:
        first = subprocess.Popen(
            [sys.executable, "-c", HANG_AFTER_CLAIM, "materialize"],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        slot = _wait_for_held_slot(dagster_home, first, first_log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed = slot.run_id
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_run_by_id(killed)
        assert run.tags[ops_pools.PID_TAG] == str(first.pid)
        assert run.status == dg.DagsterRunStatus.STARTED  # what a killed in-process run leaves behind
    assert [s.run_id for s in _held(dagster_home)] == [killed]  # ... with the slot: the wedge

    # 2. `pools` names the holder, its dead process, and how to free it.
    capsys.readouterr()
    main(["pools"])
    shown = capsys.readouterr().out
    assert f"pool {POOL}: limit 1, 1 slot(s) held" in shown
    assert killed in shown and f"pid {first.pid} on this host: process gone" in shown
    assert f"pools --free {killed}" in shown

    # 3. The next materialize frees it, says so, and completes (a wedge fails at the timeout).
    try:
        second = subprocess.run(
            [*cli, "materialize"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the second materialize hung:\n{(exc.stdout or b'')[-3000:]!r}") from None
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert f"freed the pool slots of run {killed}" in second.stdout
    assert "marked FAILURE" in second.stdout and ": succeeded in" in second.stdout

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
        assert [s for state in ops_pools.pool_states(instance) for s in state.held] == []
        failure = instance.all_logs(killed, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "Marked failed by the nbp_assets CLI" in failure[-1].message
    assert "run_monitoring:" in (dagster_home / "dagster.yaml").read_text()


# ------------------------------------------------------------------------ waiting for a slot

SMALL_JOB = textwrap.dedent("""
    import sys, time
    import dagster as dg
    from nbp_assets.ops.pools import execute_job

    @dg.op(pool="nbp_weekly")
    def heavy():
        time.sleep(float(sys.argv[1]))

    @dg.job(executor_def=dg.in_process_executor)
    def small():
        heavy()

    with dg.DagsterInstance.get() as instance:
        print("success" if execute_job(small, instance, raise_on_error=False).success else "failure", flush=True)
""")


@dg.op(pool=POOL)
def light():
    return 1


@dg.job(executor_def=dg.in_process_executor)
def light_job():
    light()


def test_a_waiting_step_names_the_holder_and_frees_it_when_its_process_dies(tmp_path, monkeypatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    _create_instance()
    script = tmp_path / "small.py"
    script.write_text(SMALL_JOB)
    holder_log = tmp_path / "holder.log"
    with open(holder_log, "w") as out:
        holder = subprocess.Popen([sys.executable, str(script), "600"], stdout=out, stderr=subprocess.STDOUT)
    try:
        slot = _wait_for_held_slot(dagster_home, holder, holder_log)

        # A run waiting for the slot sleeps (Dagster 1.13 alone spins a core) and stops on SIGTERM.
        waiter_log = tmp_path / "waiter.log"
        with open(waiter_log, "w") as out:
            waiter = subprocess.Popen([sys.executable, str(script), "0"], stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_for_waiting_step(dagster_home, waiter, waiter_log)
            busy = _cpu_seconds(waiter.pid)
            time.sleep(2)
            busy = _cpu_seconds(waiter.pid) - busy
            waiter.send_signal(signal.SIGTERM)
            waiter.wait(timeout=20)
        finally:
            waiter.kill()
            waiter.wait()
        assert busy < 0.5, f"a waiting run used {busy:.2f} s of CPU in 2 s"
        said = waiter_log.read_text()
        assert "interrupted while waiting for a concurrency pool slot" in said and said.endswith("failure\n")
        with dg.DagsterInstance.get() as instance:
            assert not [s for state in ops_pools.pool_states(instance) for s in state.waiting]  # its claim is gone

        lines: list[str] = []
        told = threading.Event()

        def out(line: str) -> None:
            lines.append(line)
            if "this run continues when that step ends" in line:
                told.set()

        def kill_holder_once_told() -> None:
            if told.wait(timeout=30):
                holder.send_signal(signal.SIGKILL)
                holder.wait()

        killer = threading.Thread(target=kill_holder_once_told)
        killer.start()
        started = time.monotonic()
        with dg.DagsterInstance.get() as instance:
            result = ops_pools.execute_job(light_job, instance, out=out, raise_on_error=False)
        killer.join()
    finally:
        holder.kill()
        holder.wait()
    text = "\n".join(lines)
    assert result.success, text
    assert time.monotonic() - started < 40, text
    # While it waited: which step of which run holds the slot, since when, its process.
    assert f"step light of this run ({result.run_id}) is waiting for a slot of pool {POOL} (limit 1)" in text
    assert (
        f"held by step heavy of run {slot.run_id} (small; status STARTED; pid {holder.pid} on this host: running) since "
        in text
    )
    # Then the holder was killed: freed by the waiting run itself, which then ran.
    assert f"freed the pool slots of run {slot.run_id}" in text and "marked FAILURE" in text
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(slot.run_id).status == dg.DagsterRunStatus.FAILURE


def test_pools_free_refuses_a_live_run_and_frees_a_foreign_one(tmp_path, monkeypatch, capsys):
    """A run the CLI cannot check (UI, schedule, other host) is freed only on the operator's word."""
    from dagster._core.events import DagsterEvent, DagsterEventType

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        live = instance.create_run_for_job(light_job, tags=ops_pools.process_tags())  # this process
        foreign = instance.create_run_for_job(
            light_job, tags={ops_pools.HOST_TAG: "another-host", ops_pools.PID_TAG: "1"}
        )
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(POOL)
        for run in (live, foreign):  # live claims the one slot; foreign queues behind it
            instance.report_dagster_event(
                DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name), run_id=run.run_id
            )
            storage.claim_concurrency_slot(POOL, run.run_id, "light")
        assert ops_pools.free_dead_runs(instance, out=lambda line: None) == []  # neither is provably dead

    main(["pools"])
    shown = capsys.readouterr().out
    assert f"held by step light of run {live.run_id}" in shown and "on this host: running" in shown
    assert f"waiting: step light of run {foreign.run_id}" in shown

    with pytest.raises(SystemExit, match="is still running"):
        main(["pools", "--free", live.run_id])
    main(["pools", "--free", foreign.run_id])
    assert f"freed the pool slots of run {foreign.run_id}" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(foreign.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
