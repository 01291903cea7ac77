"""A request's life in routing, as a typed object: where it went, its SLA clock, and what each
transition causes. Pure: no I/O.

Routing puts a validated request in a queue with a priority and an SLA (:func:`route`), then
follows its statuses with the SLA clock (:meth:`services.routing.domain.SlaClock.after_status`:
paused on hold, stopped when resolved, finished when closed or rejected) and fires its timers
(:meth:`RoutedRequest.fire_due`: the warning, then the breach and the escalation). Re-routing a
request a person reclassifies or sends to another queue is a transition more on this object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.routing import domain
from services.routing.domain import ClockState, RoutingDecision, SlaClock, SlaTimer
from services.routing.rules import RoutingRules
from shared.actions import ReclassificationRequested, RerouteRequested
from shared.business_time import BusinessCalendar
from shared.contract import Channel, Priority, RequestStatus, RequestStatusChanged
from shared.events import RequestDetails, RequestRouted, RequestValidated
from shared.identity import event_id_for
from shared.lifecycle import Effect, TransitionRefused
from shared.messages import status_changed

SLA_OCCURRENCE = "sla"
"""One SLA per request: its warning, breach and escalation each happen once."""


@dataclass(frozen=True)
class Route:
    """Where the request went, and who it is about: what every SLA status says."""

    channel: Channel
    source_id: str
    customer_id: str
    correlation_id: str
    queue: str
    escalation_target: str
    priority: Priority
    rule_version: str


@dataclass(eq=False)  # one object per request and load: the store tells loaded ones apart by identity
class RoutedRequest:
    """A routed request: its route and its SLA clock."""

    request_id: str
    route: Route
    clock: SlaClock
    details: RequestDetails | None = None
    """The request as routing routed it (None: routed before routing kept it; not reclassifiable)."""
    customer_tier: str | None = None

    # -- What people decide in the workspace (requests.actions.v1) ------------------------

    def reroute(
        self, action: RerouteRequested, rules: RoutingRules, calendar: BusinessCalendar, *, now: datetime
    ) -> list[Effect]:
        """A person sends the request to another queue (and priority): a new SLA from now, by the rules."""
        self._require_open()
        if action.queue not in rules.queues:
            known = ", ".join(sorted(rules.queues))
            raise TransitionRefused(
                "unknown_queue", f"no queue {action.queue!r} in the rules (queues: {known})"
            )
        priority = action.priority or self.route.priority
        decision = domain.decide_reroute(action.queue, priority, now=now, rules=rules, calendar=calendar)
        return self._move(decision, action, "rerouted_by_person", action.reason, now=now)

    def reclassify(
        self,
        action: ReclassificationRequested,
        rules: RoutingRules,
        calendar: BusinessCalendar,
        *,
        now: datetime,
    ) -> list[Effect]:
        """A person says the request is of another type: routed again by the rules for that type."""
        self._require_open()
        if self.details is None or self.customer_tier is None:
            raise TransitionRefused(
                "not_reclassifiable",
                f"request {self.request_id} was routed before routing kept its details; re-route it instead",
            )
        self.details = self.details.model_copy(update={"request_type": action.request_type})
        decision = domain.decide_route(
            self.details, customer_tier=self.customer_tier, now=now, rules=rules, calendar=calendar
        )
        why = f"it is a {action.request_type.value} ({action.reason})"
        return self._move(decision, action, "reclassified_by_person", why, now=now)

    def _require_open(self) -> None:
        if self.clock.state is ClockState.FINISHED:
            raise TransitionRefused("request_closed", f"request {self.request_id} is closed or rejected")

    def _move(
        self,
        decision: RoutingDecision,
        action: RerouteRequested | ReclassificationRequested,
        reason: str,
        why: str,
        *,
        now: datetime,
    ) -> list[Effect]:
        """Put the request in ``decision``'s queue with a new SLA clock; say so to resolution and all."""
        self.route = replace(
            self.route,
            queue=decision.queue,
            escalation_target=decision.escalation_target,
            priority=decision.priority,
            rule_version=decision.rule_version,
        )
        # A new SLA from now; what was applied of the statuses so far stays (late ones stay late).
        self.clock = replace(
            SlaClock.start(decision, at=now),
            last_status_at=self.clock.last_status_at,
            last_status_rank=self.clock.last_status_rank,
        )
        route = self.route
        effects: list[Effect] = []
        if self.details is not None and self.customer_tier is not None:
            effects.append(
                RequestRouted(
                    event_id=event_id_for(self.request_id, "RequestRouted", action.event_id),
                    request_id=self.request_id,
                    correlation_id=route.correlation_id,
                    occurred_at=now,
                    details=self.details,
                    customer_id=route.customer_id,
                    customer_tier=self.customer_tier,
                    queue=decision.queue,
                    priority=decision.priority,
                    sla_due_at=decision.sla_due_at,
                    rule_version=decision.rule_version,
                )
            )
        effects.append(
            status_changed(
                request_id=self.request_id,
                channel=route.channel,
                source_id=route.source_id,
                customer_id=route.customer_id,
                status=RequestStatus.ROUTED,
                reason=reason,
                message=domain.rerouted_message(decision.queue, action.actor, why),
                queue=decision.queue,
                priority=decision.priority,
                sla_due_at=decision.sla_due_at,
                occurrence=action.event_id,
                at=now,
            )
        )
        return effects

    def fire_due(self, calendar: BusinessCalendar, *, now: datetime) -> list[RequestStatusChanged]:
        """Fire the timers due at ``now``, each once: the warning, or the breach and the escalation."""
        timers = self.clock.due_timers(calendar, now)
        if not timers:
            return []  # fired, paused or stopped meanwhile
        self.clock = self.clock.fired(timers)
        due = self.clock.due_at(calendar, SlaTimer.BREACH)
        return [change for timer in timers for change in self._announce(timer, due, now)]

    def _announce(self, timer: SlaTimer, due: datetime | None, now: datetime) -> list[RequestStatusChanged]:
        route = self.route
        if timer is SlaTimer.WARNING:
            changes = [(RequestStatus.SLA_WARNING, route.queue, domain.warning_message(route.queue))]
        else:
            target = route.escalation_target
            changes = [
                (RequestStatus.SLA_BREACHED, route.queue, domain.breached_message(route.queue)),
                (RequestStatus.ESCALATED, target, domain.escalated_message(target)),
            ]
        return [
            status_changed(
                request_id=self.request_id,
                channel=route.channel,
                source_id=route.source_id,
                customer_id=route.customer_id,
                status=status,
                reason=f"sla_{timer.value}",
                message=message,
                queue=to_queue,
                priority=route.priority,
                sla_due_at=due,
                occurrence=SLA_OCCURRENCE,
                at=now,
            )
            for status, to_queue, message in changes
        ]


