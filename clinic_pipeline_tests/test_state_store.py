"""The state store: private file, per-batch commits, audit counts."""

from __future__ import annotations

import stat
from pathlib import Path

from clinic_pipeline.load.state import AuditEntry, IdMapRow, open_state


def test_state_file_is_private_and_batches_commit_atomically(tmp_path: Path) -> None:
    path = tmp_path / "state" / "migration.duckdb"
    with open_state(path) as state:
        state.record_batch(
            obj="contacts",
            run_id="r1",
            partition=None,
            mapped=[IdMapRow("p1", 17008318589, "h1"), IdMapRow("p2", 17008318590, "h2")],
            audit=[AuditEntry("create", "created", "p1", 17008318589, 201), AuditEntry("create", "created", "p2")],
        )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open_state(path) as state:
        # A re-load of the same key replaces its row: one id per (object, source key).
        state.record_batch(
            obj="contacts",
            run_id="r2",
            partition="2026-11-25-10:00",
            mapped=[IdMapRow("p1", 17008318589, "h1b")],
            audit=[AuditEntry("update", "updated", "p1", 17008318589, 200, before_image={"id": 1})],
        )
        ids = state.id_map("contacts")
        assert {k: (v.freshsales_id, v.payload_hash) for k, v in ids.items()} == {
            "p1": (17008318589, "h1b"),
            "p2": (17008318590, "h2"),
        }
        assert state.audit_counts() == {("contacts", "create", "created"): 2, ("contacts", "update", "updated"): 1}
        assert state.audit_counts("r2") == {("contacts", "update", "updated"): 1}
