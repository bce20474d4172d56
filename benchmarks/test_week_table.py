"""The benchmark's reading of a run (step times, metadata, failure) and its table.

The full bench (generate + the weekly job in a child process) takes about a minute even at
300 customers, mostly process and PostgreSQL start-up: it is not run here. A toy run in a
temporary Dagster instance exercises the same event reading.
"""

from __future__ import annotations

import time

import dagster as dg

from benchmarks.week import Child, format_table, read_run, repeat_table, result_table

WEEK = "2026-11-09"
partitions = dg.WeeklyPartitionsDefinition(start_date="2026-11-02", day_offset=1)


@dg.asset(partitions_def=partitions)
def signals() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"dagster/row_count": 4_321, "warehouse_memory_mib": 12.5, "warehouse_spill_mib": 0.0}
    )


@dg.asset(partitions_def=partitions, deps=[signals])
def nbp_current() -> None:
    raise ValueError("postgres said no")


@dg.asset(partitions_def=partitions, deps=[nbp_current])
def fairness_report() -> None:
    pass


def test_read_run_gives_step_times_metadata_and_the_failure(tmp_path):
    since = time.time()
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        result = dg.materialize(
            [signals, nbp_current, fairness_report], partition_key=WEEK, instance=instance, raise_on_error=False
        )
    assert not result.success

    status, steps = read_run(tmp_path, WEEK, since)
    assert status == "FAILURE"
    by_key = {s.key: s for s in steps}
    assert by_key["signals"].seconds is not None and not by_key["signals"].failed
    assert by_key["signals"].metadata["dagster/row_count"] == 4_321
    assert by_key["nbp_current"].failed and "postgres said no" in by_key["nbp_current"].error
    assert by_key["fairness_report"].skipped
    assert read_run(tmp_path, "2026-11-02", since) == (None, [])  # no run of that week

    table = result_table(300, steps, Child(returncode=1, wall=12.34, cpu=10.0, rss_mib=456.7))
    print(table)
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[2:]}
    assert cells["customers"][0] == "300"
    assert cells["candidate rows (signals)"][0] == "4,321"
    assert cells["step signals s"][1:] == ["12", "0"]
    assert cells["step nbp_current s"][0].startswith("FAILED") and cells["step nbp_current s"][1] == "-"
    assert cells["step fairness_report s"][0] == "skipped"
    assert cells["total wall s (materialize process)"][0] == "12.3"
    assert cells["peak RSS MiB"][0] == "457"
    assert cells["rows published (nbp_current)"][0] == "-"


def test_format_table_aligns_columns():
    table = format_table(["measure", "value"], [["a", "1"], ["longer name", "1,234.5"]])
    assert table.splitlines() == [
        "| measure     |   value |",
        "|-------------|--------:|",
        "| a           |       1 |",
        "| longer name | 1,234.5 |",
    ]


def test_repeat_table_gives_every_run_then_the_best_and_the_median():
    runs = [
        (Child(0, wall, cpu, rss), load)
        for wall, cpu, rss, load in [(33.0, 48.0, 1200.0, 1.5), (27.0, 39.0, 1210.0, 0.9), (31.0, 45.0, 1190.0, 1.2)]
    ]
    cells = {
        r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in repeat_table(runs).splitlines()[2:]
    }
    assert cells["run 1"] == ["33.0", "48.0", "1,200", "1.50"]
    assert cells["best"][:3] == ["27.0", "39.0", "1,190"]
    assert cells["median"][:3] == ["31.0", "45.0", "1,200"]