def route(
    event: RequestValidated, decision: RoutingDecision, *, now: datetime
) -> tuple[RoutedRequest, list[Effect]]:
    """A validated request put in its queue: its SLA clock starts; routing says where it went.

    A request validated again (an answer, an update, a reopening: validation's event has an id of
    its own for each round) is routed again, with events and a status of their own.
    """
    details = event.details
    first = event.event_id == event_id_for(event.request_id, "RequestValidated")
    again = () if first else (event.event_id,)
    routed = RoutedRequest(
        request_id=event.request_id,
        route=Route(
            channel=details.channel,
            source_id=details.source_id,
            customer_id=event.customer_id,
            correlation_id=event.correlation_id,
            queue=decision.queue,
            escalation_target=decision.escalation_target,
            priority=decision.priority,
            rule_version=decision.rule_version,
        ),
        clock=SlaClock.start(decision, at=now),
        details=details,
        customer_tier=event.customer_tier,
    )
    announced = RequestRouted(
        event_id=event_id_for(event.request_id, "RequestRouted", *again),
        request_id=event.request_id,
        correlation_id=event.correlation_id,
        occurred_at=now,
        details=details,
        customer_id=event.customer_id,
        customer_tier=event.customer_tier,
        invoices=event.invoices,
        queue=decision.queue,
        priority=decision.priority,
        sla_due_at=decision.sla_due_at,
        rule_version=decision.rule_version,
    )
    status = status_changed(
        request_id=event.request_id,
        channel=details.channel,
        source_id=details.source_id,
        customer_id=event.customer_id,
        status=RequestStatus.ROUTED,
        message=domain.routed_message(decision.queue),
        queue=decision.queue,
        priority=decision.priority,
        sla_due_at=decision.sla_due_at,
        occurrence="".join(again),
        at=now,
    )
    return routed, [announced, status]
