"""The Kubernetes deployment (clinic_pipeline/deploy/k8s) checked without a cluster.

values.yaml is merged over the dagster chart's own defaults, as Helm does, and validated against the
chart's values.schema.json (kept excerpt, with the Kubernetes definitions it points at served from a
kept Kubernetes 1.30 schema instead of the network); the Secret manifest against Kubernetes' core/v1
Secret schema; every environment variable name against the settings model; the Dockerfile's paths and
entry point against the repository.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from clinic_pipeline.assets.resources import FRESHSALES_POOL
from clinic_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "clinic_pipeline" / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
# Where the chart's schema looks for the Kubernetes definitions (fetched by Helm; not reachable here).
K8S_DEFINITIONS_URL = "https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/v1.19.0/_definitions.json"
SECRET_NAME = "clinic-pipeline-secrets"
# Settings whose value is a credential: only ever in the Secret.
SECRET_SETTINGS = {"FRESHSALES_API_KEY", "CLINIC_ALERT_WEBHOOK_URL", "CLINIC_STATE_URL", "CLINIC_SOURCE"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _helm_merge(defaults: Any, overrides: Any) -> Any:
    """Helm's coalescing of user values over chart defaults: maps merge key by key, anything else replaces."""
    if isinstance(defaults, dict) and isinstance(overrides, dict):
        merged = copy.deepcopy(defaults)
        for key, value in overrides.items():
            merged[key] = _helm_merge(defaults.get(key), value) if key in defaults else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overrides)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return _yaml(K8S / "values.yaml")


@pytest.fixture(scope="module")
def secret() -> dict[str, Any]:
    return _yaml(K8S / "secret.example.yaml")


