"""What fairness monitoring judges: the dimensions and their intersections, the minimum group size, the weeks of
history in the report, whether a breach stops nbp_current, and the breach threshold.

The NBP_FAIRNESS_* variables are read by settings.py (the table of every
variable is in settings.py and docs/fairness.md); their defaults and the check that the
dimensions are customer columns live here. A bad value fails the code location's load
with a message naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nbp_assets.core import settings
from nbp_assets.fairness.contract import DEFAULT_DIMENSIONS, validate_dimensions, validate_intersections
from nbp_assets.fairness.maths import BREACH_THRESHOLD_PP, DEFAULT_MIN_GROUP_SIZE

DEFAULT_HISTORY_WEEKS = 8


@dataclass(frozen=True)
class FairnessConfig:
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    history_weeks: int = DEFAULT_HISTORY_WEEKS
    blocks_publish: bool = False
    threshold_pp: float = BREACH_THRESHOLD_PP
    # Pairs of dimensions judged as one dimension each (`jurisdiction*age_band`): none by default.
    intersections: tuple[str, ...] = ()

    @property
    def judged(self) -> tuple[str, ...]:
        """Every dimension the report judges: the dimensions, then the intersections."""
        return (*self.dimensions, *self.intersections)


def fairness_config(environ: Mapping[str, str] | None = None) -> FairnessConfig:
    dimensions = settings.fairness_dimensions(environ)
    dimensions = validate_dimensions(DEFAULT_DIMENSIONS if dimensions is None else dimensions)
    intersections = validate_intersections(settings.fairness_intersections(environ))
    min_group, history = settings.fairness_min_group(environ), settings.fairness_history_weeks(environ)
    return FairnessConfig(
        dimensions=dimensions,
        min_group_size=DEFAULT_MIN_GROUP_SIZE if min_group is None else min_group,
        history_weeks=DEFAULT_HISTORY_WEEKS if history is None else history,
        blocks_publish=settings.fairness_blocks_publish(environ),
        intersections=intersections,
    )
