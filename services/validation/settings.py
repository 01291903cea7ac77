"""Settings of the validation service (env prefix ``CRS_VALIDATION_``)."""

from typing import ClassVar

from shared.settings import ServiceSettings, service_settings_config


class ValidationSettings(ServiceSettings):
    service_name: ClassVar[str] = "validation"
    model_config = service_settings_config("validation")

    health_port: int = 8082
