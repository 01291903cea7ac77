"""Settings of the workspace (env prefix ``CRS_WORKSPACE_``).

One port serves the console, its API (``/api``, OpenAPI at ``/openapi.json`` and ``/docs``),
``/health``, ``/health/live`` and ``/metrics``: 127.0.0.1:8080 locally.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import ClassVar, Self

import structlog
from pydantic import AliasChoices, Field, SecretStr, model_validator

from shared.settings import LOCAL_HEALTH_PORTS, ServiceSettings, service_settings_config

log = structlog.get_logger(__name__)

# The business calendar is the one routing's rules file defines (its ``[calendar]`` table): the same
# file, read as a file (services never import each other's code).
DEFAULT_RULES_FILE = Path(__file__).parents[1] / "routing" / "rules.toml"
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeme", "secret", "please-change-me", ""})
MIN_SECRET_LENGTH = 32


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WorkspaceSettings(ServiceSettings):
    service_name: ClassVar[str] = "workspace"
    model_config = service_settings_config("workspace")

    health_port: int = Field(
        default=LOCAL_HEALTH_PORTS["workspace"], description="The console, its API, health and metrics"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs session cookies and API tokens; at least 32 characters. Unset on 127.0.0.1: "
        "a random one per process (sessions and tokens end with it); unset elsewhere: refused",
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="Secure cookies (HTTPS only); unset: on unless the workspace listens on loopback",
    )
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    token_max_age_days: float = Field(default=90.0, gt=0, description="How long an API token is valid")
    routing_rules_file: Path = Field(
        default=DEFAULT_RULES_FILE,
        validation_alias=AliasChoices(
            "CRS_WORKSPACE_ROUTING_RULES_FILE", "CRS_ROUTING_RULES_FILE", "routing_rules_file"
        ),
        description="Routing's rules file: its business calendar counts SLA time left in business hours",
    )
    # Single sign-on (OIDC): on when an issuer and a client are configured.
    oidc_issuer: str | None = Field(default=None, description="The identity provider's issuer URL")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile"
    oidc_username_claim: str = Field(
        default="email", description="The ID token claim looked up in the user directory (id, email or alias)"
    )
    oidc_display_name: str = "company single sign-on"
    public_url: str | None = Field(
        default=None, description="The console's address as browsers reach it (for the OIDC redirect)"
    )

    @model_validator(mode="after")
    def _secrets_are_real(self) -> Self:
        local = is_loopback(self.health_host)
        value = self.secret_key.get_secret_value() if self.secret_key else ""
        if not value:
            if not local:
                raise ValueError(
                    "CRS_WORKSPACE_SECRET_KEY must be set (at least 32 random characters) outside 127.0.0.1"
                )
            self.secret_key = SecretStr(secrets.token_urlsafe(48))
            log.warning(
                "workspace.secret_generated", detail="sessions and tokens last only as long as this process"
            )
        elif not local and (value.casefold() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LENGTH):
            raise ValueError("CRS_WORKSPACE_SECRET_KEY is a placeholder or shorter than 32 characters")
        if (self.oidc_issuer is None) != (self.oidc_client_id is None):
            raise ValueError("CRS_WORKSPACE_OIDC_ISSUER and CRS_WORKSPACE_OIDC_CLIENT_ID go together")
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else not is_loopback(self.health_host)

    @property
    def secret(self) -> str:
        assert self.secret_key is not None  # set by the validator
        return self.secret_key.get_secret_value()

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None and self.oidc_client_id is not None
