"""Settings of the routing service (env prefix ``CRS_ROUTING_``)."""

from typing import ClassVar

from shared.settings import ServiceSettings, service_settings_config


class RoutingSettings(ServiceSettings):
    service_name: ClassVar[str] = "routing"
    model_config = service_settings_config("routing")

    health_port: int = 8083
