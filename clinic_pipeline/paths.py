"""Every file and folder the pipeline reads or writes under CLINIC_DATA_DIR, named once.

Domain functions take these paths as arguments; only the CLI, the assets and `steps` build a `Paths`
(through `Settings.paths`), so moving a file is a change here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    data_dir: Path

    @property
    def inventory_path(self) -> Path:
        return self.data_dir / "inventory" / "schema_inventory.json"

    @property
    def inventory_page(self) -> Path:
        return self.inventory_path.with_suffix(".md")

    @property
    def inventory_html(self) -> Path:
        return self.inventory_path.with_suffix(".html")

    @property
    def plan_dir(self) -> Path:
        return self.data_dir / "plan"

    @property
    def plan_path(self) -> Path:
        return self.plan_dir / "mapping_plan.yaml"

    @property
    def mapping_review_html(self) -> Path:
        return self.plan_dir / "mapping_review.html"

    @property
    def checklist_md(self) -> Path:
        return self.plan_dir / "custom_field_checklist.md"

    @property
    def checklist_csv(self) -> Path:
        return self.plan_dir / "custom_field_checklist.csv"

    @property
    def owner_map_parquet(self) -> Path:
        return self.plan_dir / "owner_map.parquet"

    @property
    def owner_map_md(self) -> Path:
        return self.plan_dir / "owner_map.md"

    @property
    def sign_off(self) -> Path:
        return self.plan_dir / "sign_off.json"

    @property
    def staged_dir(self) -> Path:
        return self.data_dir / "staged"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    def staged_dir_for(self, partition: str | None) -> Path:
        """The full run's staged files, or a delta partition's own folder."""
        return self.staged_dir if partition is None else self.staged_dir / "delta" / partition

    def quarantine_dir_for(self, partition: str | None) -> Path:
        return self.quarantine_dir if partition is None else self.quarantine_dir / "delta" / partition

    @property
    def sample_dir(self) -> Path:
        return self.data_dir / "sample" / "staged"

    @property
    def rejected_dir(self) -> Path:
        return self.data_dir / "load" / "rejected"

    def rejected_dir_for(self, partition: str | None) -> Path:
        return self.rejected_dir if partition is None else self.rejected_dir / "delta" / partition

    @property
    def state_db_path(self) -> Path:
        return self.data_dir / "state" / "migration.duckdb"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def validation_json(self) -> Path:
        return self.reports_dir / "validation_report.json"

    @property
    def validation_html(self) -> Path:
        return self.reports_dir / "validation_report.html"

    def validation_json_for(self, partition: str | None) -> Path:
        """The whole migration's validation report, or a delta window's own."""
        return self.validation_json if partition is None else self.reports_dir / "delta" / partition / "validation.json"

    def validation_html_for(self, partition: str | None) -> Path:
        return self.validation_html if partition is None else self.reports_dir / "delta" / partition / "validation.html"

    @property
    def assessment_html(self) -> Path:
        return self.reports_dir / "assessment.html"

    @property
    def assessment_json(self) -> Path:
        return self.reports_dir / "assessment.json"

    @property
    def sample_diff_json(self) -> Path:
        return self.reports_dir / "sample_diff.json"

    @property
    def generated_source(self) -> Path:
        """Where `sample-data` and the demo write the generated clinic."""
        return self.data_dir / "source" / "clinic"

    @property
    def sandbox_db(self) -> Path:
        return self.data_dir / "sandbox" / "freshsales.sqlite"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"

    @property
    def spill_dir(self) -> Path:
        """DuckDB's spill folder: it holds source rows, so it is private."""
        return self.data_dir / "tmp"

    @property
    def load_dir(self) -> Path:
        return self.data_dir / "load"

    @property
    def sample_root(self) -> Path:
        return self.data_dir / "sample"
