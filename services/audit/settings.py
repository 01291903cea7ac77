"""Settings of the audit service (env prefix ``CRS_AUDIT_``)."""

from typing import ClassVar

from pydantic import Field

from shared.settings import LOCAL_HEALTH_PORTS, ServiceSettings, service_settings_config


class AuditSettings(ServiceSettings):
    service_name: ClassVar[str] = "audit"
    model_config = service_settings_config("audit")

    health_port: int = LOCAL_HEALTH_PORTS["audit"]
    # Audit records what is on the topics, however large; the owning service dead-letters it.
    max_message_bytes: int = Field(default=4 * 1024 * 1024)
    incarnation_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often audit asks the broker whether a topic it reads was deleted and created again",
    )
