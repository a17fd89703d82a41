"""What every table of one generated clinic shares: its size, seed, mess rates and export time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from clinic_pipeline.samples.generator.columns import SECONDS_PER_DAY
from clinic_pipeline.samples.generator.locales import TIME_ZONES, Country
from clinic_pipeline.samples.generator.rates import MessRates

# A fixed export moment keeps the output independent of when it is generated.
EXPORT_LOCAL = datetime(2026, 6, 30, 18, 0, 0)
HISTORY_DAYS = 3 * 365
# Second Sundays of March: 02:00-02:59 does not exist on these days in US zones.
DST_GAP_DAYS = np.array(
    [(datetime(y, 3, d) - datetime(1970, 1, 1)).days for y, d in ((2024, 10), (2025, 9), (2026, 8))]
)


@dataclass(frozen=True)
class Frame:
    patients: int
    seed: int
    rates: MessRates
    country: Country = "US"

    @property
    def time_zone(self) -> str:
        return TIME_ZONES[self.country]

    @property
    def export_s(self) -> int:
        """The export moment as local wall-clock seconds since 1970-01-01."""
        return int((EXPORT_LOCAL - datetime(1970, 1, 1)).total_seconds())

    @property
    def export_day(self) -> int:
        return self.export_s // SECONDS_PER_DAY

    @property
    def history_start_s(self) -> int:
        return self.export_s - HISTORY_DAYS * SECONDS_PER_DAY

    @property
    def exported_at(self) -> str:
        return EXPORT_LOCAL.replace(tzinfo=ZoneInfo(self.time_zone)).isoformat()

    @property
    def locations(self) -> int:
        return min(6, 3 + self.patients // 25_000)

    @property
    def providers(self) -> int:
        return max(3, self.patients // 150)

    @property
    def referrers(self) -> int:
        return max(5, self.patients // 40)

    @property
    def carriers(self) -> int:
        return min(40, 8 + self.patients // 2_000)

    def rng(self, stream: int) -> np.random.Generator:
        """An independent generator per table: changing one table's draws leaves the others as they were."""
        return np.random.default_rng([self.seed, stream])
