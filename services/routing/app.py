"""Composition root of the routing service: wiring, plus the handlers that call the domain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from weakref import WeakKeyDictionary

import structlog
from faststream.asgi import AsgiFastStream

from services.routing import domain
from services.routing.domain import SlaClock, SlaTimer
from services.routing.rules import RoutingRules, load_rules
from services.routing.settings import RoutingSettings
from services.routing.store import RoutingStore, StoredClock
from shared.contract import Channel, Priority, RequestStatus, RequestStatusChanged
from shared.delivery import LedgerTransaction, MessageOrigin
from shared.events import RequestRouted, RequestValidated
from shared.identity import event_id_for
from shared.messages import outgoing_event, outgoing_status, status_changed
from shared.runtime import build_runtime
from shared.settings import InfrastructureSettings
from shared.topics import REQUEST_ROUTED, REQUEST_STATUS, REQUEST_VALIDATED

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

# One SLA per request: its warning, breach and escalation each happen once.
_SLA_OCCURRENCE = "sla"


class RoutingHandlers:
    """Routing a validated request, following its status, and firing its SLA timers."""

    def __init__(
        self,
        store: RoutingStore,
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
        await self._store.record_route(
            event.request_id,
            {
                "queue": decision.queue,
                "priority": decision.priority.value,
                "sla_due_at": decision.sla_due_at,
                "sla_working_hours": decision.sla_target.total_seconds() / 3600,
                "escalation_target": decision.escalation_target,
                "rule_version": decision.rule_version,
                "customer_id": event.customer_id,
                "routed_at": now,
            },
            session=tx.session,
        )
        await self._store.start_clock(
            event.request_id,
            SlaClock.start(decision, at=now),
            {
                "channel": event.details.channel.value,
                "source_id": event.details.source_id,
                "customer_id": event.customer_id,
                "correlation_id": event.correlation_id,
                "queue": decision.queue,
                "escalation_target": decision.escalation_target,
                "priority": decision.priority.value,
                "rule_version": decision.rule_version,
            },
            session=tx.session,
        )
        tx.emit(
            outgoing_event(
                REQUEST_ROUTED,
                RequestRouted(
                    event_id=event_id_for(event.request_id, "RequestRouted"),
                    request_id=event.request_id,
                    correlation_id=event.correlation_id,
                    occurred_at=now,
                    details=event.details,
                    customer_id=event.customer_id,
                    customer_tier=event.customer_tier,
                    invoices=event.invoices,
                    queue=decision.queue,
                    priority=decision.priority,
                    sla_due_at=decision.sla_due_at,
                    rule_version=decision.rule_version,
                ),
            )
        )
        tx.emit(
            outgoing_status(
                status_changed(
                    request_id=event.request_id,
                    channel=event.details.channel,
                    source_id=event.details.source_id,
                    customer_id=event.customer_id,
                    status=RequestStatus.ROUTED,
                    message=domain.routed_message(decision.queue),
                    queue=decision.queue,
                    priority=decision.priority,
                    sla_due_at=decision.sla_due_at,
                    at=now,
                )
            )
        )

    async def follow_status(
        self, change: RequestStatusChanged, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """Collect a status change; the whole batch's changes are applied just before the commit.

        Every status event of every request passes here, so a batch costs two statements: one
        ``$in`` read of the clocks it concerns and one bulk write of those that changed.
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
        now = self._clock()
        stored = (await self._store.clocks([request_id], session=tx.session)).get(request_id)
        if stored is None:
            return
        timers = stored.clock.due_timers(self._calendar, now)
        if not timers:
            return  # fired, paused or stopped meanwhile
        if not await self._store.save_clocks([(stored, stored.clock.fired(timers))], session=tx.session):
            return  # another replica got there first
        log.info("sla.timers_fired", timers=[timer.value for timer in timers])
        for timer in timers:
            self._announce(stored, timer, tx, now=now)

    def _announce(
        self, stored: StoredClock, timer: SlaTimer, tx: LedgerTransaction, *, now: datetime
    ) -> None:
        about = stored.document
        queue, priority = about["queue"], Priority(about["priority"])
        due = stored.clock.due_at(self._calendar, SlaTimer.BREACH)
        if timer is SlaTimer.WARNING:
            changes = [(RequestStatus.SLA_WARNING, queue, domain.warning_message(queue))]
        else:
            target = about["escalation_target"]
            changes = [
                (RequestStatus.SLA_BREACHED, queue, domain.breached_message(queue)),
                (RequestStatus.ESCALATED, target, domain.escalated_message(target)),
            ]
        for status, to_queue, message in changes:
            tx.emit(
                outgoing_status(
                    status_changed(
                        request_id=stored.request_id,
                        channel=Channel(about["channel"]),
                        source_id=about["source_id"],
                        customer_id=about["customer_id"],
                        status=status,
                        reason=f"sla_{timer.value}",
                        message=message,
                        queue=to_queue,
                        priority=priority,
                        sla_due_at=due,
                        occurrence=_SLA_OCCURRENCE,
                        at=now,
                    )
                )
            )


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

    async def fire_sla_timers() -> None:
        due = await handlers.due_clocks()
        await runtime.run_each(
            due, handlers.fire, source_key=lambda id_: f"sla:{id_}", name="fire_sla_timers"
        )

    runtime.every(settings.sla_check_seconds, fire_sla_timers, name="fire_sla_timers")

    runtime.subscribe_events(REQUEST_VALIDATED, RequestValidated, handlers.route)
    runtime.subscribe(
        REQUEST_STATUS,
        RequestStatusChanged,
        handlers.follow_status,
        key=lambda change, _: f"status:{change.event_id}",
        log_ids=lambda change: (change.request_id, None),
    )

    return runtime.asgi_app(), settings
