"""After one object's load: is every staged record accounted for? Local files and the state store only.

A staged record is accounted for when it is loaded (its source key is in the id map) or listed, with
its reason, in the loader's rejected list of that load (held back, rejected, failed). A staged record
that is neither went missing without a word: that is what the loaded asset's blocking check fails on.
Quarantined source rows were never staged: they are counted beside, with their reasons.

The staged side and the reasons are read exactly as the validation report reads them
(`reports.validation`), so the check and the report tell the same story in the same words; no API call.
Counts, object names and reasons only: never a source key or a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from clinic_pipeline.load.state import DEFAULT_WAIT_SECONDS, StateStore, open_state
from clinic_pipeline.model.objects import BY_NAME
from clinic_pipeline.reports.validation import not_loaded_reasons, open_staged, quarantine_counts
from clinic_pipeline.settings import Settings

# `reports.validation.not_loaded_reasons`' word for a staged record on no rejected list.
UNLISTED = "no load outcome recorded"


@dataclass(frozen=True)
class LoadCheck:
    object: str
    staged: int  # distinct staged source keys
    loaded: int  # of those, in the id map
    not_loaded: dict[str, int] = field(default_factory=dict)  # reason → staged records not in the id map
    quarantined: int = 0  # source keys quarantined and not staged since
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def unaccounted(self) -> int:
        """Staged records neither loaded nor listed with a reason."""
        return self.not_loaded.get(UNLISTED, 0)

    @property
    def listed(self) -> int:
        """Staged records not loaded, each listed with its reason (held back, rejected, failed)."""
        return sum(n for reason, n in self.not_loaded.items() if reason != UNLISTED)

    @property
    def accounted(self) -> bool:
        return self.unaccounted == 0

    @property
    def all_loaded(self) -> bool:
        return self.loaded == self.staged


def check_loaded(
    state: StateStore,
    name: str,
    *,
    staged: Path,
    rejected: Path | None = None,
    quarantine: Path | None = None,
) -> LoadCheck:
    """The staged file of one load (the full run's or a delta window's) against the id map, the
    loader's rejected list of that load and the staging quarantine file."""
    id_map = state.id_map(name)
    con = duckdb.connect()
    try:
        open_staged(con, [staged])
        con.register("id_map", pa.table({"_source_key": pa.array(list(id_map), pa.string())}))
        total, loaded = con.execute(
            "SELECT count(*), count(m._source_key) FROM staged s LEFT JOIN id_map m USING (_source_key)"
        ).fetchall()[0]
        listed = [rejected] if rejected is not None and rejected.exists() and rejected.stat().st_size else []
        reasons = not_loaded_reasons(con, listed)
        quarantined, quarantine_reasons = (
            quarantine_counts(con, [quarantine]) if quarantine is not None and quarantine.exists() else (0, {})
        )
    finally:
        con.close()
    return LoadCheck(
        object=name,
        staged=int(total),
        loaded=int(loaded),
        not_loaded=reasons,
        quarantined=quarantined,
        quarantine_reasons=quarantine_reasons,
    )


def run_load_check(
    settings: Settings, name: str, *, partition: str | None = None, wait_seconds: float = DEFAULT_WAIT_SECONDS
) -> LoadCheck:
    """The check of the load of `name` that just ran (a delta partition's files for a partition)."""
    obj = BY_NAME[name]
    paths = settings.paths
    with open_state(settings.state_location, read_only=True, wait_seconds=wait_seconds) as state:
        return check_loaded(
            state,
            obj.name,
            staged=paths.staged_dir_for(partition) / f"{obj.name}.parquet",
            rejected=paths.rejected_dir_for(partition) / f"{obj.name}.jsonl",
            quarantine=paths.quarantine_dir_for(partition) / f"{obj.name}.parquet",
        )
