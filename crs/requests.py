"""Finding requests: `crs requests` lists them by customer, status, queue, type, age or source,
and every command that takes a request id also takes the case id or Message-ID it came from.

All of it is read from audit's entries through audit's read API (audit records every record of
every request topic), folded per request the way `crs stats` folds them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from crs.stats import STATS_TOPICS, RequestFacts, gather
from crs.trace import FLAGS, duration
from services.audit.reader import AuditReader
from shared.contract import RequestStatus

STATUSES = tuple(status.value for status in RequestStatus if status.value not in FLAGS)
"""The statuses a request can be in (the SLA flags mark a request without moving it)."""


class RequestRow(BaseModel):
    """One request as `crs requests` lists it."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    status: str | None
    flags: list[str]
    customer_id: str | None
    request_type: str | None
    queue: str | None
    channel: str | None
    source_id: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class RequestFilter:
    """What `crs requests` was asked for; a field left as None lets everything through."""

    customer: str | None = None
    """A customer id, or an email sender's address."""
    statuses: frozenset[str] | None = None
    queue: str | None = None
    request_type: str | None = None
    source: str | None = None
    """A case id or Message-ID (with or without its angle brackets)."""
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    open_only: bool = False

    def admits(self, facts: RequestFacts, *, now: datetime) -> bool:
        """Whether a request passes every filter."""
        age = None if facts.created_at is None else now - facts.created_at
        checks = (
            self.customer is None
            or self.customer == facts.customer_id
            or self.customer.lower() == (facts.sender or ""),
            self.statuses is None or (facts.status or "") in self.statuses,
            self.queue is None or self.queue == facts.queue,
            self.request_type is None or self.request_type == facts.request_type,
            self.source is None or _same_source(self.source, facts.source_id),
            self.older_than is None or (age is not None and age >= self.older_than),
            self.newer_than is None or (age is not None and age <= self.newer_than),
            not self.open_only or facts.is_open,
        )
        return all(checks)


def _same_source(wanted: str, source_id: str | None) -> bool:
    return source_id is not None and wanted.strip().strip("<>") == source_id.strip().strip("<>")


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """An age as people type it: ``90s``, ``15m``, ``2h``, ``3d``, ``1w``."""
    found = _AGE.match(text.lower())
    if found is None:
        raise ValueError(f"{text!r} is not an age: write a number and a unit, e.g. 90s, 15m, 2h, 3d, 1w")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def rows(requests: Mapping[str, RequestFacts], wanted: RequestFilter, *, now: datetime) -> list[RequestRow]:
    """The requests that pass ``wanted``, newest first."""
    chosen = [facts for facts in requests.values() if wanted.admits(facts, now=now)]
    chosen.sort(key=lambda facts: facts.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [
        RequestRow(
            request_id=facts.request_id,
            status=facts.status,
            flags=sorted(facts.flags),
            customer_id=facts.customer_id,
            request_type=facts.request_type,
            queue=facts.queue,
            channel=facts.channel,
            source_id=facts.source_id,
            created_at=facts.created_at,
        )
        for facts in chosen
    ]


async def load_requests(reader: AuditReader) -> dict[str, RequestFacts]:
    """Every request audit has recorded, folded into its facts."""
    return gather([entry async for entry in reader.entries_on(STATS_TOPICS)])


async def request_facts(reader: AuditReader, request_id: str) -> RequestFacts | None:
    """One request's facts (latest status, queue, ...), or None if audit has nothing of it."""
    entries = await reader.entries_of(request_id)
    return gather(entries).get(request_id) if entries else None


async def resolve_request_id(reader: AuditReader, given: str) -> str | None:
    """The request id meant by ``given``: a request id, a CRM case id or an email Message-ID.

    None when audit knows no request by that name.
    """
    given = given.strip()
    if await reader.knows(given):
        return given
    return await reader.request_of_source(given)


async def wait_for_status(
    reader: AuditReader, request_id: str, wanted: str, *, timeout: float
) -> RequestFacts | None:
    """The request's facts once its latest status is ``wanted``, or as they are after ``timeout``.

    Audit records a status a moment after it is published: a command that just saw a status in
    `crs watch` may be a little ahead of it.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        facts = await request_facts(reader, request_id)
        if (facts is not None and facts.status == wanted) or asyncio.get_running_loop().time() >= deadline:
            return facts
        await asyncio.sleep(0.5)


def age(created_at: datetime | None, *, now: datetime) -> str:
    """How long ago, as people read it."""
    return "-" if created_at is None else duration((now - created_at).total_seconds() * 1000)


def table_rows(found: Iterable[RequestRow], *, now: datetime) -> list[tuple[str, ...]]:
    """The listing's cells: request, status (and flags), customer, type, queue, age, source."""
    return [
        (
            row.request_id,
            (row.status or "-") + (f" ({', '.join(row.flags)})" if row.flags else ""),
            row.customer_id or "-",
            row.request_type or "-",
            row.queue or "-",
            age(row.created_at, now=now),
            f"{row.channel or '-'}:{row.source_id or '-'}",
        )
        for row in found
    ]


TABLE_HEADER = ("request", "status", "customer", "type", "queue", "age", "source")
