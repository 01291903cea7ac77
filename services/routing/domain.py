"""Routing's rules: which team, how urgent, due when. Pure functions, no I/O.

This is the first, built-in rule set; a versioned rules file and SLAs in business time replace it
later. ``RULE_VERSION`` is stored on every routed request so a decision can be traced to its rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from shared.contract import Priority, RequestType
from shared.events import RequestDetails

RULE_VERSION = "builtin-2026.11.1"

QUEUE_BY_TYPE: dict[RequestType | None, str] = {
    RequestType.BILLING_DISPUTE: "accounts_receivable",
    RequestType.INVOICE_CORRECTION: "accounts_receivable",
    RequestType.PAYMENT_QUERY: "cash_application",
    RequestType.CREDIT_LIMIT_CHANGE: "credit_control",
    RequestType.WRITE_OFF: "collections",
    RequestType.REFUND: "collections",
    RequestType.ACCOUNT_UPDATE: "master_data",
    RequestType.CONTRACT_QUERY: "customer_service",
    RequestType.SERVICE_REQUEST: "customer_service",
    None: "customer_service",
}

SLA_BY_PRIORITY: dict[Priority, timedelta] = {
    Priority.URGENT: timedelta(hours=4),
    Priority.HIGH: timedelta(hours=24),
    Priority.NORMAL: timedelta(hours=72),
    Priority.LOW: timedelta(hours=120),
}

_ORDER = [Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT]


@dataclass(frozen=True)
class RoutingDecision:
    queue: str
    priority: Priority
    sla_due_at: datetime
    rule_version: str = RULE_VERSION


def amount_at_stake(details: RequestDetails) -> Decimal:
    """The money a request is about: disputed amount, else requested credit limit, else zero."""
    for money in (details.disputed_amount, details.requested_credit_limit):
        if money is not None:
            return abs(money.amount)
    return Decimal(0)


def decide_route(details: RequestDetails, *, customer_tier: str, now: datetime) -> RoutingDecision:
    """Queue by type; priority from amount and tier, raised (never lowered) by the agent's hint."""
    queue = QUEUE_BY_TYPE.get(details.request_type, "customer_service")
    amount = amount_at_stake(details)
    if amount >= Decimal(100_000):
        priority = Priority.URGENT
    elif amount >= Decimal(10_000) or customer_tier == "strategic":
        priority = Priority.HIGH
    elif amount > 0 or customer_tier == "key":
        priority = Priority.NORMAL
    else:
        priority = Priority.LOW
    if details.priority_hint is not None and _ORDER.index(details.priority_hint) > _ORDER.index(priority):
        priority = details.priority_hint
    return RoutingDecision(queue=queue, priority=priority, sla_due_at=now + SLA_BY_PRIORITY[priority])
