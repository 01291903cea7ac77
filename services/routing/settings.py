"""Settings of the routing service (env prefix ``CRS_ROUTING_``)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from services.routing.rules import DEFAULT_RULES_FILE
from shared.settings import LOCAL_HEALTH_PORTS, ServiceSettings, service_settings_config


class RoutingSettings(ServiceSettings):
    service_name: ClassVar[str] = "routing"
    model_config = service_settings_config("routing")

    health_port: int = LOCAL_HEALTH_PORTS["routing"]
    rules_file: Path = Field(
        default=DEFAULT_RULES_FILE, description="The routing rules (TOML), read and checked at start"
    )
    sla_check_seconds: float = Field(default=5.0, gt=0, description="How often due SLA timers are fired")
