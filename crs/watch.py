"""One readable line per record of the request topics, for `crs watch` and `make run`: what each
record says, which records a watch's filters let through, and a tail of the topics that survives
a broker restart."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from crs.io import BrokerLost, TopicRecord, tail
from shared.contract import RequestStatus, ResolutionKind
from shared.identity import crm_request_id, email_request_id, looks_like_request_id, normalize_message_id
from shared.topics import (
    APPROVALS,
    CONSUMED_TOPICS,
    CRM_REQUESTS,
    DLQ_SUFFIX,
    EMAIL_REQUESTS,
    REQUEST_TOPICS,
    dead_letter_topic,
)

EVENTS: Final = (
    "RequestCaptured",
    "RequestValidated",
    "RequestSetAside",
    "RequestRouted",
    "EmailReplyAdded",
    "CaseUpdated",
)
KNOWN_WHATS: Final = (
    *(status.value for status in RequestStatus),
    "crm:request",
    "email",
    *EVENTS,
    *(f"erp:{kind.value}" for kind in ResolutionKind),
    "erp:posted",
    "erp:failed",
    "approval:approve",
    "approval:reject",
    "dlq",
)
"""Everything `--status` can name: the statuses, and what the other records show in that column."""
WATCHABLE_TOPICS: Final = (*REQUEST_TOPICS, *(dead_letter_topic(topic) for topic in CONSUMED_TOPICS))

_COLOURS = {
    "received": "36",
    "validated": "34",
    "routed": "35",
    "resolved": "32",
    "closed": "32;1",
    "rejected": "31",
    "on_hold": "33",
    "duplicate_of": "90",
    "awaiting_approval": "33;1",
    "approved": "36;1",
    "sla_warning": "33;7",
    "sla_breached": "31;7",
    "escalated": "35;7",
    "dlq": "31;1",
}


def _money(value: Any) -> str:
    if isinstance(value, dict) and "amount" in value:
        return f"{value['amount']} {value.get('currency', '')}".strip()
    return "-"


def _shown(value: Any) -> str:
    """A value as shown in a line: ``-`` where it is absent (never ``None``)."""
    return "-" if value is None or value == "" else str(value)


def _request_of(topic: str, value: dict[str, Any]) -> str | None:
    """The request a record belongs to: a CRM case or an email shows under our request id."""
    source = value.get("case_id") if topic == CRM_REQUESTS else value.get("message_id")
    if topic in (CRM_REQUESTS, EMAIL_REQUESTS):
        if not isinstance(source, str) or not normalize_message_id(source):
            return None
        return crm_request_id(source.strip()) if topic == CRM_REQUESTS else email_request_id(source)
    found = value.get("request_id")
    return found if isinstance(found, str) and found else None


def dead_letter_request_id(record: TopicRecord) -> str:
    """The request a dead letter is about: its key names the case or email on the inbound topics."""
    original = record.headers.get("x-original-topic") or record.topic.removesuffix(DLQ_SUFFIX)
    key = record.headers.get("x-original-key") or record.key or ""
    if not key:
        return "-"
    if original == CRM_REQUESTS:
        return crm_request_id(key)
    if original == EMAIL_REQUESTS:
        return email_request_id(key)
    return key


def describe(record: TopicRecord) -> tuple[str, str, str, str]:
    """(request id, what happened, who, detail) for a record of any request topic."""
    value = record.value if isinstance(record.value, dict) else {}
    if record.topic.endswith(DLQ_SUFFIX):
        return (
            dead_letter_request_id(record),
            "dlq",
            record.headers.get("x-failed-service", "-"),
            f"{record.headers.get('x-error-reason', '?')}: {record.headers.get('x-error', '')[:100]}",
        )
    request_id = _request_of(record.topic, value) or str(record.key)
    if record.topic == "requests.status.v1":
        extra = " ".join(
            part
            for part in (
                f"[{value['reason']}]" if value.get("reason") else "",
                f"queue={value['queue']}" if value.get("queue") else "",
                f"priority={value['priority']}" if value.get("priority") else "",
                f"duplicate_of={value['duplicate_of']}" if value.get("duplicate_of") else "",
            )
            if part
        )
        return (
            request_id,
            _shown(value.get("status")),
            str(value.get("customer_id") or "-"),
            (f"{value.get('message', '')} {extra}".strip()),
        )
    if record.topic == "erp.resolutions.v1":
        return (
            request_id,
            f"erp:{value.get('kind')}",
            str(value.get("customer_id") or "-"),
            (
                f"{_money(value.get('amount'))} on "
                f"{_shown(value.get('invoice_id') or value.get('payment_id'))} "
                f"({_shown(value.get('resolution_id'))})"
            ),
        )
    if record.topic == "erp.acks.v1":
        return (
            request_id,
            f"erp:{value.get('status')}",
            "-",
            _shown(value.get("erp_document_id") or value.get("error")),
        )
    if record.topic == APPROVALS:
        return (
            request_id,
            f"approval:{value.get('decision')}",
            _shown(value.get("approver")),
            f"role={_shown(value.get('role'))}" + (f" {value['comment']}" if value.get("comment") else ""),
        )
    if record.topic == "crm.requests.v1":
        return (
            request_id,
            "crm:request",
            str(value.get("customer_id") or "-"),
            (f"{value.get('type') or 'unclassified'}: {value.get('subject', '')}"),
        )
    if record.topic == "email.requests.v1":
        return request_id, "email", _shown(value.get("from")), _shown(value.get("subject"))
    event = str(value.get("event_type") or record.topic)
    found = value.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    what = " ".join(
        part
        for part in (
            str(details.get("request_type") or "unclassified"),
            f"{value['verdict']}[{value.get('reason')}]" if value.get("verdict") else "",
            f"waiting_for={','.join(value['waiting_for'])}" if value.get("waiting_for") else "",
            f"queue={value['queue']}" if value.get("queue") else "",
            f"sla_due_at={value['sla_due_at']}" if value.get("sla_due_at") else "",
        )
        if part
    )
    return request_id, event, str(value.get("customer_id") or details.get("customer_id") or "-"), what


@dataclass
class WatchFilter:
    """`crs watch`'s filters (each one left out lets everything through).

    ``request`` is a request id, or the case id or Message-ID it came from. ``customer`` is a
    customer id or an email sender's address; once a record ties a request to the customer, the
    request's later records show too (a status of an email's request names the customer id, not
    the address). ``statuses`` are statuses or events (``rejected``, ``dlq``, ``erp:posted``).
    """

    request: str | None = None
    customer: str | None = None
    statuses: frozenset[str] | None = None
    _requests_of_customer: set[str] = field(default_factory=set)

    def admits(self, record: TopicRecord) -> bool:
        """Whether a record passes every filter (and remember what it ties together)."""
        request_id, what, _, _ = describe(record)
        if self.request and not self._is_request(request_id, record):
            return False
        if self.customer and not self._is_customers(request_id, record):
            return False
        return not self.statuses or what in self.statuses

    def _is_request(self, request_id: str, record: TopicRecord) -> bool:
        assert self.request is not None
        wanted = self.request.strip()
        if request_id == wanted:
            return True
        if looks_like_request_id(wanted):
            return False
        value = record.value if isinstance(record.value, dict) else {}
        sources = {
            value.get("source_id"),
            value.get("correlation_id"),
            value.get("case_id"),
            value.get("message_id"),
        }
        return request_id in (crm_request_id(wanted), email_request_id(wanted)) or bool(
            {wanted, normalize_message_id(wanted)}
            & {normalize_message_id(s) for s in sources if isinstance(s, str)}
        )

    def _is_customers(self, request_id: str, record: TopicRecord) -> bool:
        assert self.customer is not None
        wanted = self.customer.strip().lower()
        value = record.value if isinstance(record.value, dict) else {}
        details = value.get("details") if isinstance(value.get("details"), dict) else {}
        named = {str(n).lower() for n in (value.get("customer_id"), (details or {}).get("customer_id")) if n}
        sender = email.utils.parseaddr(str(value.get("from") or ""))[1].lower()
        if wanted in named or (sender and wanted == sender):
            self._requests_of_customer.add(request_id)
            return True
        if request_id not in self._requests_of_customer:
            return False
        # An address follows its emails' requests whatever customer validation matched them to;
        # a customer id follows its requests' records that name nobody else (an ERP ack).
        return "@" in wanted or (not named and not sender)


def matches(
    record: TopicRecord,
    *,
    request: str | None = None,
    customer: str | None = None,
    status: str | None = None,
) -> bool:
    """Whether one record passes `crs watch`'s filters, on its own (see :class:`WatchFilter`)."""
    statuses = frozenset(part.strip() for part in status.split(",") if part.strip()) if status else None
    return WatchFilter(request=request, customer=customer, statuses=statuses).admits(record)


