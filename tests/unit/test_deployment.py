"""The deployment files agree with the code: docker-compose.yml and the Kubernetes manifests
(validated offline against the Kubernetes schemas), since no engine or cluster runs here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from contracts import ALL_TOPICS
from runtime.settings import RuntimeSettings, environment_variables
from services.engagement.settings import EngagementSettings
from services.gateway.settings import GatewaySettings
from services.profile.settings import ProfileSettings
from services.scoring.settings import ScoringSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.30"
SETTINGS: dict[str, type[BaseSettings]] = {
    "profile": ProfileSettings,
    "scoring": ScoringSettings,
    "engagement": EngagementSettings,
    "gateway": GatewaySettings,
}
CONSUMERS = {"profile": ProfileSettings, "scoring": ScoringSettings, "engagement": EngagementSettings}


def port_of(service: str) -> int:
    config = getattr(SETTINGS[service](), service)
    return int(config.port)


def group_of(service: str) -> str:
    return str(getattr(CONSUMERS[service](), service).group_id)


def known_variables() -> set[str]:
    names = environment_variables(RuntimeSettings)
    for settings in SETTINGS.values():
        names |= environment_variables(settings)
    return names


# -- docker-compose.yml ---------------------------------------------------------------------------

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_kafka_in_kraft_mode_postgres_an_init_job_and_the_four_services() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"kafka", "postgres", "init", *SETTINGS}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["init"]["command"][-1] == "c360 migrate && c360 topics"
    for name in SETTINGS:
        depends = services[name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully"
    gateway_depends = services["gateway"]["depends_on"]
    assert all(gateway_depends[s]["condition"] == "service_healthy" for s in ("profile", "scoring", "engagement"))
    assert services["gateway"]["ports"] == ["8000:8000"]
    assert all("ports" not in services[s] for s in ("profile", "scoring", "engagement"))  # internal only


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_each_compose_service_starts_its_own_module_and_checks_its_own_port(service: str) -> None:
    spec = COMPOSE["services"][service]
    assert spec["command"] == ["python", "-m", f"services.{service}"]
    importlib.import_module(f"services.{service}.app")
    main = ROOT / "services" / service / "__main__.py"
    assert f"services.{service}.app import create_app" in main.read_text()
    check = " ".join(spec["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port_of(service)}/healthz" in check


def test_every_variable_compose_sets_is_one_the_settings_read() -> None:
    known = known_variables()
    for name, spec in COMPOSE["services"].items():
        if name in {"kafka", "postgres"}:
            continue
        unknown = sorted(set(spec.get("environment", {})) - known)
        assert unknown == [], f"{name} sets variables no settings read: {unknown}"
    urls = COMPOSE["services"]["gateway"]["environment"]
    for service in ("profile", "scoring", "engagement"):
        assert urls[f"C360_GATEWAY__{service.upper()}_URL"] == f"http://{service}:{port_of(service)}"


# -- Kubernetes ------------------------------------------------------------------------------------


def documents(directory: Path) -> list[dict[str, Any]]:
    """Every manifest of a kustomization, resolved through its resources (no kustomize here)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    found: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = (directory / resource).resolve()
        if path.is_dir():
            found += documents(path)
        else:
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


BASE = documents(DEPLOY / "base")


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in BASE if doc["kind"] == kind}


@pytest.mark.parametrize(
    "manifest", [d for d in BASE if d["kind"] != "ScaledObject"], ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_overlay_resolves_to_the_base_and_is_valid() -> None:
    overlay = documents(DEPLOY / "overlays" / "example")
    assert {d["kind"] for d in overlay} >= {"Namespace", "Deployment", "Service", "Job", "ScaledObject"}
    patch = yaml.safe_load((DEPLOY / "overlays" / "example" / "config.yaml").read_text())
    kubernetes_validate.validate(patch, KUBERNETES_VERSION, strict=True)
    assert set(patch["data"]) <= known_variables()


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_each_service_has_a_deployment_service_and_disruption_budget_that_agree(service: str) -> None:
    name = f"c360-{service}"
    deployment = by_kind("Deployment")[name]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", f"services.{service}"]
    assert container["ports"] == [{"name": "http", "containerPort": port_of(service)}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"requests", "limits"} <= set(container["resources"])
    assert {e.get("configMapRef", e.get("secretRef", {})).get("name") for e in container["envFrom"]} == {
        "c360-config",
        "c360-secrets",
    }
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    svc = by_kind("Service")[name]
    assert svc["spec"]["selector"] == labels
    assert svc["spec"]["ports"] == [{"name": "http", "port": port_of(service), "targetPort": "http"}]
    assert by_kind("PodDisruptionBudget")[name]["spec"]["selector"]["matchLabels"] == labels


@pytest.mark.parametrize("service", sorted(CONSUMERS))
def test_each_consumer_scales_on_its_groups_lag_capped_at_the_partitions(service: str) -> None:
    scaled = by_kind("ScaledObject")[f"c360-{service}"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind("Deployment")
    partitions = int(by_kind("ConfigMap")["c360-config"]["data"]["C360_TOPIC_PARTITIONS"])
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= partitions
    topics = set(importlib.import_module(f"services.{service}.app").TOPICS)
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {group_of(service)}
    watched = {t["metadata"]["topic"] for t in triggers}
    assert watched <= set(ALL_TOPICS)
    assert watched == topics
    assert all(t["metadata"]["allowIdleConsumers"] == "false" for t in triggers)


def test_the_config_map_sets_only_known_variables_and_the_gateway_finds_the_services() -> None:
    data = by_kind("ConfigMap")["c360-config"]["data"]
    assert set(data) <= known_variables()
    for service in ("profile", "scoring", "engagement"):
        assert data[f"C360_GATEWAY__{service.upper()}_URL"] == f"http://c360-{service}:{port_of(service)}"
    job = by_kind("Job")["c360-migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"][-1] == "c360 migrate && c360 topics"


def test_the_docs_name_every_kubernetes_object() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    for name in {doc["metadata"]["name"] for doc in BASE}:
        assert re.search(rf"\b{re.escape(name)}\b", operations), f"docs/operations.md does not mention {name}"
