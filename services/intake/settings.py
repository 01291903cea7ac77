"""Settings of the intake service (env prefix ``CRS_INTAKE_``)."""

from typing import ClassVar

from shared.settings import LOCAL_HEALTH_PORTS, ServiceSettings, service_settings_config


class IntakeSettings(ServiceSettings):
    service_name: ClassVar[str] = "intake"
    model_config = service_settings_config("intake")

    health_port: int = LOCAL_HEALTH_PORTS["intake"]
