"""Routing's own view: where each request went, and the state of its SLA clock.

``routes`` keeps each decision as made. ``sla_clocks`` keeps one clock per routed request with
``next_due_at``, the instant its next timer fires (null while the clock stands or when both
timers have fired), so the timer job finds due clocks with one indexed query, and ``revision``,
which every write raises, so a write made on a stale read matches nothing. A request's lifecycle
(:class:`services.routing.lifecycle.RoutedRequest`: its route and its clock) is loaded from its
clock and saved back under that revision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.routing.domain import ClockState, RoutingDecision, SlaClock, SlaTimer
from services.routing.lifecycle import Route, RoutedRequest
from shared.business_time import BusinessCalendar
from shared.contract import Channel, Priority, RequestStatus
from shared.delivery import LedgerTransaction
from shared.events import RequestDetails, RequestValidated
from shared.mongo import Document, batch_documents, find_in, open_batch_documents
from shared.status_order import rank_of

EARLIEST_DUE_AT = datetime(1, 1, 1, tzinfo=UTC)
"""The lower bound of the due-timer query: before any instant a timer can be due."""


@dataclass(frozen=True)
class StoredClock:
    """A clock as read, with what the timer job needs to say who it is about."""

    request_id: str
    clock: SlaClock
    revision: int
    document: Document


class RoutingStore:
    def __init__(self, database: AsyncDatabase[Document], calendar: BusinessCalendar) -> None:
        # Each request as loaded, with the revision of its clock: save writes only over that one.
        self._as_loaded: WeakKeyDictionary[RoutedRequest, StoredClock] = WeakKeyDictionary()
        self._routes = database.routes
        self._clocks = database.sla_clocks
        self._calendar = calendar

    async def ensure_indexes(self) -> None:
        await self._routes.create_index([("queue", 1), ("sla_due_at", 1)])
        await self._clocks.create_index([("next_due_at", ASCENDING)])

    async def record_route(
        self, request_id: str, route: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        document = {**route, "_id": request_id}
        await batch_documents(session).stage(
            self._routes,
            ReplaceOne({"_id": request_id}, document, upsert=True),
            one=request_id,
            becomes=document,
        )

    async def start_clock(
        self, request_id: str, clock: SlaClock, about: Mapping[str, Any], *, session: AsyncClientSession
    ) -> None:
        """Keep a new clock with ``about`` (channel, source, customer, queue…) for its status events."""
        document = {**about, **self._fields(clock), "_id": request_id, "revision": 0}
        await batch_documents(session).stage(
            self._clocks,
            ReplaceOne({"_id": request_id}, document, upsert=True),
            one=request_id,
            becomes=document,
        )

    async def prefetch_validated(self, events: Sequence[RequestValidated], tx: LedgerTransaction) -> None:
        """Nothing to read for a batch of requests to route; their routes and clocks are written
        at its commit, one bulk write per collection (:class:`shared.mongo.BatchDocuments`)."""
        del events  # routing a request reads nothing of the view
        open_batch_documents(tx.session, tx.before_commit)

    async def start(
        self, request: RoutedRequest, decision: RoutingDecision, *, at: datetime, session: AsyncClientSession
    ) -> None:
        """Keep a request just routed: the decision as made, and its clock with its route."""
        route = request.route
        await self.record_route(
            request.request_id,
            {
                "queue": decision.queue,
                "priority": decision.priority.value,
                "sla_due_at": decision.sla_due_at,
                "sla_working_hours": decision.sla_target.total_seconds() / 3600,
                "escalation_target": decision.escalation_target,
                "rule_version": decision.rule_version,
                "customer_id": route.customer_id,
                "routed_at": at,
            },
            session=session,
        )
        about = {
            "channel": route.channel.value,
            "source_id": route.source_id,
            "customer_id": route.customer_id,
            "correlation_id": route.correlation_id,
            "queue": route.queue,
            "escalation_target": route.escalation_target,
            "priority": route.priority.value,
            "rule_version": route.rule_version,
            # What a person's reclassification routes again by the rules (RoutedRequest.reclassify).
            "details": request.details.model_dump(mode="json") if request.details else None,
            "customer_tier": request.customer_tier,
        }
        await self.start_clock(request.request_id, request.clock, about, session=session)

    async def load(self, request_id: str, *, session: AsyncClientSession) -> RoutedRequest | None:
        """The routed request with its clock as it stands (None: routing never routed it)."""
        stored = (await self.clocks([request_id], session=session)).get(request_id)
        if stored is None:
            return None
        about = stored.document
        request = RoutedRequest(
            request_id=request_id,
            route=Route(
                channel=Channel(about["channel"]),
                source_id=about["source_id"],
                customer_id=about["customer_id"],
                correlation_id=about.get("correlation_id", ""),
                queue=about["queue"],
                escalation_target=about["escalation_target"],
                priority=Priority(about["priority"]),
                rule_version=about.get("rule_version", ""),
            ),
            clock=stored.clock,
            details=RequestDetails.model_validate(about["details"]) if about.get("details") else None,
            customer_tier=about.get("customer_tier"),
        )
        self._as_loaded[request] = stored
        return request

    async def save(self, request: RoutedRequest, *, session: AsyncClientSession) -> bool:
        """Write the request's clock if it changed, over the revision loaded; whether it was written.

        Not written: another replica wrote the clock since it was loaded (its timers fired there).
        """
        stored = self._as_loaded[request]
        if request.clock == stored.clock:
            return True
        return await self.save_clocks([(stored, request.clock)], session=session) == 1

    async def save_moved(self, request: RoutedRequest, *, at: datetime, session: AsyncClientSession) -> None:
        """Write a request a person re-routed or reclassified: its new route, details and clock.

        By ``_id`` alone (the index the local server reads; with the revision beside it, it reads
        none): the request was loaded in this transaction, so a writer that changed it since
        conflicts with this write and the transaction is tried again. The revision is raised, so
        a timer or a status batch that read the clock before writes nothing over it.
        """
        route = request.route
        moved = {
            "queue": route.queue,
            "escalation_target": route.escalation_target,
            "priority": route.priority.value,
            "rule_version": route.rule_version,
            "details": request.details.model_dump(mode="json") if request.details else None,
        }
        result = await self._clocks.update_one(
            {"_id": request.request_id},
            {"$set": {**moved, **self._fields(request.clock)}, "$inc": {"revision": 1}},
            session=session,
        )
        if result.matched_count != 1:
            raise RuntimeError(f"the SLA clock of {request.request_id} is gone")
        due_at = request.clock.due_at(self._calendar, SlaTimer.BREACH)
        await self._routes.update_one(
            {"_id": request.request_id},
            {
                "$set": {
                    "queue": route.queue,
                    "priority": route.priority.value,
                    "sla_due_at": due_at,
                    "sla_working_hours": request.clock.target.total_seconds() / 3600,
                    "escalation_target": route.escalation_target,
                    "rule_version": route.rule_version,
                    "rerouted_at": at,
                }
            },
            session=session,
        )

    async def due_clocks(self, now: datetime, *, limit: int = 200) -> list[str]:
        """Requests with a timer due at ``now`` (read outside any transaction: a hint, re-read later)."""
        # Bounded below as well: with ``$lte`` alone the local server scans the index from its
        # start, through the null of every clock that stands (resolved, closed: nearly all of
        # them), and reads each of those documents. At 10,000 stood clocks that cost 0.3 to 0.4 s
        # of its CPU on every check (every 5 s), growing with every request ever routed; bounded,
        # about 1 ms. MongoDB brackets the range by type and reads no null either way.
        due = {"$gte": EARLIEST_DUE_AT, "$lte": now}
        cursor = self._clocks.find({"next_due_at": due}, {"_id": 1}).sort("next_due_at", 1)
        return [str(found["_id"]) async for found in cursor.limit(limit)]

    async def clocks(
        self, request_ids: Iterable[str], *, session: AsyncClientSession | None
    ) -> dict[str, StoredClock]:
        """The clocks of these requests (one ``$in`` query per 50 of them), by request id."""
        found = find_in(self._clocks, "_id", sorted(set(request_ids)), session=session)
        return {
            str(document["_id"]): StoredClock(
                str(document["_id"]), _clock_of(document), document["revision"], document
            )
            async for document in found
        }

    async def save_clocks(
        self, changed: Iterable[tuple[StoredClock, SlaClock]], *, session: AsyncClientSession
    ) -> int:
        """Write new states in one statement; return how many were written.

        By ``_id`` alone (the local server's planner reads no index for ``_id`` beside another
        field, so ``revision`` in the filter made every write scan the clocks). A state computed
        from a stale read is still never written over a newer one: the clocks are read in the
        same transaction, and a write to a document another transaction changed since this one
        began fails with a write conflict (code 112) before anything commits, and is tried again.
        ``revision`` is still raised by every write.
        """
        writes = [
            UpdateOne({"_id": stored.request_id}, {"$set": self._fields(clock), "$inc": {"revision": 1}})
            for stored, clock in changed
        ]
        if not writes:
            return 0
        result = await self._clocks.bulk_write(writes, ordered=False, session=session)
        return result.matched_count

    def _fields(self, clock: SlaClock) -> Document:
        return {
            "target_us": _micros(clock.target),
            "warning_after_us": _micros(clock.warning_after),
            "consumed_us": _micros(clock.consumed),
            "routed_at": clock.routed_at,
            "running_since": clock.running_since,
            "halted_at": clock.halted_at,
            "state": clock.state.value,
            "warning_fired": clock.warning_fired,
            "breach_fired": clock.breach_fired,
            "warning_due_at": clock.due_at(self._calendar, SlaTimer.WARNING),
            "breach_due_at": clock.due_at(self._calendar, SlaTimer.BREACH),
            "next_due_at": clock.next_due_at(self._calendar),
            "last_status_at": clock.last_status_at,
            "last_status_rank": clock.last_status_rank,
        }


def _clock_of(document: Document) -> SlaClock:
    return SlaClock(
        target=timedelta(microseconds=document["target_us"]),
        warning_after=timedelta(microseconds=document["warning_after_us"]),
        routed_at=document["routed_at"],
        consumed=timedelta(microseconds=document["consumed_us"]),
        running_since=document["running_since"],
        halted_at=document["halted_at"],
        state=ClockState(document["state"]),
        warning_fired=document["warning_fired"],
        breach_fired=document["breach_fired"],
        # Clocks stored before statuses were ordered: nothing applied since routing.
        last_status_at=document.get("last_status_at"),
        last_status_rank=document.get("last_status_rank", rank_of(RequestStatus.ROUTED)),
    )


def _micros(duration: timedelta) -> int:
    return duration // timedelta(microseconds=1)
