"""Benchmark: wall time and peak memory per asset for one week at a given customer count.

    python -m nbp_assets.bench --customers 100000

Each asset runs in its own fresh process (upstream assets already in the warehouse), so
the peak RSS printed is that asset's own footprint, including the interpreter and
libraries (the `baseline` row shows that fixed part). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORDER = ["customers", "activity", "eligibility", "signals", "scores", "nbp_ranked", "nbp_current", "fairness_report"]


def _child(asset: str, week: str) -> None:
    """Materialize one asset for one week in this process and print its step time."""
    if asset == "baseline":
        import dagster  # noqa: F401  the fixed cost every asset process pays
        import pandas  # noqa: F401,F811

        print(json.dumps({"seconds": 0.0}))
        return
    import dagster as dg

    from nbp_assets.definitions import build_definitions

    defs = build_definitions()
    assets_def = defs.get_assets_def(asset)
    started = time.perf_counter()
    result = dg.materialize(
        [assets_def], partition_key=week, resources=defs.resources, raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
    )
    print(json.dumps({"seconds": time.perf_counter() - started, "success": result.success}))


def _run_child(args: list[str], env: dict) -> tuple[dict, float, float]:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "nbp_assets.bench", *args], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            err.seek(0)
            tail = "\n".join(err.read().splitlines()[-15:])
            raise SystemExit(f"benchmark step {args} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1]), wall, usage.ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nbp_assets.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", help="NBP_HOME to use (default: a fresh temporary folder)")
    parser.add_argument("--child", nargs=2, metavar=("ASSET", "WEEK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return

    home = Path(args.home or tempfile.mkdtemp(prefix="nbp-bench-"))
    env = {**os.environ, "NBP_HOME": str(home)}
    env.pop("NBP_WAREHOUSE_PATH", None)
    from nbp_assets.cli import latest_closed_week

    week = latest_closed_week()
    print(f"benchmark: {args.customers:,} customers, 20 products, week {week}, NBP_HOME={home}, "
          f"{os.cpu_count()} cores")
    started = time.perf_counter()
    gen = subprocess.run(
        [sys.executable, "-m", "nbp_assets", "generate", "--customers", str(args.customers), "--seed", str(args.seed),
         "--weeks", "1", "--end-week", week],
        env=env, capture_output=True, text=True,
    )
    if gen.returncode != 0:
        raise SystemExit(gen.stderr)
    print(f"generate (not part of the week): {time.perf_counter() - started:.1f} s")

    print(f"{'asset':<16} {'step s':>8} {'process s':>10} {'peak RSS MiB':>13}")
    total_step = 0.0
    for asset in ["baseline", *ORDER]:
        info, wall, rss = _run_child(["--child", asset, week], env)
        if info.get("success") is False:
            raise SystemExit(f"{asset} failed: run `python -m nbp_assets materialize --week {week}` with NBP_HOME={home}")
        total_step += info["seconds"]
        print(f"{asset:<16} {info['seconds']:>8.1f} {wall:>10.1f} {rss:>13.0f}", flush=True)
    print(f"{'week total':<16} {total_step:>8.1f}")


if __name__ == "__main__":
    main()
