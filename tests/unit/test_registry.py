"""The registry of services and topics (`shared/registry.py`) is complete and everything agrees with it.

What is built from the registry (topic lists, the stack's services, the AsyncAPI channels) cannot
drift; what is written by hand (each service's subscriptions, docker-compose.yml, the Kubernetes
manifests, the Prometheus scrape configuration) is checked against it here, and each failure
names the file and what it lacks. The request types are checked against every table that must
know them: intake's classification rules, routing's rules, resolution's strategies and policy.
"""

from __future__ import annotations

import ast
import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from crs.deploy import render_deployment, stale_files
from services.intake.email_understanding import RULES as CLASSIFICATION_RULES
from services.resolution.policy import load_policy
from services.resolution.strategies import Facts, propose
from services.routing.rules import UNCLASSIFIED, load_rules
from shared import registry, topics
from shared.contract import RequestType, ResolutionKind
from shared.events import RequestRouted
from shared.settings import LOCAL_HEALTH_PORTS

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
NAMES = [service.name for service in registry.SERVICES]
CONTAINER_PORT = 8080


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# The registry itself


def test_every_service_folder_is_in_the_registry_and_every_entry_has_a_folder() -> None:
    folders = {path.parent.name for path in (ROOT / "services").glob("*/__main__.py")}
    assert folders == set(NAMES), (
        f"services/ folders without a registry entry: {sorted(folders - set(NAMES))}; "
        f"entries without a folder: {sorted(set(NAMES) - folders)}"
    )
    for service in registry.SERVICES:
        assert importlib.util.find_spec(service.module) is not None


def test_names_ports_and_topics_are_unique_and_every_topic_named_is_registered() -> None:
    topic_names = [topic.name for topic in registry.TOPICS]
    assert len(set(topic_names)) == len(topic_names)
    assert len(set(NAMES)) == len(NAMES)
    ports = [service.health_port for service in registry.SERVICES]
    assert len(set(ports)) == len(ports)
    twins = {f"{topic.name}.dlq" for topic in registry.TOPICS if topic.dead_letter}
    for service in registry.SERVICES:
        unknown = set(service.consumes + service.publishes) - set(topic_names) - twins
        assert not unknown, f"{service.name} names unregistered topics {sorted(unknown)}"


def test_every_topic_has_a_writer_and_a_reader() -> None:
    outside_readers = {topics.ERP_RESOLUTIONS, topics.REQUEST_STATUS}  # the ERP, the CRM, operations
    for topic in registry.TOPICS:
        publishers = {service.name for service in registry.SERVICES if topic.name in service.publishes}
        if topic.contract and not publishers:
            assert topic.owner not in NAMES, f"{topic.name}: inbound, written outside the system"
        else:
            assert publishers, f"{topic.name} is ours but no service publishes it"
            owners = set(topic.owner.split(", "))
            # A contract topic may also be written outside (approvals: the company's own tools).
            expected = publishers <= owners if topic.contract else publishers == owners
            assert expected, f"{topic.name}: owner {topic.owner!r}"
        assert registry.consumers_of(topic.name) or topic.name in outside_readers, (
            f"nobody reads {topic.name}"
        )
        if not topic.contract:
            assert topic.owner in NAMES, f"internal topic {topic.name} must be owned by one of our services"


def test_the_topic_constants_and_lists_come_from_the_registry() -> None:
    constants = {
        name: value
        for name, value in vars(topics).items()
        # Not topics: the dead-letter suffix and the headers of a replayed record.
        if name.isupper()
        and isinstance(value, str)
        and name != "DLQ_SUFFIX"
        and not name.startswith("REPLAY_")
    }
    assert set(constants.values()) == {topic.name for topic in registry.TOPICS}
    assert set(topics.ALL_TOPICS) == (
        {topic.name for topic in registry.TOPICS}
        | {topics.dead_letter_topic(topic.name) for topic in registry.TOPICS if topic.dead_letter}
        | {topics.replay_topic(service.name) for service in registry.SERVICES}
    )
    assert registry.service("audit").consumes == topics.REQUEST_TOPICS
    assert {service.name: service.health_port for service in registry.SERVICES} == LOCAL_HEALTH_PORTS


# --------------------------------------------------------------------------------------------
# The services' own code


@pytest.mark.parametrize("name", NAMES)
def test_a_service_subscribes_to_exactly_the_topics_its_entry_consumes(name: str) -> None:
    app_module = importlib.import_module(f"services.{name}.app")
    app, _ = app_module.build_app()
    subscribed = {topic.name for subscriber in app.broker.subscribers for topic in subscriber.topics}
    # Besides what it consumes, every service takes the replays of what it dead-lettered.
    assert subscribed == {*registry.service(name).consumes, topics.replay_topic(name)}


@pytest.mark.parametrize("name", NAMES)
def test_a_service_names_only_topics_its_entry_consumes_or_publishes(name: str) -> None:
    service = registry.service(name)
    known = {constant: getattr(topics, constant) for constant in dir(topics) if constant.isupper()}
    for path in (ROOT / "services" / name).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "shared.topics":
                for alias in node.names:
                    value = known.get(alias.name)
                    named = value if isinstance(value, tuple) else (value,)
                    stray = {
                        topic
                        for topic in named
                        if isinstance(topic, str) and topic not in service.consumes + service.publishes
                    }
                    assert not stray, (
                        f"{path.relative_to(ROOT)} uses {sorted(stray)}, not in its registry entry"
                    )


# --------------------------------------------------------------------------------------------
# Deployment files, checked against the registry