def check_statuses(statuses: frozenset[str], *, dlq: bool) -> str | None:
    """Why ``--status`` cannot match anything, or None if it can."""
    unknown = sorted(statuses - set(KNOWN_WHATS))
    if unknown:
        return f"--status {','.join(unknown)}: never shown; one of {', '.join(KNOWN_WHATS)}"
    if "dlq" in statuses and not dlq:
        return "--status dlq matches dead letters only, which are watched with --dlq: add --dlq"
    return None


def check_topics(topics: Sequence[str]) -> str | None:
    """Why ``--topic`` cannot be watched, or None if it can."""
    unknown = sorted(set(topics) - set(WATCHABLE_TOPICS))
    if unknown:
        return (
            f"--topic {','.join(unknown)}: not a request or dead-letter topic; "
            f"one of {', '.join(WATCHABLE_TOPICS)}"
        )
    return None


def format_line(record: TopicRecord, *, colour: bool) -> str:
    """The watch line of a record: time, request, what, who, detail."""
    request_id, what, who, detail = describe(record)
    at = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).strftime("%H:%M:%S")
    shown = f"{what:<18}"
    if colour:
        code = _COLOURS.get(what) or _COLOURS.get(what.split(":")[0])
        if code:
            shown = f"\x1b[{code}m{shown}\x1b[0m"
    return f"{at} {request_id:<24} {shown} {who:<14} {detail}"


