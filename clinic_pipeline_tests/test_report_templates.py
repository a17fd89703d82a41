"""Every operator page renders through one template environment: the same header and stylesheet from
`base.html.j2`, its values escaped, and a chart (inline SVG, no script) with one bar per counted thing.

Each page is made by its public function from the inputs its own tests use: the fixture clinic's inventory
and proposed plan, the validation report's sandbox world, the rebuild reference's rule table, and a sample
diff run through the pipeline against the sandbox."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import duckdb
import httpx
import pytest

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import pipeline_resources, resources_settings
from clinic_pipeline.freshsales import FreshsalesClient
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.reports import inventory_html, mapping_review, validation
from clinic_pipeline.reports.rebuild import RebuildDocument, RebuildReference, WorkflowEntry
from clinic_pipeline.reports.render import environment
from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture
from clinic_pipeline.sandbox.launcher import SandboxHandle
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.inventory_model import ColumnProfile, SchemaInventory, TableProfile
from clinic_pipeline.source.inventory_page import write_inventory_page
from clinic_pipeline.source.reader import open_source
from clinic_pipeline_tests.e2e.flow import confirm_and_sign_off, materialize
from clinic_pipeline_tests.test_rebuild_reference import fixture_run  # noqa: F401  (the fixture, reused)
from clinic_pipeline_tests.test_validation_report import build_world, client  # noqa: F401  (client: the fixture)

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _base_parts() -> tuple[str, str]:
    """The stylesheet and the header line every page must carry, read from the base template itself."""
    env = environment()
    assert env.loader is not None
    style = re.search(r"<style>.*?</style>", env.loader.get_source(env, "base.html.j2")[0], re.S)
    assert style is not None
    return style.group(0), '<header class="report">Clinic migration to Freshsales · '


def _assert_shared_look(page: str, title: str) -> None:
    style, header = _base_parts()
    assert page.startswith("<!doctype html>")
    assert page.count("<style>") == 1 and style in page, "one stylesheet, the base's"
    assert f"<title>{title}</title>" in page and f"{header}{title}</header>" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def _bars(page: str, title: str) -> int:
    """Bars of the chart called `title`, after checking it is a well-formed inline SVG."""
    chart = next(c for c in re.findall(r"<svg.*?</svg>", page, re.S) if f"<title>{title}</title>" in c)
    assert ElementTree.fromstring(chart).tag.endswith("svg")
    return chart.count('<rect class="bar"')


def _inventory(spec: str) -> SchemaInventory:
    con = duckdb.connect()
    try:
        return build_inventory(open_source(spec, con), con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def fixture_inventory() -> SchemaInventory:
    return _inventory(str(FIXTURE_DIR))


def test_inventory_page_has_an_html_twin_with_table_sizes(fixture_inventory: SchemaInventory, tmp_path: Path) -> None:
    markdown = tmp_path / "inventory" / "schema_inventory.md"
    write_inventory_page(fixture_inventory, markdown, tmp_path / "inventory" / "schema_inventory.html")
    page = (tmp_path / "inventory" / "schema_inventory.html").read_text(encoding="utf-8")
    _assert_shared_look(page, "Schema inventory")
    assert _bars(page, "Rows per table, largest first") == 1  # the fixture's one table
    assert "<li>Time zone: America/Chicago (from the manifest)</li>" in page
    assert "<li><code>gender</code>: F, M, U</li>" in page

    hostile = ColumnProfile(
        name=HOSTILE,
        type="text",
        type_match_rate=1.0,
        null_count=0,
        null_rate=0.0,
        sentinel_count=0,
        distinct_count=2,
        max_length=5,
        unique=False,
        categories=["<b>x</b>"],
    )
    tables = [
        TableProfile(name=f"t{n}", origin=f"t{n}.csv", row_count=n, columns=[hostile], candidate_keys=[])
        for n in range(3)
    ]
    page = inventory_html.render_html(
        SchemaInventory(source_system=HOSTILE, time_zone="UTC", time_zone_assumed=False, tables=tables)
    )
    _assert_shared_look(page, "Schema inventory")
    assert ESCAPED in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>" not in page
    assert _bars(page, "Rows per table, largest first") == 2  # the empty table draws no bar


def test_mapping_review_page_counts_review_lines_per_target(fixture_inventory: SchemaInventory, tmp_path: Path) -> None:
    plan = propose_plan(fixture_inventory, 0.75)
    first = plan.objects[0]
    line = first.fields[0].model_copy(update={"reason": HOSTILE, "needs_review": True})
    plan = plan.model_copy(update={"objects": [first.model_copy(update={"fields": [line, *first.fields[1:]]})]})
    path = mapping_review.write_review_page(plan, tmp_path / "plan" / "mapping_review.html")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    page = path.read_text(encoding="utf-8")
    _assert_shared_look(page, "Mapping review")
    assert ESCAPED in page
    targets = {o.target for o in plan.objects if o.fields}
    assert _bars(page, "Field lines per Freshsales target") == 2 * len(targets)  # lines and needing review
    assert '<tr class="review"><td>!</td>' in page
    assert page.count("<tr><td></td>") + page.count('<tr class="review">') == 1 + len(first.fields)


def test_validation_report_draws_where_each_objects_rows_went(
    tmp_path: Path,
    client: FreshsalesClient,  # noqa: F811
    sandbox: SandboxHandle,
) -> None:
    report = build_world(tmp_path, client, sandbox).report()
    hostile = report.model_copy(update={"discrepancies": [*report.discrepancies, f"contacts: {HOSTILE}"]})
    html_path = tmp_path / "reports" / "validation_report.html"
    validation.write_report(hostile, tmp_path / "reports" / "validation_report.json", html_path)
    page = html_path.read_text(encoding="utf-8")
    _assert_shared_look(page, "Validation report")
    assert ESCAPED in page and '<span class="FAIL">FAIL</span>' in page
    # Six bars an object (source rows, quarantined, staged, not loaded, id map, Freshsales), less the
    # Freshsales bar of an object the API cannot count.
    expected = sum(6 - (o.freshsales_total is None) for o in report.objects)
    assert _bars(page, "Records: source vs Freshsales") == expected


def test_rebuild_reference_draws_rules_per_module(
    fixture_run: tuple[RebuildReference, RebuildDocument],  # noqa: F811
) -> None:
    result, doc = fixture_run
    page = result.html_path.read_text(encoding="utf-8")
    _assert_shared_look(page, "Workflow rebuild reference")
    assert ESCAPED in page
    modules = {e.freshsales.module for e in doc.entries if isinstance(e, WorkflowEntry)}
    assert _bars(page, "Workflow rules per Freshsales module") == 2 * len(modules)  # rules, not built in


def test_sample_diff_page_escapes_a_hostile_freshsales_value(tmp_path: Path, sandbox: Any) -> None:
    resources = pipeline_resources(
        clinic_source=str(copy_fixture(tmp_path / "source")),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
    )
    confirm_and_sign_off(resources, sandbox)
    contact = next(c for c in httpx.get(f"{sandbox.root_url}/_sandbox/snapshot").json()["contacts"])
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers) as http:
        http.put(f"/api/contacts/{contact['id']}", json={"contact": {"last_name": HOSTILE}}).raise_for_status()

    diff = steps.run_sample(resources_settings(resources), size=100, seed=7, run_id="test-templates").diff
    assert stat.S_IMODE(diff.html_path.stat().st_mode) == 0o600
    page = diff.html_path.read_text(encoding="utf-8")
    _assert_shared_look(page, "Sample diff")
    assert ESCAPED in page and "1 differences" in page
    assert _bars(page, "Match rate per object") == len(diff.match_rate_by_object)
    objects = {t.object for t in diff.fields}
    assert _bars(page, "Fields compared per object") == 3 * len(objects)  # matched, differs, missing


def test_assets_link_the_inventory_and_review_pages(tmp_path: Path) -> None:
    resources = pipeline_resources(
        clinic_source=str(copy_fixture(tmp_path / "source")), clinic_data_dir=str(tmp_path / "data")
    )
    result = materialize(resources, ["schema_inventory", "mapping_plan"])
    assert result.success
    for asset, key in (("schema_inventory", "html"), ("mapping_plan", "review")):
        link = result.asset_materializations_for_node(asset)[0].metadata[key]
        page = Path(str(link.value))
        assert page.suffix == ".html" and page.is_relative_to(tmp_path / "data"), asset
        assert page.read_text(encoding="utf-8").startswith("<!doctype html>"), asset
