"""Settings of the resolution service (env prefix ``CRS_RESOLUTION_``)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from services.resolution.policy import DEFAULT_POLICY_PATH
from shared.settings import LOCAL_HEALTH_PORTS, ServiceSettings, service_settings_config


class ResolutionSettings(ServiceSettings):
    service_name: ClassVar[str] = "resolution"
    model_config = service_settings_config("resolution")

    health_port: int = LOCAL_HEALTH_PORTS["resolution"]
    approval_policy_path: Path = Field(
        default=DEFAULT_POLICY_PATH, description="The approval policy (TOML), read and validated at start"
    )
    ack_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="An issued resolution without an ERP ack this long is escalated"
    )
    ack_check_seconds: float = Field(
        default=5.0, gt=0, description="How often overdue acks and requests waiting for data are looked at"
    )
    reference_wait_seconds: float = Field(
        default=900.0,
        ge=0,
        description="How long a request waits for reference data resolution lacks before a person takes it",
    )