# --------------------------------------------------------------------------------------------
# A tail that survives the broker going away (a restart of the local stack drops every topic).

CHECK_AFTER_IDLE_SECONDS: Final = 3.0


async def follow(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    from_beginning: bool,
    broker_answers: Callable[[], Any],
    notice: Callable[[str], None],
    retry_seconds: float = 1.0,
) -> AsyncGenerator[TopicRecord, None]:
    """The records of ``topics`` as they arrive, across broker outages and restarts.

    When no record has come for a few seconds, the broker is asked (``broker_answers``) whether it
    is still there, and the tail's positions are checked against the topics' ends: a broker that
    stopped answering, or topics that are shorter than what was read (a restarted local broker
    starts empty), end this tail; one line says so, and a new tail starts once the broker answers
    and the topics exist, from their beginning (a restarted broker's records are all new).
    """
    start_from_beginning = from_beginning
    while True:
        try:
            async with contextlib.aclosing(
                tail(
                    bootstrap_servers,
                    topics,
                    from_beginning=start_from_beginning,
                    check_after_idle=CHECK_AFTER_IDLE_SECONDS,
                )
            ) as records:
                async for record in records:
                    yield record
            return
        except BrokerLost as lost:
            notice(f"crs watch: lost the broker at {bootstrap_servers} ({lost}); waiting for it to come back")
        # Wait until it answers and has the topics again; quietly, one line when it is back.
        while not await broker_answers():  # noqa: ASYNC110 - polling a server, not waiting for a task
            await asyncio.sleep(retry_seconds)
        notice(
            f"crs watch: the broker at {bootstrap_servers} answers again; "
            "watching from the start of its topics"
        )
        start_from_beginning = True