def test_compose_runs_every_registered_service_on_the_container_port() -> None:
    compose = _yaml(ROOT / "docker-compose.yml")
    environment = compose["x-crs-environment"]
    for service in registry.SERVICES:
        entry = compose["services"].get(service.name)
        assert entry is not None, f"docker-compose.yml has no service {service.name}"
        assert entry["command"] == ["python", "-m", service.module]
        prefix = f"CRS_{service.name.upper()}_"
        assert environment.get(f"{prefix}HEALTH_HOST") == "0.0.0.0"
        assert environment.get(f"{prefix}HEALTH_PORT") == str(CONTAINER_PORT)
    ours = {
        name
        for name, entry in compose["services"].items()
        if "services." in " ".join(entry.get("command", []))
    }
    assert ours == set(NAMES), (
        f"docker-compose.yml runs services the registry lacks: {sorted(ours - set(NAMES))}"
    )


def test_kubernetes_has_a_deployment_and_a_disruption_budget_per_service_and_nothing_else() -> None:
    base = KUBERNETES / "base"
    kustomization = _yaml(base / "kustomization.yaml")
    literals = dict(literal.split("=", 1) for literal in kustomization["configMapGenerator"][0]["literals"])
    deployments = {path.name for path in base.glob("deployment-*.yaml")}
    assert deployments == {f"deployment-{name}.yaml" for name in NAMES}
    budgets = {
        document["metadata"]["name"] for document in yaml.safe_load_all((base / "pdb.yaml").read_text())
    }
    assert budgets == {f"crs-{name}" for name in NAMES}
    for service in registry.SERVICES:
        file = f"deployment-{service.name}.yaml"
        assert file in kustomization["resources"], f"kustomization.yaml does not list {file}"
        prefix = f"CRS_{service.name.upper()}_"
        assert literals.get(f"{prefix}HEALTH_HOST") == "0.0.0.0"
        assert literals.get(f"{prefix}HEALTH_PORT") == str(CONTAINER_PORT)
        assert literals.get(f"{prefix}DATABASE") == service.database
        deployment = _yaml(base / file)
        assert deployment["metadata"]["name"] == f"crs-{service.name}"
        template = deployment["spec"]["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/component"] == service.name
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(CONTAINER_PORT)
        (container,) = template["spec"]["containers"]
        assert container["command"] == ["python", "-m", service.module]
        assert container["ports"][0]["containerPort"] == CONTAINER_PORT
    production = _yaml(KUBERNETES / "overlays" / "production" / "kustomization.yaml")
    assert {replicas["name"] for replicas in production["replicas"]} == {f"crs-{name}" for name in NAMES}


def test_prometheus_scrapes_every_registered_service() -> None:
    compose_scrape = _yaml(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    (job,) = compose_scrape["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == NAMES
    assert discovery["port"] == CONTAINER_PORT


# --------------------------------------------------------------------------------------------
# Every request type is known to every table that decides on it

FOR_A_PERSON = {RequestType.ACCOUNT_UPDATE, RequestType.CONTRACT_QUERY, RequestType.SERVICE_REQUEST}
"""The types that always go to a person: resolution has no strategy for them, on purpose. Every
other type must have one (``propose`` in services/resolution/strategies.py)."""


def test_every_request_type_has_a_strategy_or_is_given_to_a_person() -> None:
    nothing_known = Facts(customer=None, invoices={}, contracts={}, payments={})
    tolerance = load_policy().write_off_tolerance
    for request_type in RequestType:
        proposal = propose(_routed(request_type), nothing_known, write_off_tolerance=tolerance)
        if request_type in FOR_A_PERSON:
            assert proposal is None, f"{request_type} has a strategy: take it out of FOR_A_PERSON"
        else:
            assert proposal is not None, (
                f"{request_type} has no strategy in services/resolution/strategies.py; "
                "if a person always handles it, add it to FOR_A_PERSON"
            )


def test_every_kind_of_posting_has_approval_tiers() -> None:
    assert set(load_policy().kinds) == set(ResolutionKind)


def test_every_request_type_has_a_queue_and_classification_rules() -> None:
    rules = load_rules()
    for request_type in RequestType:
        assert rules.queue_for(request_type) in rules.queues, (
            f"routing rules.toml: no queue for {request_type}"
        )
    assert UNCLASSIFIED in rules.types
    assert {rule.request_type for rule in CLASSIFICATION_RULES} == set(RequestType)


def _routed(request_type: RequestType) -> RequestRouted:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    return RequestRouted.model_validate(
        {
            "event_id": "e1",
            "request_id": "REQ-1",
            "correlation_id": "CASE-1",
            "occurred_at": now,
            "details": {
                "channel": "portal",
                "source_id": "CASE-1",
                "customer_id": "CUST-1",
                "request_type": request_type,
                "subject": "Request",
                "submitted_at": now,
            },
            "customer_id": "CUST-1",
            "customer_tier": "key",
            "queue": "customer_service",
            "priority": "normal",
            "sla_due_at": now,
            "rule_version": "r1",
        }
    )


def test_the_generated_deployment_files_are_in_step_with_the_registry() -> None:
    assert stale_files(ROOT) == [], "run `crs deploy-files` and commit what it writes"


def test_a_new_service_gets_its_deployment_from_the_template() -> None:
    workspace = registry.Service("workspace", 8090, consumes=(topics.REQUEST_STATUS,), publishes=())
    text = render_deployment(workspace)
    deployment = yaml.safe_load(text)
    assert deployment["metadata"]["name"] == "crs-workspace"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "services.workspace"]
    assert "users" not in text
    assert "crs-users" in render_deployment(registry.service("resolution"))
