"""Settings of the validation service (env prefix ``CRS_VALIDATION_``)."""

from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, Field

from services.validation.domain import DuplicateCriterion
from shared.settings import LOCAL_HEALTH_PORTS, ServiceSettings, service_settings_config

DEFAULT_RULES_FILE = Path(__file__).parents[1] / "routing" / "rules.toml"


class ValidationSettings(ServiceSettings):
    service_name: ClassVar[str] = "validation"
    model_config = service_settings_config("validation")

    health_port: int = LOCAL_HEALTH_PORTS["validation"]
    hold_reference_seconds: float = Field(
        default=24 * 3600,
        gt=0,
        description="How long a request waits for a named invoice, payment or contract before it "
        "is rejected as unknown_invoice / unknown_payment / unknown_contract",
    )
    hold_recheck_seconds: float = Field(
        default=2.0, gt=0, description="How often held requests are decided again"
    )
    duplicate_window_hours: float = Field(
        default=30 * 24, ge=0, description="How far back an open request counts for duplicates"
    )
    duplicate_match: tuple[DuplicateCriterion, ...] = Field(
        default=("type", "invoice"),
        description="What a repeat must share with the open request besides the customer: "
        "any of type, invoice, payment (JSON list in the environment)",
    )
    customer_answer_business_days: int = Field(
        default=10,
        ge=1,
        description="How many business days a question waits for the customer's answer: one "
        "reminder halfway (still on_hold, awaiting_customer), then closed with reason no_response",
    )
    customer_answer_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Instead of business days: how many seconds a question waits (tests, demos)",
    )
    routing_rules_file: Path = Field(
        default=DEFAULT_RULES_FILE,
        validation_alias=AliasChoices(
            "CRS_VALIDATION_ROUTING_RULES_FILE", "CRS_ROUTING_RULES_FILE", "routing_rules_file"
        ),
        description="Routing's rules file: its business calendar counts the business days a question waits",
    )