@pytest.fixture(scope="module")
def kubernetes_schemas() -> dict[str, Any]:
    return json.loads((SCHEMAS / "kubernetes-v1.30-subset.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def chart_validator(kubernetes_schemas: dict[str, Any]) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "dagster-values.schema.excerpt.json").read_text(encoding="utf-8"))
    definitions = Resource.from_contents(
        {"definitions": kubernetes_schemas["definitions"]}, default_specification=DRAFT202012
    )
    registry = Registry().with_resource(K8S_DEFINITIONS_URL, definitions)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, registry=registry)


def _deployment(values: dict[str, Any]) -> dict[str, Any]:
    deployments = values["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1
    return deployments[0]


def _errors(validator: jsonschema.protocols.Validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


# (a) the values against the chart's schema


def test_values_merged_over_chart_defaults_match_the_chart_schema(values, chart_validator):
    defaults = _yaml(SCHEMAS / "dagster-chart-defaults.excerpt.yaml")
    assert _errors(chart_validator, defaults) == []  # the kept defaults and schema belong together
    merged = _helm_merge(defaults, values)
    assert _errors(chart_validator, merged) == []
    assert merged["runLauncher"]["type"] == "K8sRunLauncher"
    assert merged["postgresql"]["enabled"] is False and merged["generatePostgresqlPasswordSecret"] is False


def test_the_schema_rejects_what_helm_would(values, chart_validator):
    """The validation has teeth: a misspelt key, a wrong type and a Kubernetes typo are each refused."""
    defaults = _yaml(SCHEMAS / "dagster-chart-defaults.excerpt.yaml")
    merged = _helm_merge(defaults, values)

    typo = copy.deepcopy(merged)
    typo["dagsterDaemon"]["runCordinator"] = typo["dagsterDaemon"].pop("runCoordinator")
    assert _errors(chart_validator, typo)

    wrong_type = copy.deepcopy(merged)
    wrong_type["concurrency"]["pools"]["defaultLimit"] = "one"
    assert _errors(chart_validator, wrong_type)

    k8s_type = copy.deepcopy(merged)
    _deployment(k8s_type)["podSecurityContext"]["runAsUser"] = "clinic"  # Kubernetes: an integer
    assert _errors(chart_validator, k8s_type)

    volume = copy.deepcopy(merged)
    _deployment(volume)["volumeMounts"][0].pop("mountPath")  # Kubernetes: VolumeMount requires it
    assert _errors(chart_validator, volume)

    launcher = copy.deepcopy(merged)
    del launcher["runLauncher"]["config"]["k8sRunLauncher"]
    assert _errors(chart_validator, launcher)  # K8sRunLauncher requires its config block


def test_concurrency_is_the_projects_one_load_step_at_a_time(values):
    instance = _yaml(REPO / "dagster.yaml")
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"] == 1
    assert FRESHSALES_POOL == "freshsales_api"  # the pool the load assets sit in; no own limit, so the default
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    # The chart refuses a run limit set both here and under concurrency.runs.
    assert "maxConcurrentRuns" not in coordinator["config"]["queuedRunCoordinator"]


# (b) the Secret and no secret in values


def test_secret_manifest_is_a_core_v1_secret(secret, kubernetes_schemas):
    schema = {**kubernetes_schemas["secret-v1"], "definitions": kubernetes_schemas["definitions"]}
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert _errors(validator, secret) == []
    assert secret["kind"] == "Secret" and secret["apiVersion"] == "v1" and secret["type"] == "Opaque"
    assert secret["metadata"]["name"] == SECRET_NAME
    assert _errors(validator, {**secret, "stringdata": secret["stringData"]})  # strict: unknown fields refused
    assert _errors(validator, {**secret, "kind": "ConfigMap"})


def test_secret_holds_placeholders_only(secret):
    assert set(secret["stringData"]) >= {"FRESHSALES_API_KEY", "CLINIC_STATE_URL"}
    for key, value in secret["stringData"].items():
        assert value == "" or "<" in value, f"{key} in secret.example.yaml must be a <placeholder>"
    assert "kubectl create secret generic " + SECRET_NAME in (K8S / "secret.example.yaml").read_text()


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _strings(value, f"{path}/{key}")]
    if isinstance(node, list):
        return [item for i, value in enumerate(node) for item in _strings(value, f"{path}/{i}")]
    return [(path, node)] if isinstance(node, str) else []


def test_no_value_in_values_looks_like_a_key(values):
    key_like = re.compile(r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_+/=]{16,}$")  # one long run, letters and digits
    for path, value in _strings(values):
        assert not key_like.match(value), f"{path} looks like a key or token"
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{path} has credentials in a URL"
    assert values["postgresql"]["postgresqlPassword"] == ""


def test_every_secret_comes_from_the_secret(values):
    deployment = _deployment(values)
    assert deployment["envSecrets"] == [{"name": SECRET_NAME}]
    for item in deployment["env"]:
        assert item["name"] not in SECRET_SETTINGS, f"{item['name']} belongs in the Secret"
        assert "valueFrom" not in item or set(item["valueFrom"]) == {"secretKeyRef"}
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}  # run pods get the Secret too
    assert values["global"]["postgresqlSecretName"]  # the instance's password: an existing Secret


# (c) the manifests name what the project has


def test_code_location_module_is_the_projects_definitions(values):
    import clinic_pipeline.definitions as definitions_module

    args = _deployment(values)["dagsterApiGrpcArgs"]
    assert args[0] == "-m"
    assert args[1] == definitions_module.__name__ == "clinic_pipeline.definitions"
    assert args[1] == _yaml(REPO / "workspace.yaml")["load_from"][0]["python_module"]["module_name"]
    assert definitions_module.defs.resolve_all_job_defs()


def test_every_env_name_is_a_setting(values, secret):
    known = {name.upper() for name in Settings.model_fields}
    names = [item["name"] for item in _deployment(values)["env"]] + list(secret["stringData"])
    assert len(names) == len(set(names)), "a variable both in env and in the Secret"
    unknown = [name for name in names if name not in known]
    assert unknown == []
    for name in SECRET_SETTINGS & known:
        assert name in secret["stringData"], f"{name} is a credential: the Secret must carry it"


# (d) the Dockerfile's paths and entry point


def test_dockerfile_copies_existing_paths_and_serves_the_code_location(values):
    text = (K8S / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _dest = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository (build context is the root)"
    assert re.search(r"^RUN pip install \. ", text, re.M)
    for package in ("dagster-k8s==", "dagster-postgres=="):
        assert package in text
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert str(_deployment(values)["podSecurityContext"]["runAsUser"]) == user[-1]

    cmd = json.loads(re.search(r"^CMD (\[.+\])$", text, re.M).group(1))
    assert cmd[:3] == ["dagster", "api", "grpc"]
    assert cmd[cmd.index("-m") + 1] == "clinic_pipeline.definitions"
    assert cmd[cmd.index("-p") + 1] == str(_deployment(values)["port"])
    data_dir = re.search(r"^ENV CLINIC_DATA_DIR=(\S+)$", text, re.M).group(1)
    env = {item["name"]: item.get("value") for item in _deployment(values)["env"]}
    assert env["CLINIC_DATA_DIR"] == data_dir == _deployment(values)["volumeMounts"][0]["mountPath"]


def test_dockerfile_pins_match_one_dagster_release(values):
    text = (K8S / "Dockerfile").read_text(encoding="utf-8")
    dagster = re.search(r'"dagster==(1\.13\.\d+)"', text).group(1)
    patch = dagster.split(".")[2]
    assert f'"dagster-k8s==0.29.{patch}"' in text and f'"dagster-postgres==0.29.{patch}"' in text
    # The webserver and daemon run the same release as the code location.
    assert values["dagsterWebserver"]["image"]["tag"] == values["dagsterDaemon"]["image"]["tag"] == dagster
