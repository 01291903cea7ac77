"""Composition root of the routing service: wiring, plus the handlers that call the domain.

Routing a request and firing its SLA timers are transitions of its lifecycle
(:mod:`services.routing.lifecycle`); the statuses of every request are applied to the SLA clocks a
whole batch at a time (two statements per batch of up to 50 requests), since every status of every
request passes here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Protocol
from weakref import WeakKeyDictionary

import structlog
from faststream.asgi import AsgiFastStream
from pymongo.asynchronous.client_session import AsyncClientSession

from services.routing import domain, lifecycle
from services.routing.domain import RoutingDecision, SlaClock
from services.routing.lifecycle import RoutedRequest
from services.routing.rules import RoutingRules, load_rules
from services.routing.settings import RoutingSettings
from services.routing.store import RoutingStore, StoredClock
from shared.actions import ReclassificationRequested, RerouteRequested, WorkspaceActionMessage
from shared.contract import RequestStatusChanged
from shared.delivery import LedgerTransaction, MessageOrigin, idempotent_by_itself
from shared.events import RequestValidated
from shared.lifecycle import TransitionRefused
from shared.messages import emit
from shared.runtime import build_runtime
from shared.settings import InfrastructureSettings
from shared.topics import REQUEST_STATUS, REQUEST_VALIDATED

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class Routes(Protocol):
    """What the handlers need of the store (:class:`RoutingStore`; a fake in unit tests)."""

    async def start(
        self, request: RoutedRequest, decision: RoutingDecision, *, at: datetime, session: AsyncClientSession
    ) -> None: ...

    async def clocks(
        self, request_ids: Iterable[str], *, session: AsyncClientSession | None
    ) -> dict[str, StoredClock]: ...

    async def save_clocks(
        self, changed: Iterable[tuple[StoredClock, SlaClock]], *, session: AsyncClientSession
    ) -> int: ...

    async def due_clocks(self, now: datetime, *, limit: int = ...) -> list[str]: ...

    async def load(self, request_id: str, *, session: AsyncClientSession) -> RoutedRequest | None: ...

    async def save(self, request: RoutedRequest, *, session: AsyncClientSession) -> bool: ...

    async def save_moved(
        self, request: RoutedRequest, *, at: datetime, session: AsyncClientSession
    ) -> None: ...


class RoutingHandlers:
    """Routing a validated request, following its status, firing its SLA timers, and a person's
    re-routing or reclassification."""

    def __init__(
        self,
        store: Routes,
        rules: RoutingRules,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._rules = rules
        self._calendar = rules.business_calendar()
        self._clock = clock
        self._status_changes: WeakKeyDictionary[LedgerTransaction, list[RequestStatusChanged]] = (
            WeakKeyDictionary()
        )

    async def route(self, event: RequestValidated, tx: LedgerTransaction, _: MessageOrigin) -> None:
        now = self._clock()
        decision = domain.decide_route(
            event.details,
            customer_tier=event.customer_tier,
            now=now,
            rules=self._rules,
            calendar=self._calendar,
        )
        request, effects = lifecycle.route(event, decision, now=now)
        await self._store.start(request, decision, at=now, session=tx.session)
        emit(tx, effects)

    # Idempotent by the clock itself: a status not newer than the last one applied (a repeat,
    # or an older one delivered late) changes nothing (SlaClock.after_status). No processed key.
    @idempotent_by_itself
    async def follow_status(
        self, change: RequestStatusChanged, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """Collect a status change; the whole batch's changes are applied just before the commit.

        Every status event of every request passes here, so a batch costs two statements: one
        ``$in`` read of the clocks it concerns (one per 50 requests, ``shared.mongo.IN_CHUNK``) and
        one bulk write of those that changed.
        """
        pending = self._status_changes.get(tx)
        if pending is None:
            pending = self._status_changes[tx] = []
            tx.before_commit(partial(self._apply_status_changes, tx, pending))
        pending.append(change)

    async def _apply_status_changes(self, tx: LedgerTransaction, changes: list[RequestStatusChanged]) -> None:
        stored = await self._store.clocks({change.request_id for change in changes}, session=tx.session)
        updated: dict[str, SlaClock] = {}
        for change in changes:
            if change.request_id not in stored:
                continue  # not routed (yet): before routing there is no SLA
            clock = updated.get(change.request_id, stored[change.request_id].clock)
            updated[change.request_id] = clock.after_status(self._calendar, change.status, at=change.at)
        changed = [
            (stored[request_id], clock)
            for request_id, clock in updated.items()
            if clock != stored[request_id].clock
        ]
        await self._store.save_clocks(changed, session=tx.session)

    async def carry_out(
        self, message: WorkspaceActionMessage, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """A person's re-routing or reclassification (routing owns queues, priorities and SLAs)."""
        action, now = message.root, self._clock()
        if not isinstance(action, RerouteRequested | ReclassificationRequested):
            return  # another service's action, or the workspace's own
        request = await self._store.load(action.request_id, session=tx.session)
        if request is None:
            raise TransitionRefused("unknown_request", f"routing never routed {action.request_id}")
        if isinstance(action, RerouteRequested):
            effects = request.reroute(action, self._rules, self._calendar, now=now)
        else:
            effects = request.reclassify(action, self._rules, self._calendar, now=now)
        await self._store.save_moved(request, at=now, session=tx.session)
        emit(tx, effects)

    async def due_clocks(self) -> list[str]:
        """The requests with an SLA timer due now (a hint: :meth:`fire` reads the clock again)."""
        return await self._store.due_clocks(self._clock())

    async def fire(self, request_id: str, tx: LedgerTransaction) -> None:
        """Fire the request's SLA timers that are due, in the timer job's transaction for it.

        The clock is read again inside the transaction and written only if it is still the
        revision read there, so a timer fires once: two replicas firing the same timer conflict in
        their transactions and one gives way, and the events they would publish have the same
        ids. The state is in the database, so a restart loses nothing.
        """
        request = await self._store.load(request_id, session=tx.session)
        if request is None:
            return
        effects = request.fire_due(self._calendar, now=self._clock())
        if effects and await self._store.save(request, session=tx.session):  # else fired elsewhere first
            log.info("sla.timers_fired", statuses=[effect.status.value for effect in effects])
            emit(tx, effects)


def build_app(
    settings: RoutingSettings | None = None,
    infrastructure: InfrastructureSettings | None = None,
    clock: Clock | None = None,
) -> tuple[AsgiFastStream, RoutingSettings]:
    """Build the routing service; a bad rules file stops it here. ``clock`` lets tests move time."""
    settings = settings or RoutingSettings()
    rules = load_rules(settings.rules_file)
    runtime = build_runtime(settings, infrastructure)
    store = RoutingStore(runtime.database, rules.business_calendar())
    handlers = RoutingHandlers(store, rules, clock or (lambda: datetime.now(UTC)))
    runtime.startup_hooks.append(store.ensure_indexes)
    log.info("routing.rules_loaded", file=str(settings.rules_file), version=rules.version)

    runtime.every_each(settings.sla_check_seconds, handlers.due_clocks, handlers.fire, name="fire_sla_timers")

    runtime.subscribe_events(
        REQUEST_VALIDATED, RequestValidated, handlers.route, prefetch=store.prefetch_validated
    )
    runtime.subscribe(
        REQUEST_STATUS,
        RequestStatusChanged,
        handlers.follow_status,
        key=lambda change, _: f"status:{change.event_id}",
        log_ids=lambda change: (change.request_id, None),
    )

    runtime.subscribe_actions(handlers.carry_out)

    return runtime.asgi_app(), settings
