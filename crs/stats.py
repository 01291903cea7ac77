"""`crs stats`: the backlog, ageing, SLAs, resolution times, money and who disputes most, from
audit's entries (the system's complete history), for operations and finance.

Times are the Kafka timestamps audit keeps (``published_at``): a request is created when its first
record was published (the gateway's message, else intake's capture) and resolved at its first
``resolved`` or ``closed`` status. Money stays Decimal and is summed per currency.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict

from crs.trace import FINISHED, FLAGS, duration
from services.audit.reader import AuditReader
from shared.topics import (
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    ERP_RESOLUTIONS,
    REQUEST_CAPTURED,
    REQUEST_ROUTED,
    REQUEST_SET_ASIDE,
    REQUEST_STATUS,
    REQUEST_VALIDATED,
)

STATS_TOPICS = (
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    REQUEST_CAPTURED,
    REQUEST_VALIDATED,
    REQUEST_SET_ASIDE,
    REQUEST_ROUTED,
    REQUEST_STATUS,
    ERP_RESOLUTIONS,
)
CREDITING_KINDS = frozenset({"credit_memo", "invoice_correction"})
RESOLVED = frozenset({"resolved", "closed"})
"""Done from the customer's side: time to resolution stops at the first of these."""
AGEING_BUCKETS = (("<1d", timedelta(days=1)), ("1-3d", timedelta(days=3)), ("3-7d", timedelta(days=7)))
OLDEST_BUCKET = ">7d"


@dataclass
class RequestFacts:
    """What stats needs of one request, gathered from its entries."""

    request_id: str
    created_at: datetime | None = None
    resolved_at: datetime | None = None
    status: str | None = None
    flags: set[str] = field(default_factory=set)
    queue: str | None = None
    sla_due_at: datetime | None = None
    customer_id: str | None = None
    request_type: str | None = None
    disputed: tuple[str, Decimal] | None = None
    credited: dict[str, tuple[str, Decimal]] = field(default_factory=dict)
    """resolution id -> (currency, amount): a resolution published twice counts once."""
    reasons: set[str] = field(default_factory=set)
    source_id: str | None = None
    """The case id or Message-ID the request came from."""
    channel: str | None = None
    sender: str | None = None
    """An email's sender address (lower-cased), for requests that came by email."""

    @property
    def is_open(self) -> bool:
        return self.status not in FINISHED | RESOLVED


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)
    amount: Decimal
    currency: str


class CustomerFigures(BaseModel):
    model_config = ConfigDict(frozen=True)
    customer_id: str
    requests: int
    disputes: int
    open: int
    disputed: list[Money]
    credited: list[Money]


