"""Fingerprint of what the product writes on the seeded demo bank: shows a change of code
left behaviour unchanged.

    .venv/bin/python scripts/fingerprint.py [--customers 20000 --seed 7 --weeks 3] [--home DIR]

Generates the bank into a fresh NBP_HOME, backfills every week oldest first, then prints one
sha256 per output: the warehouse history, the fairness report, PostgreSQL nbp_current and the
fairness alert outbox (its alerts and the weeks each counts). Columns a run cannot reproduce
(wall-clock times, run ids, the actor) are left out (run ids inside a payload too), and the home folder a value names
reads as $NBP_HOME; everything else is hashed row by row in
key order. Run it on two commits and compare the lines.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

UNREPRODUCIBLE = ("_at", "run_id", "_run", "actor")
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _digest(columns: list[str], rows: list[tuple]) -> str:
    """sha256 of the rows; the NBP_HOME a value names (a report's path) reads as $NBP_HOME."""
    home = os.environ["NBP_HOME"]
    h = hashlib.sha256()
    h.update(("|".join(columns) + "\n").encode())
    for row in rows:
        line = "|".join("" if v is None else repr(v) for v in row).replace(home, "$NBP_HOME")
        line = RUN_ID.sub("<run>", line)  # run ids inside a JSON payload
        h.update((line + "\n").encode())
    return h.hexdigest()[:16]


def _kept(columns: list[str]) -> list[str]:
    return [c for c in columns if not c.endswith(UNREPRODUCIBLE)]


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "nbp_assets", *args], check=True, stdout=subprocess.DEVNULL)


def _warehouse(path: Path) -> dict[str, tuple[int, str]]:
    import duckdb

    out = {}
    con = duckdb.connect(str(path), read_only=True)
    for table, key in (
        ("product_intelligence.next_best_product", "evaluated_at, party_id, rank"),
        ("nbp_work.fairness_report", "ALL"),
    ):
        cur = con.execute(f"SELECT * FROM {table} LIMIT 0")
        columns = _kept([d[0] for d in cur.description])
        quoted = ", ".join(f'"{c}"' for c in columns)
        rows = con.execute(f"SELECT {quoted} FROM {table} ORDER BY {key}").fetchall()
        out[table] = (len(rows), _digest(columns, rows))
    return out


def _postgres(url: str) -> dict[str, tuple[int, str]]:
    import psycopg

    out = {}
    with psycopg.connect(url) as conn:
        for table in (
            "product_intelligence.nbp_current",
            "compliance.fairness_alerts",
            "compliance.fairness_alert_weeks",
        ):
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
                out[table] = (0, "absent")
                continue
            cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
            columns = _kept([d.name for d in cur.description])
            order = ", ".join(str(i + 1) for i in range(len(columns)))
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f"SELECT {quoted} FROM {table} ORDER BY {order}").fetchall()
            out[table] = (len(rows), _digest(columns, rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--weeks", type=int, default=3)
    parser.add_argument("--home", help="NBP_HOME to build in (default: a new temporary folder)")
    parser.add_argument("--hash-only", action="store_true", help="hash what --home holds, build nothing")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="nbp-fingerprint-"))
    os.environ["NBP_HOME"] = str(home)
    for name in ("NBP_POSTGRES_URL", "DAGSTER_HOME", "NBP_WEIGHTS_FILE"):
        os.environ.pop(name, None)
    if not args.hash_only:
        _cli("generate", "--customers", str(args.customers), "--seed", str(args.seed), "--weeks", str(args.weeks))
    from datetime import date, timedelta

    from nbp_assets.cli import latest_closed_week
    from nbp_assets.core import settings

    last = latest_closed_week()
    first = (date.fromisoformat(last) - timedelta(weeks=args.weeks - 1)).isoformat()
    if not args.hash_only:
        _cli("backfill", first, last)
    from nbp_assets.resources import build_resources

    url = build_resources()["postgres"].conninfo()
    results = {**_warehouse(settings.warehouse_path()), **_postgres(url)}
    print(f"# bank: {args.customers} customers, seed {args.seed}, weeks {first}..{last}; home {home}")
    for table, (rows, digest) in results.items():
        print(f"{table:42s} {rows:>8,d} rows  {digest}")


if __name__ == "__main__":
    main()
