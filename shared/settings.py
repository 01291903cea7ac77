"""Settings: the infrastructure every service shares, and a base for each service's own.

``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URI`` are read without a prefix because every part of
the system (and the `crs` tool) points at the same broker and database server. What belongs to one
service reads ``CRS_<SERVICE>_...``; see :class:`ServiceSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Final, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.registry import SERVICES

# ---------------------------------------------------------------------------------------------
# Defaults: the local stack's addresses, defined here once. The services, the `crs` tool (its
# stack supervisor, its commands, the AsyncAPI document) and the tests all read them from here.

LOCAL_HOST: Final = "127.0.0.1"
LOCAL_KAFKA_PORT: Final = 9092
LOCAL_MONGODB_PORT: Final = 27017
LOCAL_HEALTH_PORTS: Final[Mapping[str, int]] = MappingProxyType(
    {service.name: service.health_port for service in SERVICES}
)
"""Each service's health and metrics port on the local stack (8080 in containers), from the registry."""


def local_kafka(host: str = LOCAL_HOST, port: int = LOCAL_KAFKA_PORT) -> str:
    """The bootstrap address of a local broker."""
    return f"{host}:{port}"


def local_mongodb_uri(host: str = LOCAL_HOST, port: int = LOCAL_MONGODB_PORT) -> str:
    """The URI of a local database server.

    ``retryWrites=false`` works around SecantusDB 0.7.0b3's slow retryable writes, and
    ``directConnection=true`` stops the driver looking for other replica-set members.
    """
    return f"mongodb://{host}:{port}/?retryWrites=false&directConnection=true"


REQUEST_FETCH_MAX_WAIT_MS: Final = 100
"""How long a fetch of a request's next hop may wait for records (measured on the local broker,
which holds a fetch for much of its wait even when records arrive: a request at 10/s took 0.82 s
end to end with aiokafka's 500 ms, 0.32 s with 50 ms; each idle consumer then polls 20 times a
second, so 100 ms is the default)."""

LOCAL_KAFKA: Final = local_kafka()
LOCAL_MONGODB: Final = local_mongodb_uri()

# ---------------------------------------------------------------------------------------------


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class InfrastructureSettings(BaseSettings):
    """Where the broker and the database server are, and how to reach them safely.

    Defaults: the local stack, no authentication. Secrets (the MongoDB connection string, which
    carries its credentials, and the Kafka SASL password) are ``SecretStr``: their repr, and so
    any log of these settings, shows ``**********``. MongoDB's authentication and TLS are options
    of its connection string (``mongodb://user:password@host/?tls=true&tlsCAFile=...``); Kafka's
    are the ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*`` and ``KAFKA_SSL_*`` settings below.
    """

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = Field(default=LOCAL_KAFKA)
    mongodb_uri: SecretStr = Field(default=SecretStr(LOCAL_MONGODB))
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="PLAINTEXT", description="SASL_SSL in production: SCRAM over TLS"
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(default="SCRAM-SHA-512")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle the broker's certificate is checked against"
    )
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate, for mutual TLS")
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    topic_partitions: int = Field(default=4, ge=1, validation_alias="CRS_TOPIC_PARTITIONS")
    topic_replication_factor: int = Field(default=1, ge=1, validation_alias="CRS_TOPIC_REPLICATION_FACTOR")
    log_format: str = Field(default="auto", description="json, console or auto (console on a TTY)")
    log_level: str = Field(default="INFO")

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        return self


class ServiceSettings(BaseSettings):
    """Settings of one service. Subclasses set ``service_name``; the env prefix follows from it."""

    service_name: ClassVar[str] = "service"

    database: str = Field(default="", description="This service's own MongoDB database")
    consumer_group: str = Field(default="")
    health_host: str = "127.0.0.1"
    health_port: int = 8080
    session_timeout_ms: int = Field(default=6_000, ge=1_000)
    fetch_max_wait_ms: int = Field(
        default=500,
        ge=1,
        le=5_000,
        description="How long the broker may hold a fetch that finds nothing new (aiokafka's "
        "default). Apache Kafka answers as soon as a record arrives; the local broker (tansu) "
        "holds the fetch for much of this even when records arrive",
    )
    request_fetch_max_wait_ms: int = Field(
        default=REQUEST_FETCH_MAX_WAIT_MS,
        ge=1,
        le=5_000,
        description="The same for the topics a request travels on (shared.topics.REQUEST_PATH): "
        "on the local broker each hop waits on it, so it is short; an idle consumer of them polls "
        "the broker that much more often",
    )
    max_partition_fetch_bytes: int = Field(
        default=256 * 1024,
        ge=16 * 1024,
        le=64 * 1024 * 1024,
        description="Most bytes a consumer fetches and keeps ahead per partition. A record larger "
        "than this still comes whole (the broker returns a fetch's first record batch whatever its "
        "size, on Apache Kafka since 0.10.1 and on the local broker), so this bounds only what "
        "waits in memory: one buffer per partition of every subscriber, full during a backlog",
    )
    max_attempts: int = Field(default=4, ge=1, description="Handler attempts before the DLQ")
    max_batch_size: int = Field(default=200, ge=1, description="Records handled in one transaction")
    retry_backoff_seconds: float = Field(default=0.2, gt=0)
    max_message_bytes: int = Field(default=512 * 1024, description="Larger messages go to the DLQ")
    max_record_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024,
        description="Largest record we publish (at most the producer's max_request_size, 1 MiB); "
        "a message whose event would be larger fails for good",
    )
    max_nesting_depth: int = Field(default=64, ge=4, description="Deeper JSON goes to the DLQ")
    outbox_sweep_seconds: float = Field(default=2.0, gt=0)
    processed_retention_days: float = Field(
        default=30.0, ge=0, description="How long processed keys are kept (0: for ever)"
    )
    processed_prune_seconds: float = Field(default=3600.0, gt=0, description="How often old keys are pruned")
    outbox_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        description="The sweeper leaves younger outbox entries to the replica that is publishing them",
    )

    def model_post_init(self, __context: object) -> None:
        # Defaults that follow from the service's name, so subclasses only name themselves.
        self.database = self.database or f"crs_{self.service_name}"
        self.consumer_group = self.consumer_group or f"crs-{self.service_name}"


def service_settings_config(service_name: str) -> SettingsConfigDict:
    """The pydantic-settings config of a service: ``CRS_<NAME>_`` prefix, unknown vars ignored."""
    return SettingsConfigDict(env_prefix=f"CRS_{service_name.upper()}_", extra="ignore")
