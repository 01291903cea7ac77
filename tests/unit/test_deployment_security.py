"""Security of the deployment files and of the settings, checked without running them.

No Docker engine or cluster runs on the development machines, so docker-compose.yml and the
Kubernetes manifests are parsed and their bindings and secrets checked; the settings are built and
rendered the way a log would render them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from pydantic import ValidationError

from shared import registry
from shared.kafka import build_broker, kafka_client_options, kafka_security
from shared.settings import InfrastructureSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
KUBERNETES = ROOT / "deploy" / "kubernetes"
# ${NAME}, ${NAME:-default}, ${NAME:?message}: compose's interpolation of .env.
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def test_compose_publishes_every_port_on_loopback_only() -> None:
    published = {
        name: service.get("ports", [])
        for name, service in COMPOSE["services"].items()
        if service.get("ports")
    }
    assert set(published) >= {"kafka", "mongo", "prometheus", "grafana"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_compose_mongodb_requires_authentication_with_secrets_from_the_env_file() -> None:
    mongo = COMPOSE["services"]["mongo"]
    command = " ".join(mongo["entrypoint"])
    assert "--keyFile" in command
    assert "--replSet rs0" in command
    environment = mongo["environment"]
    for name in ("MONGO_INITDB_ROOT_PASSWORD", "MONGO_REPLICA_SET_KEY", "CRS_MONGO_PASSWORD"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", environment[name]), f"{name} must come from .env"
    uri = COMPOSE["x-crs-environment"]["MONGODB_URI"]
    assert re.match(
        r"mongodb://\$\{CRS_MONGO_USERNAME:-crs\}:\$\{CRS_MONGO_PASSWORD:\?[^}]+\}@mongo:27017/", uri
    )
    assert "authSource=admin" in uri
    healthcheck = " ".join(mongo["healthcheck"]["test"])
    assert '-p "$$MONGO_INITDB_ROOT_PASSWORD"' in healthcheck


def test_compose_grafana_has_an_admin_password_from_the_env_file_and_no_anonymous_access() -> None:
    environment = COMPOSE["services"]["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", environment["GF_SECURITY_ADMIN_PASSWORD"])


def test_every_secret_compose_reads_is_in_the_committed_example_and_the_env_file_is_ignored() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(VARIABLE.findall(text))
    example = (ROOT / ".env.example").read_text()
    listed = {line.split("=", 1)[0] for line in example.splitlines() if re.match(r"^[A-Z_]+=", line)}
    optional = {"LOG_FORMAT", "LOG_LEVEL", "CRS_TOPIC_PARTITIONS", "KAFKA_SECURITY_PROTOCOL"}
    assert used - optional <= listed, used - optional - listed
    assert all("CHANGE-ME" in line for line in example.splitlines() if re.match(r"^[A-Z_]*PASSWORD=", line))
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


def _manifests() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted((KUBERNETES / "base").glob("*.yaml")):
        if path.name.endswith(".example.yaml") or path.name == "kustomization.yaml":
            continue
        documents.extend(document for document in yaml.safe_load_all(path.read_text()) if document)
    return documents


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def test_kubernetes_containers_read_the_database_uri_and_kafka_credentials_from_secrets() -> None:
    workloads = [document for document in _manifests() if document["kind"] in {"Deployment", "Job"}]
    assert len(workloads) == len(registry.SERVICES) + 1  # and the job that creates the topics
    for workload in workloads:
        for container in _containers(workload):
            env = {entry["name"]: entry for entry in container.get("env", [])}
            assert env["MONGODB_URI"]["valueFrom"]["secretKeyRef"]["name"] == "crs-mongodb"
            assert "value" not in env["MONGODB_URI"]
            secrets = [
                source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source
            ]
            # Kafka's credentials, and a service's own secrets (the workspace's key) in its own Secret.
            assert secrets in (["crs-kafka"], ["crs-kafka", workload["metadata"]["name"]]), secrets
            assert not any("PASSWORD" in name for name in env), "passwords only from Secrets"


def test_kubernetes_production_speaks_sasl_ssl_to_kafka_and_uses_a_real_user_directory() -> None:
    production = yaml.safe_load((KUBERNETES / "overlays" / "production" / "kustomization.yaml").read_text())
    (config,) = production["configMapGenerator"]
    literals = dict(literal.split("=", 1) for literal in config["literals"])
    assert literals["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert literals["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert literals["KAFKA_SSL_CAFILE"] == "/etc/crs/kafka-ca/ca.crt"
    assert literals["CRS_USER_DIRECTORY_PATH"] == "/etc/crs/users/users.toml"
    resolution = next(d for d in _manifests() if d["metadata"]["name"] == "crs-resolution")
    volumes = {volume["name"]: volume for volume in resolution["spec"]["template"]["spec"]["volumes"]}
    assert volumes["users"]["secret"]["secretName"] == "crs-users"
    assert volumes["kafka-ca"]["secret"]["secretName"] == "crs-kafka-ca"


def test_connection_strings_and_passwords_never_show_in_a_repr_or_a_log() -> None:
    settings = InfrastructureSettings(
        mongodb_uri="mongodb://crs:s3cret-mongo@db:27017/?replicaSet=rs0",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="crs",
        kafka_sasl_password="s3cret-kafka",
    )
    rendered = [repr(settings), str(settings), settings.model_dump_json()]
    console = structlog.dev.ConsoleRenderer(colors=False)(None, "info", {"event": "x", "s": settings})
    as_json = structlog.processors.JSONRenderer()(None, "info", {"event": "x", "s": repr(settings)})
    rendered += [str(console), str(as_json)]
    for text in rendered:
        assert "s3cret" not in text
    assert settings.mongodb_uri.get_secret_value().startswith("mongodb://crs:s3cret-mongo@")


def test_kafka_speaks_scram_over_tls_when_configured() -> None:
    settings = InfrastructureSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="crs",
        kafka_sasl_password="pw",
    )
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("crs", "pw")
    context = options["ssl_context"]
    assert context.check_hostname
    # The services' broker builds its consumers with the same security.
    broker = build_broker("kafka:9093", client_id="t", infrastructure=settings)
    consumers: Any = broker.config.broker_config.builder
    assert (consumers.keywords["security_protocol"], consumers.keywords["sasl_mechanism"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert kafka_security(InfrastructureSettings()) is None
    tls_only = kafka_client_options(InfrastructureSettings(kafka_security_protocol="SSL"))
    assert tls_only["security_protocol"] == "SSL"
    sasl_plain = kafka_client_options(
        InfrastructureSettings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert (sasl_plain["security_protocol"], sasl_plain["sasl_mechanism"]) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
    )


def test_sasl_without_credentials_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        InfrastructureSettings(kafka_security_protocol="SASL_SSL")


def test_kafka_security_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "crs")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "from-env")
    options = kafka_client_options()
    assert (options["security_protocol"], options["sasl_plain_password"]) == ("SASL_PLAINTEXT", "from-env")
