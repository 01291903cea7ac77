"""Settings: the infrastructure every service shares, and a base for each service's own.

``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URI`` are read without a prefix because every part of
the system (and the `crs` tool) points at the same broker and database server. What belongs to one
service reads ``CRS_<SERVICE>_...``; see :class:`ServiceSettings`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_KAFKA = "127.0.0.1:9092"
LOCAL_MONGODB = "mongodb://127.0.0.1:27017/?retryWrites=false&directConnection=true"


class InfrastructureSettings(BaseSettings):
    """Where the broker and the database server are. Defaults: the local stack."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = Field(default=LOCAL_KAFKA)
    mongodb_uri: str = Field(default=LOCAL_MONGODB)
    topic_partitions: int = Field(default=4, ge=1, validation_alias="CRS_TOPIC_PARTITIONS")
    topic_replication_factor: int = Field(default=1, ge=1, validation_alias="CRS_TOPIC_REPLICATION_FACTOR")
    log_format: str = Field(default="auto", description="json, console or auto (console on a TTY)")
    log_level: str = Field(default="INFO")


class ServiceSettings(BaseSettings):
    """Settings of one service. Subclasses set ``service_name``; the env prefix follows from it."""

    service_name: ClassVar[str] = "service"

    database: str = Field(default="", description="This service's own MongoDB database")
    consumer_group: str = Field(default="")
    health_host: str = "127.0.0.1"
    health_port: int = 8080
    session_timeout_ms: int = Field(default=6_000, ge=1_000)
    max_attempts: int = Field(default=4, ge=1, description="Handler attempts before the DLQ")
    max_batch_size: int = Field(default=200, ge=1, description="Records handled in one transaction")
    retry_backoff_seconds: float = Field(default=0.2, gt=0)
    max_message_bytes: int = Field(default=512 * 1024, description="Larger messages go to the DLQ")
    outbox_sweep_seconds: float = Field(default=2.0, gt=0)
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
