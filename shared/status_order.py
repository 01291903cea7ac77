"""The order of a request's statuses, for consumers that must apply them in the order they happened.

The contract says a request's statuses are published in the order they happened; at-least-once
publishing (a sweeper, a start-up flush) can still deliver an older one late. A consumer applies a
status only if it is newer than the last one it applied for that request: later ``at`` first, and
for the same instant (one transaction often publishes two, e.g. ``resolved`` then ``closed``) the
one further along a request's life. Times are compared at MongoDB's precision (milliseconds), since
the last applied one is read back from the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from shared.contract import RequestStatus

# Along a request's life; the flags (sla_warning, sla_breached, escalated, duplicate_of) are not
# steps of it and are never compared.
LIFECYCLE: tuple[str, ...] = (
    # A reply reopens a closed request and validation checks it again in the same transaction, at
    # the same instant: reopened starts a life again, before what follows it.
    RequestStatus.REOPENED,
    RequestStatus.RECEIVED,
    RequestStatus.ON_HOLD,
    RequestStatus.VALIDATED,
    RequestStatus.ROUTED,
    RequestStatus.AWAITING_APPROVAL,
    RequestStatus.APPROVED,
    RequestStatus.RESOLVED,
    RequestStatus.REJECTED,
    RequestStatus.CLOSED,
)
_RANK = {status: rank for rank, status in enumerate(LIFECYCLE)}


class StatusPosition(NamedTuple):
    """Where a status stands in time: its instant (to the millisecond), then its step of the life."""

    at: datetime
    rank: int


def at_storage_precision(at: datetime) -> datetime:
    """``at`` in UTC, to the millisecond, as MongoDB gives it back."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    aware = aware.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def rank_of(status: str) -> int:
    """The step of a request's life ``status`` is (a status not in :data:`LIFECYCLE`: before all)."""
    return _RANK.get(status, -1)


def position_of(status: str, at: datetime) -> StatusPosition:
    """The position of ``status`` published at ``at``."""
    return StatusPosition(at_storage_precision(at), rank_of(status))
