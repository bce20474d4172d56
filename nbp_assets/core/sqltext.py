"""Python spellings of the SQL macros (nbp_assets/core/sql/macros.sql), for the modules that
still write a literal or a predicate in Python (week filters, point-in-time readers,
monitoring, explanations). The weekly model's SQL files use the macros themselves;
test_weekly_sql.py shows both spell the same.

The few SQL spellings the model needs to give, in DuckDB and in Snowflake, exactly the
floating-point answers numpy gives (see docs/architecture.md):
- Literals are written in exponent form (`0.45e0`): both engines parse that as a DOUBLE,
  correctly rounded, where `0.45` would be a DECIMAL in both.
- ROUND is half away from zero in both engines; numpy (the reference) rounds half to even.
  `round6` rounds half to even with the classic 1.5 x 2^52 trick: adding and subtracting it
  makes the FPU round to an integer in its own round-half-even mode. Exact for |x| < 2^51 / 1e6,
  and as cheap as two additions.
"""

from __future__ import annotations

from datetime import date, datetime

_RINT = "6755399441055744.0e0"  # 1.5 x 2^52
SCALE_6DP = "1000000.0e0"


def dbl(value: float) -> str:
    """A DOUBLE literal that both engines parse to exactly float(value)."""
    text = repr(float(value))
    return text if "e" in text else f"{text}e0"


def round6(expr: str) -> str:
    """expr rounded half to even at 6 decimals, bit for bit numpy's np.round(x, 6)."""
    return f"(((({expr}) * {SCALE_6DP} + {_RINT}) - {_RINT}) / {SCALE_6DP})"


def clip01(expr: str) -> str:
    """np.clip(x, 0, 1) for non-null x."""
    return f"least(greatest({expr}, 0.0e0), 1.0e0)"


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def day(d: date) -> str:
    """A date literal; only dates derived from partition keys are inlined."""
    return f"DATE '{d:%Y-%m-%d}'"


def timestamp(d: date | datetime) -> str:
    return f"TIMESTAMP '{d:%Y-%m-%d %H:%M:%S}'" if isinstance(d, datetime) else f"TIMESTAMP '{d:%Y-%m-%d} 00:00:00'"


def within(relation: str, predicate: str | None) -> str:
    """`relation` restricted to the rows matching `predicate` (all of it when None)."""
    return relation if predicate is None else f"(SELECT * FROM {relation} x WHERE {predicate})"