class Stats(BaseModel):
    """Everything `crs stats` reports."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    requests: int
    open: int
    backlog_by_status: dict[str, int]
    backlog_by_queue: dict[str, int]
    flagged_open: dict[str, int]
    """Open requests with an SLA warning, an SLA breach or an escalation (from routing's timers)."""
    ageing: dict[str, int]
    sla_met: int
    sla_breached: int
    sla_open_within: int
    resolved: int
    median_resolution_seconds: float | None
    p90_resolution_seconds: float | None
    disputed_open: list[Money]
    disputed_total: list[Money]
    credited: list[Money]
    by_type: dict[str, int]
    top_reasons: dict[str, int]
    top_customers: list[CustomerFigures]


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def _money(value: Any) -> tuple[str, Decimal] | None:
    if not isinstance(value, dict):
        return None
    try:
        amount = Decimal(str(value.get("amount")))
    except InvalidOperation:
        return None
    currency = value.get("currency")
    return (str(currency), amount) if amount.is_finite() and currency else None


def _message(entry: Mapping[str, Any]) -> dict[str, Any]:
    try:
        found = json.loads(entry.get("text") or "")
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def gather(entries: Iterable[Mapping[str, Any]]) -> dict[str, RequestFacts]:
    """Fold audit entries (in any order) into one RequestFacts per request."""
    ordered = sorted(
        (entry for entry in entries if entry.get("request_id")),
        key=lambda e: (
            _aware(e.get("published_at")) or datetime.min.replace(tzinfo=UTC),
            e.get("sequence") or 0,
        ),
    )
    requests: dict[str, RequestFacts] = {}
    for entry in ordered:
        request_id = str(entry["request_id"])
        facts = requests.setdefault(request_id, RequestFacts(request_id))
        _fold(facts, str(entry.get("topic")), _message(entry), _aware(entry.get("published_at")))
        facts.customer_id = facts.customer_id or entry.get("customer_id")
    return requests


def _fold(facts: RequestFacts, topic: str, message: dict[str, Any], at: datetime | None) -> None:
    if facts.created_at is None and topic in (CRM_REQUESTS, EMAIL_REQUESTS, REQUEST_CAPTURED, REQUEST_STATUS):
        facts.created_at = at
    customer = message.get("customer_id")
    if isinstance(customer, str) and customer:
        facts.customer_id = customer
    details = message.get("details")
    if topic == REQUEST_CAPTURED and isinstance(details, dict):
        # Only what intake captured counts as disputed: a case rejected as invalid_request was
        # never captured, whatever amount its message claimed.
        facts.request_type = details.get("request_type") or facts.request_type
        facts.disputed = _money(details.get("disputed_amount")) or facts.disputed
        facts.customer_id = facts.customer_id or details.get("customer_id")
        facts.source_id = facts.source_id or _text(details.get("source_id"))
        facts.channel = facts.channel or _text(details.get("channel"))
    elif topic == CRM_REQUESTS:
        facts.request_type = facts.request_type or message.get("type")
        facts.source_id = facts.source_id or _text(message.get("case_id"))
        facts.channel = facts.channel or _text(message.get("channel")) or "crm"
    elif topic == EMAIL_REQUESTS:
        facts.source_id = facts.source_id or _text(message.get("message_id"))
        facts.channel = "email"
        facts.sender = facts.sender or sender_address(message.get("from"))
    elif topic == REQUEST_ROUTED:
        facts.queue = message.get("queue") or facts.queue
        facts.sla_due_at = _aware(message.get("sla_due_at")) or facts.sla_due_at
    elif topic == ERP_RESOLUTIONS:
        amount = _money(message.get("amount"))
        if message.get("kind") in CREDITING_KINDS and amount is not None:
            facts.credited[str(message.get("resolution_id"))] = amount
        if message.get("reason_code"):
            facts.reasons.add(str(message["reason_code"]))
    elif topic == REQUEST_STATUS:
        _fold_status(facts, message, at)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def sender_address(value: Any) -> str | None:
    """The address of an email's ``From`` (``"Jane <jane@acme.example>"``), lower-cased."""
    if not isinstance(value, str):
        return None
    address = email.utils.parseaddr(value)[1]
    return address.lower() or None


def _fold_status(facts: RequestFacts, message: dict[str, Any], at: datetime | None) -> None:
    status = message.get("status")
    if not isinstance(status, str):
        return
    facts.source_id = facts.source_id or _text(message.get("source_id"))
    facts.channel = facts.channel or _text(message.get("channel"))
    if message.get("reason"):
        facts.reasons.add(str(message["reason"]))
    facts.queue = message.get("queue") or facts.queue
    facts.sla_due_at = _aware(message.get("sla_due_at")) or facts.sla_due_at
    if status in FLAGS:
        facts.flags.add(status)
        return
    facts.status = status
    if status in RESOLVED and facts.resolved_at is None:
        facts.resolved_at = at


def _totals(amounts: Iterable[tuple[str, Decimal]]) -> list[Money]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for currency, amount in amounts:
        sums[currency] += amount
    return [Money(amount=sums[currency], currency=currency) for currency in sorted(sums)]


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of them at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def _bucket(age: timedelta) -> str:
    for name, limit in AGEING_BUCKETS:
        if age < limit:
            return name
    return OLDEST_BUCKET


def compute_stats(requests: Mapping[str, RequestFacts], *, now: datetime, top: int = 10) -> Stats:
    """The figures of `crs stats` from the requests' facts."""
    open_requests = [facts for facts in requests.values() if facts.is_open]
    ageing = dict.fromkeys([name for name, _ in AGEING_BUCKETS] + [OLDEST_BUCKET], 0)
    for facts in open_requests:
        ageing[_bucket(now - (facts.created_at or now))] += 1
    met = breached = within = 0
    for facts in requests.values():
        if facts.sla_due_at is None:
            continue
        if "sla_breached" in facts.flags:
            breached += 1
        elif facts.resolved_at is not None:
            if facts.resolved_at <= facts.sla_due_at:
                met += 1
            else:
                breached += 1
        elif facts.is_open:
            if now > facts.sla_due_at:
                breached += 1
            else:
                within += 1
    durations = [
        (facts.resolved_at - facts.created_at).total_seconds()
        for facts in requests.values()
        if facts.resolved_at is not None and facts.created_at is not None
    ]
    reasons: Counter[str] = Counter(reason for facts in requests.values() for reason in facts.reasons)
    return Stats(
        at=now,
        requests=len(requests),
        open=len(open_requests),
        backlog_by_status=dict(Counter(facts.status or "unknown" for facts in open_requests).most_common()),
        backlog_by_queue=dict(
            Counter(facts.queue or "(not routed)" for facts in open_requests).most_common()
        ),
        flagged_open={
            flag: sum(1 for facts in open_requests if flag in facts.flags) for flag in sorted(FLAGS)
        },
        ageing=ageing,
        sla_met=met,
        sla_breached=breached,
        sla_open_within=within,
        resolved=len(durations),
        median_resolution_seconds=percentile(durations, 0.5),
        p90_resolution_seconds=percentile(durations, 0.9),
        disputed_open=_totals(facts.disputed for facts in open_requests if facts.disputed),
        disputed_total=_totals(facts.disputed for facts in requests.values() if facts.disputed),
        credited=_totals(amount for facts in requests.values() for amount in facts.credited.values()),
        by_type=dict(
            Counter(facts.request_type or "unclassified" for facts in requests.values()).most_common()
        ),
        top_reasons=dict(reasons.most_common(top)),
        top_customers=_top_customers(requests.values(), top),
    )


def _top_customers(requests: Iterable[RequestFacts], top: int) -> list[CustomerFigures]:
    by_customer: dict[str, list[RequestFacts]] = defaultdict(list)
    for facts in requests:
        if facts.customer_id:
            by_customer[facts.customer_id].append(facts)

    def figures(customer_id: str, theirs: list[RequestFacts]) -> CustomerFigures:
        return CustomerFigures(
            customer_id=customer_id,
            requests=len(theirs),
            disputes=sum(1 for facts in theirs if facts.request_type == "billing_dispute" or facts.disputed),
            open=sum(1 for facts in theirs if facts.is_open),
            disputed=_totals(facts.disputed for facts in theirs if facts.disputed),
            credited=_totals(amount for facts in theirs for amount in facts.credited.values()),
        )

    ranked = sorted(
        (figures(customer_id, theirs) for customer_id, theirs in by_customer.items()),
        key=lambda row: (-row.disputes, -row.requests, row.customer_id),
    )
    return ranked[:top]


def _amounts(values: list[Money]) -> str:
    return ", ".join(f"{money.amount:,} {money.currency}" for money in values) or "0"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return [
        indent
        + "  ".join(
            cell.rjust(width) if column else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]


def _seconds(value: float | None) -> str:
    return duration(None if value is None else value * 1000)


def format_stats(stats: Stats) -> str:
    """The figures as plain aligned tables."""
    at = stats.at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    lines = [f"Customer requests at {at}: {stats.requests} in total, {stats.open} open", ""]
    lines.append("backlog by status")
    lines += _table(("status", "open"), [(k, str(v)) for k, v in stats.backlog_by_status.items()])
    lines += ["", "backlog by queue"]
    lines += _table(("queue", "open"), [(k, str(v)) for k, v in stats.backlog_by_queue.items()])
    lines += ["", "ageing of open requests"]
    lines += _table(("age", "open"), [(k, str(v)) for k, v in stats.ageing.items()])
    lines += [
        "",
        f"SLA: {stats.sla_met} met, {stats.sla_breached} breached, "
        f"{stats.sla_open_within} open within their SLA; open flagged: "
        + ", ".join(f"{count} {flag}" for flag, count in stats.flagged_open.items()),
        f"time to resolution ({stats.resolved} resolved): "
        f"median {_seconds(stats.median_resolution_seconds)}, p90 {_seconds(stats.p90_resolution_seconds)}",
        "",
        f"amount under dispute (open): {_amounts(stats.disputed_open)}",
        f"amount disputed (all):       {_amounts(stats.disputed_total)}",
        f"amount credited:             {_amounts(stats.credited)}",
        "",
        "requests by type",
    ]
    lines += _table(("type", "requests"), [(k, str(v)) for k, v in stats.by_type.items()])
    lines += ["", "top reasons"]
    lines += (
        _table(("reason", "requests"), [(k, str(v)) for k, v in stats.top_reasons.items()])
        if (stats.top_reasons)
        else ["  none"]
    )
    lines += ["", "customers who dispute most"]
    lines += _table(
        ("customer", "requests", "disputes", "open", "disputed", "credited"),
        [
            (
                row.customer_id,
                str(row.requests),
                str(row.disputes),
                str(row.open),
                _amounts(row.disputed),
                _amounts(row.credited),
            )
            for row in stats.top_customers
        ],
    )
    return "\n".join(lines)


async def load_stats(reader: AuditReader, *, now: datetime, top: int = 10) -> Stats:
    """The figures over every request in the audit store."""
    entries = [entry async for entry in reader.entries_on(STATS_TOPICS)]
    return compute_stats(gather(entries), now=now, top=top)
