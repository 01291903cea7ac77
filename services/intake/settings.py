"""Settings of the intake service (env prefix ``CRS_INTAKE_``)."""

from typing import ClassVar

from pydantic import Field

from shared.settings import LOCAL_HEALTH_PORTS, ServiceSettings, service_settings_config


class IntakeSettings(ServiceSettings):
    service_name: ClassVar[str] = "intake"
    model_config = service_settings_config("intake")

    health_port: int = LOCAL_HEALTH_PORTS["intake"]
    max_analysed_chars: int = Field(
        default=20_000,
        ge=1_000,
        description="How much of a description or email body is read for type, documents, amounts "
        "and dates (the whole text is kept): bounds the CPU time of one message",
    )
    reopen_window_days: float = Field(
        default=30,
        ge=0,
        description="How long after a request is closed a reply in its thread reopens it; a later "
        "reply opens a new request linked to the closed one",
    )
