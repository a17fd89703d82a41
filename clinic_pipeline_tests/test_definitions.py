"""The shape of the asset graph as the Dagster UI shows it: groups, the load order, pools and checks."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from clinic_pipeline.assets.resources import FRESHSALES_POOL
from clinic_pipeline.definitions import build_definitions
from clinic_pipeline.model.objects import LOAD_STAGES, MODULE_OBJECTS, STAGED_OBJECTS

GROUP_ORDER = ("inventory", "plan", "staging", "sample", "load", "verify")


def _graph(cutover: datetime | None = None) -> tuple[dg.Definitions, object]:
    defs = build_definitions(cutover_start=cutover)
    return defs, defs.resolve_asset_graph()


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey(name)


def test_every_asset_sits_in_its_stage_group_and_groups_only_point_forward() -> None:
    _defs, graph = _graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups["schema_inventory"] == "inventory"
    assert {k for k, g in groups.items() if g == "plan"} == {
        "mapping_plan",
        "migration_assessment",
        "confirmed_mapping",
        "custom_field_checklist",
        "owner_map",
        "freshsales_schema",
    }
    assert {k for k, g in groups.items() if g == "staging"} == {f"staged_{o.name}" for o in STAGED_OBJECTS}
    assert {k for k, g in groups.items() if g == "sample"} == {"sample_diff"}
    assert {k for k, g in groups.items() if g == "load"} == {f"loaded_{o.name}" for o in STAGED_OBJECTS}
    assert {k for k, g in groups.items() if g == "verify"} == {"validation_report", "workflow_rebuild_reference"}
    # An edge never points from a later group back to an earlier one, so the groups read left to right.
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            assert GROUP_ORDER.index(groups[parent.to_user_string()]) <= GROUP_ORDER.index(groups[key.to_user_string()])


def test_the_load_follows_the_seed_order_accounts_contacts_deals_and_activities_then_custom_objects() -> None:
    _defs, graph = _graph()

    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(_key(f"loaded_{name}")).parent_keys}

    assert LOAD_STAGES[0][0].name == "accounts" and LOAD_STAGES[1][0].name == "contacts"
    assert "loaded_accounts" in parents("contacts")
    for obj in LOAD_STAGES[2]:
        assert "loaded_contacts" in parents(obj.name), obj.name
    for module in MODULE_OBJECTS:
        assert {f"loaded_{o.name}" for o in LOAD_STAGES[2]} <= parents(module.name), module.name
    # Every load waits for its own staged file (and so its blocking check) and for the signed-off sample.
    for obj in STAGED_OBJECTS:
        assert {f"staged_{obj.name}", "sample_diff"} <= parents(obj.name)


def test_every_asset_that_calls_the_api_takes_the_freshsales_pool_and_no_other_does() -> None:
    _defs, graph = _graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        calls_api = "freshsales" in node.assets_def.required_resource_keys
        assert (node.pools == {FRESHSALES_POOL}) == calls_api, key.to_user_string()
    callers = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).pools}
    assert {"owner_map", "freshsales_schema", "sample_diff", "validation_report"} <= callers


def test_each_staged_object_runs_its_suite_once_as_one_blocking_and_one_warning_check() -> None:
    defs, _ = _graph()
    checks = [c for c in defs.asset_checks or [] if isinstance(c, dg.AssetChecksDefinition)]
    for obj in STAGED_OBJECTS:
        mine = [c for c in checks if _key(f"staged_{obj.name}") in {k.asset_key for k in c.check_keys}]
        assert len(mine) == 1, obj.name  # one multi-check: one Great Expectations run
        specs = {spec.name: spec.blocking for spec in mine[0].check_specs}
        assert specs == {"quality_blocking": True, "quality_warnings": False}


def test_the_delta_group_mirrors_staging_and_load_with_hourly_partitions_and_ends_in_a_validation() -> None:
    _defs, graph = _graph(datetime(2026, 11, 1, tzinfo=UTC))
    delta = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "delta"}
    chain = {f"delta_{stage}_{o.name}" for o in STAGED_OBJECTS for stage in ("staged", "loaded")}
    assert delta == chain | {"delta_validation_report"}
    upstream = {k.to_user_string() for k in graph.get(_key("delta_validation_report")).parent_keys}
    assert upstream == {f"delta_loaded_{o.name}" for o in STAGED_OBJECTS}
    for name in delta:
        assert isinstance(graph.get(_key(name)).partitions_def, dg.HourlyPartitionsDefinition)
