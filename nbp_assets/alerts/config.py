"""What fairness monitoring judges, read from the environment when the definitions load.

| variable                      | meaning                                                   | default |
|-------------------------------|-----------------------------------------------------------|---------|
| NBP_FAIRNESS_DIMENSIONS       | comma-separated customer columns the rates are cut by     | jurisdiction,age_band,segment |
| NBP_FAIRNESS_MIN_GROUP        | groups with fewer active customers are listed, not judged | 30 |
| NBP_FAIRNESS_HISTORY_WEEKS    | weeks of gap history in the report (this week included)   | 8 |
| NBP_FAIRNESS_BLOCKS_PUBLISH   | true: a breach stops nbp_current from publishing the week | false |

A bad value fails the code location's load with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from nbp_assets.contract.fairness import validate_dimensions
from nbp_assets.model.fairness import DEFAULT_DIMENSIONS, DEFAULT_MIN_GROUP_SIZE

DEFAULT_HISTORY_WEEKS = 8
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class FairnessConfig:
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    history_weeks: int = DEFAULT_HISTORY_WEEKS
    blocks_publish: bool = False


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}")
    return value


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw not in _TRUE | _FALSE:
        raise ValueError(f"{name}={raw!r}: expected true or false")
    return raw in _TRUE


def fairness_config(environ: Mapping[str, str] | None = None) -> FairnessConfig:
    environ = os.environ if environ is None else environ
    raw = environ.get("NBP_FAIRNESS_DIMENSIONS", "").strip()
    dimensions = tuple(d.strip() for d in raw.split(",") if d.strip()) if raw else DEFAULT_DIMENSIONS
    return FairnessConfig(
        dimensions=validate_dimensions(dimensions),
        min_group_size=_int(environ, "NBP_FAIRNESS_MIN_GROUP", DEFAULT_MIN_GROUP_SIZE, 1, 1_000_000),
        history_weeks=_int(environ, "NBP_FAIRNESS_HISTORY_WEEKS", DEFAULT_HISTORY_WEEKS, 1, 104),
        blocks_publish=env_flag(environ, "NBP_FAIRNESS_BLOCKS_PUBLISH"),
    )
