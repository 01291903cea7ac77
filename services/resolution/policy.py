"""The approval policy: which approvals a posting needs, read from a TOML file at start.

The file (``approval_policy.toml`` next to this module unless ``CRS_RESOLUTION_APPROVAL_POLICY_PATH``
says otherwise) is validated into frozen models; anything wrong stops the service at start with a
:class:`PolicyError` naming the file and the field, rather than letting it approve by accident.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.contract import ResolutionKind
from shared.delivery import describe_validation_error
from shared.money import Amount

DEFAULT_POLICY_PATH = Path(__file__).with_name("approval_policy.toml")


class PolicyError(Exception):
    """The approval policy file cannot be used."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalTier(_Frozen):
    """Postings of at most ``up_to`` (no bound: everything above the previous tier) need ``roles``."""

    up_to: Amount | None = None
    roles: tuple[str, ...] = ()


class WriteOffTolerance(_Frozen):
    """A write-off within both limits is automatic."""

    tolerance_amount: Amount = Field(ge=0)
    tolerance_share: Amount = Field(ge=0, le=1)

    def covers(self, amount: Decimal, invoice_total: Decimal) -> bool:
        return amount <= self.tolerance_amount and amount <= self.tolerance_share * invoice_total


class ApprovalPolicy(_Frozen):
    """The whole policy: tiers for every kind of posting, the write-off tolerance, the preparer."""

    version: str
    preparer: str = Field(min_length=1)
    write_off: WriteOffTolerance
    kinds: dict[ResolutionKind, tuple[ApprovalTier, ...]]

    @model_validator(mode="after")
    def _tiers_are_complete(self) -> Self:
        missing = sorted(kind.value for kind in ResolutionKind if kind not in self.kinds)
        if missing:
            raise ValueError(f"no tiers for {', '.join(missing)}")
        for kind, tiers in self.kinds.items():
            if not tiers or tiers[-1].up_to is not None:
                raise ValueError(f"{kind.value}: the last tier must have no up_to (it covers the rest)")
            bounds = [tier.up_to for tier in tiers[:-1]]
            if any(bound is None for bound in bounds):
                raise ValueError(f"{kind.value}: only the last tier may omit up_to")
            if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):  # type: ignore[type-var]
                raise ValueError(f"{kind.value}: up_to must increase from tier to tier")
        return self

    def required_roles(self, kind: ResolutionKind, amount: Decimal) -> tuple[str, ...]:
        """The roles that must approve a posting of ``kind`` and ``amount`` (its size counts)."""
        size = abs(amount)
        for tier in self.kinds[kind]:
            if tier.up_to is None or size <= tier.up_to:
                return tier.roles
        raise AssertionError("the last tier is unbounded")  # guaranteed by the validator


def load_policy(path: Path = DEFAULT_POLICY_PATH) -> ApprovalPolicy:
    """Read and validate the policy file, or raise :class:`PolicyError` saying what is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError(f"approval policy {path}: cannot read it: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"approval policy {path}: not valid TOML: {error}") from error
    try:
        return ApprovalPolicy.model_validate(raw)
    except ValidationError as error:
        raise PolicyError(f"approval policy {path}: {describe_validation_error(error)}") from error
