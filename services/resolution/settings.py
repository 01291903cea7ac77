"""Settings of the resolution service (env prefix ``CRS_RESOLUTION_``)."""

from typing import ClassVar

from shared.settings import ServiceSettings, service_settings_config


class ResolutionSettings(ServiceSettings):
    service_name: ClassVar[str] = "resolution"
    model_config = service_settings_config("resolution")

    health_port: int = 8084
