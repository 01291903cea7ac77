"""The routing rules file: read, checked completely, and turned into frozen models.

The rules live in a versioned TOML file (``services/routing/rules.toml`` by default), not in
code, so operations can change queues, the priority matrix, SLA targets and the calendar with a
reviewed commit. :func:`load_rules` refuses a bad file with :class:`RoutingRulesError`, naming the
file and every problem, so the service never starts on rules it would misapply.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from shared.business_time import BusinessCalendar, CalendarRules
from shared.contract import Priority, RequestType

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.toml")

UNCLASSIFIED = "unclassified"
"""The key in ``[types]`` for a request whose type nobody could tell."""

CUSTOMER_TIERS = ("strategic", "key", "standard")

PRIORITY_ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT)

Name = Annotated[str, StringConstraints(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")]


class RoutingRulesError(ValueError):
    """The rules file cannot be used; the message names the file and what is wrong."""


class HintPolicy(StrEnum):
    """What the agent's priority hint may do to the priority the matrix gives."""

    RAISE_ONLY = "raise_only"
    OVERRIDE = "override"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QueueRule(_Frozen):
    """One team's queue and where its requests go when their SLA is breached."""

    description: str = ""
    escalation_target: Name


class PriorityMatrix(_Frozen):
    """The floors that decide a priority, and what the agent's hint may do to it."""

    hint: HintPolicy = HintPolicy.RAISE_ONLY
    unknown_currency: Priority = Field(
        description="What an amount in a currency without thresholds counts as"
    )
    amount: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")], dict[Priority, Decimal]]
    tier: dict[str, Priority]
    type: dict[RequestType, Priority] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete_and_rising(self) -> PriorityMatrix:
        missing_tiers = [tier for tier in CUSTOMER_TIERS if tier not in self.tier]
        if missing_tiers:
            raise ValueError(f"[priority.tier] has no priority for tier(s) {', '.join(missing_tiers)}")
        for currency, thresholds in self.amount.items():
            ordered = [
                (priority, thresholds[priority]) for priority in PRIORITY_ORDER if priority in thresholds
            ]
            if any(amount <= 0 for _, amount in ordered):
                raise ValueError(f"[priority.amount.{currency}] thresholds must be more than zero")
            for (lower, lower_amount), (higher, higher_amount) in pairwise(ordered):
                if higher_amount <= lower_amount:
                    raise ValueError(
                        f"[priority.amount.{currency}] {higher} ({higher_amount}) must be above "
                        f"{lower} ({lower_amount})"
                    )
        return self


class SlaRules(_Frozen):
    """SLA targets per priority, in working hours, and when to warn."""

    warning_at: Decimal = Field(gt=0, lt=1, description="Share of the target after which to warn")
    working_hours: dict[Priority, Decimal]

    @model_validator(mode="after")
    def _every_priority_positive(self) -> SlaRules:
        missing = [priority.value for priority in PRIORITY_ORDER if priority not in self.working_hours]
        if missing:
            raise ValueError(f"[sla.working_hours] has no target for {', '.join(missing)}")
        for priority, hours in self.working_hours.items():
            if hours <= 0:
                raise ValueError(f"[sla.working_hours] {priority} must be more than zero hours")
        return self

    def target(self, priority: Priority) -> timedelta:
        return timedelta(seconds=int(self.working_hours[priority] * 3600))

    def warning_after(self, priority: Priority) -> timedelta:
        return timedelta(seconds=int(self.working_hours[priority] * 3600 * self.warning_at))


class RoutingRules(_Frozen):
    """One version of the routing rules."""

    version: str = Field(min_length=1)
    queues: dict[Name, QueueRule] = Field(min_length=1)
    types: dict[str, Name]
    priority: PriorityMatrix
    sla: SlaRules
    calendar: CalendarRules

    @model_validator(mode="after")
    def _consistent(self) -> RoutingRules:
        known_types = {request_type.value for request_type in RequestType} | {UNCLASSIFIED}
        unknown = sorted(set(self.types) - known_types)
        if unknown:
            raise ValueError(f"[types] names unknown request type(s) {', '.join(unknown)}")
        unmapped = sorted(known_types - set(self.types))
        if unmapped:
            raise ValueError(f"[types] has no queue for {', '.join(unmapped)}")
        undefined = sorted({queue for queue in self.types.values() if queue not in self.queues})
        if undefined:
            raise ValueError(f"[types] sends requests to undefined queue(s) {', '.join(undefined)}")
        return self

    def queue_for(self, request_type: RequestType | None) -> str:
        return self.types[request_type.value if request_type is not None else UNCLASSIFIED]

    def business_calendar(self) -> BusinessCalendar:
        return self.calendar.calendar()


def parse_rules(text: str, *, source: str = "<rules>") -> RoutingRules:
    """Rules from TOML text; ``source`` names the file in errors."""
    try:
        # Decimal, not float: thresholds and shares are exact numbers.
        raw: dict[str, Any] = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as error:
        raise RoutingRulesError(f"routing rules file {source} is not valid TOML: {error}") from error
    try:
        return RoutingRules.model_validate(raw)
    except ValidationError as error:
        raise RoutingRulesError(f"routing rules file {source} is not usable: {_describe(error)}") from error


def load_rules(path: Path = DEFAULT_RULES_FILE) -> RoutingRules:
    """Read and check the rules file at ``path``: the service calls this once, at start."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RoutingRulesError(f"routing rules file {path} cannot be read: {error}") from error
    return parse_rules(text, source=str(path))


def _describe(error: ValidationError) -> str:
    problems = []
    for issue in error.errors(include_url=False, include_input=False):
        where = ".".join(str(step) for step in issue["loc"])
        message = issue["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
