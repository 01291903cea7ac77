"""Routing's decisions: which team, how urgent, due when; and the SLA clock. Pure, no I/O.

The rules come from the rules file (:mod:`services.routing.rules`); the version that decided is
kept on every decision. The SLA clock runs in working time of the rules' business calendar
(:mod:`shared.business_time`), stops while a request is on hold, and says which of its
two timers (the warning, the breach) are due at a given instant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from services.routing.rules import PRIORITY_ORDER, HintPolicy, RoutingRules
from shared.business_time import BusinessCalendar, add_working_time, working_time_between
from shared.contract import Priority, RequestStatus
from shared.events import RequestDetails
from shared.money import Money
from shared.status_order import StatusPosition, at_storage_precision, position_of, rank_of


@dataclass(frozen=True)
class RoutingDecision:
    queue: str
    escalation_target: str
    priority: Priority
    sla_target: timedelta  # working time
    sla_warning_after: timedelta  # working time
    sla_due_at: datetime
    rule_version: str


def amount_at_stake(details: RequestDetails) -> Money | None:
    """The money a request is about: the disputed amount, else the requested credit limit."""
    for money in (details.disputed_amount, details.requested_credit_limit):
        if money is not None and money.amount != 0:
            return money
    return None


def priority_for_amount(rules: RoutingRules, money: Money | None) -> Priority:
    """The highest priority whose threshold in the amount's currency the amount reaches."""
    if money is None:
        return Priority.LOW
    thresholds = rules.priority.amount.get(money.currency)
    if thresholds is None:
        return rules.priority.unknown_currency
    reached = [priority for priority, at_least in thresholds.items() if abs(money.amount) >= at_least]
    return _highest(reached)


def decide_priority(details: RequestDetails, *, customer_tier: str, rules: RoutingRules) -> Priority:
    """The highest of the amount, tier and type floors; then the agent's hint as the rules allow."""
    matrix = rules.priority
    floors = [
        priority_for_amount(rules, amount_at_stake(details)),
        matrix.tier.get(customer_tier, Priority.LOW),
        matrix.type.get(details.request_type, Priority.LOW) if details.request_type else Priority.LOW,
    ]
    priority = _highest(floors)
    hint = details.priority_hint
    if hint is None:
        return priority
    if matrix.hint is HintPolicy.OVERRIDE:
        return hint
    return _highest([priority, hint])


def decide_route(
    details: RequestDetails,
    *,
    customer_tier: str,
    now: datetime,
    rules: RoutingRules,
    calendar: BusinessCalendar,
) -> RoutingDecision:
    """Queue by type, priority by the matrix, SLA due after the priority's working hours."""
    queue = rules.queue_for(details.request_type)
    priority = decide_priority(details, customer_tier=customer_tier, rules=rules)
    target = rules.sla.target(priority)
    return RoutingDecision(
        queue=queue,
        escalation_target=rules.queues[queue].escalation_target,
        priority=priority,
        sla_target=target,
        sla_warning_after=rules.sla.warning_after(priority),
        sla_due_at=add_working_time(calendar, now, target),
        rule_version=rules.version,
    )


def decide_reroute(
    queue: str, priority: Priority, *, now: datetime, rules: RoutingRules, calendar: BusinessCalendar
) -> RoutingDecision:
    """A person's choice of queue and priority, with the SLA the rules give that priority from now.

    ``queue`` must be one the rules define (the caller checks): its escalation target comes from
    them.
    """
    target = rules.sla.target(priority)
    return RoutingDecision(
        queue=queue,
        escalation_target=rules.queues[queue].escalation_target,
        priority=priority,
        sla_target=target,
        sla_warning_after=rules.sla.warning_after(priority),
        sla_due_at=add_working_time(calendar, now, target),
        rule_version=rules.version,
    )


def rerouted_message(queue: str, actor: str, why: str) -> str:
    return f"{routed_message(queue)} It was re-routed by {actor}: {why}."


def _highest(priorities: list[Priority]) -> Priority:
    return max(priorities, key=PRIORITY_ORDER.index, default=Priority.LOW)


# --- The SLA clock ------------------------------------------------------------------------


class ClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # on hold: waiting for something outside, the clock does not run
    STOPPED = "stopped"  # resolved: runs again if the request comes back to its queue
    FINISHED = "finished"  # closed or rejected: for good


class SlaTimer(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


# Statuses that are flags or that routing publishes about the SLA itself: they say nothing
# about whether the request is being worked on.
_FLAGS = frozenset(
    {
        RequestStatus.SLA_WARNING,
        RequestStatus.SLA_BREACHED,
        RequestStatus.ESCALATED,
        RequestStatus.DUPLICATE_OF,
    }
)
_FINAL = frozenset({RequestStatus.CLOSED, RequestStatus.REJECTED})


@dataclass(frozen=True)
class SlaClock:
    """A routed request's SLA: its target in working time and how much of it has been used.

    ``consumed`` is the working time used up to ``running_since`` (the last start or resume);
    while running, more is being used. The due instants follow from these and the calendar, so a
    pause simply moves ``consumed`` forward and a resume sets a new ``running_since``.
    """

    target: timedelta
    warning_after: timedelta
    routed_at: datetime
    consumed: timedelta
    running_since: datetime | None
    state: ClockState
    halted_at: datetime | None = None
    warning_fired: bool = False
    breach_fired: bool = False
    # The last status applied (see shared.status_order): an older one that arrives late is not
    # applied. None: nothing since routing, whose own status counts as the first.
    last_status_at: datetime | None = None
    last_status_rank: int = rank_of(RequestStatus.ROUTED)

    @classmethod
    def start(cls, decision: RoutingDecision, *, at: datetime) -> SlaClock:
        return cls(
            target=decision.sla_target,
            warning_after=decision.sla_warning_after,
            routed_at=at,
            consumed=timedelta(0),
            running_since=at,
            state=ClockState.RUNNING,
        )

    @property
    def last_applied(self) -> StatusPosition:
        """The position of the last status applied (routing itself, until another one is)."""
        return StatusPosition(
            at_storage_precision(self.last_status_at or self.routed_at), self.last_status_rank
        )

    def due_at(self, calendar: BusinessCalendar, timer: SlaTimer) -> datetime | None:
        """When ``timer`` fires if nothing changes; None while the clock does not run."""
        if self.state is not ClockState.RUNNING or self.running_since is None:
            return None
        after = self.warning_after if timer is SlaTimer.WARNING else self.target
        return add_working_time(calendar, self.running_since, max(after - self.consumed, timedelta(0)))

    def next_due_at(self, calendar: BusinessCalendar) -> datetime | None:
        """When the next timer not yet fired is due; None if none is pending or the clock stands."""
        for timer, fired in ((SlaTimer.WARNING, self.warning_fired), (SlaTimer.BREACH, self.breach_fired)):
            if not fired:
                return self.due_at(calendar, timer)
        return None

    def due_timers(self, calendar: BusinessCalendar, now: datetime) -> tuple[SlaTimer, ...]:
        """The timers not yet fired that are due at ``now``, warning first."""
        due = []
        for timer, fired in ((SlaTimer.WARNING, self.warning_fired), (SlaTimer.BREACH, self.breach_fired)):
            at = self.due_at(calendar, timer)
            if not fired and at is not None and at <= now:
                due.append(timer)
        return tuple(due)

    def fired(self, timers: tuple[SlaTimer, ...]) -> SlaClock:
        return replace(
            self,
            warning_fired=self.warning_fired or SlaTimer.WARNING in timers,
            breach_fired=self.breach_fired or SlaTimer.BREACH in timers,
        )

    def halted(self, calendar: BusinessCalendar, *, at: datetime, state: ClockState) -> SlaClock:
        """The clock stops at ``at`` (paused, stopped or finished), keeping the time it used."""
        if self.state is not ClockState.RUNNING or self.running_since is None:
            return replace(self, state=state)
        used = working_time_between(calendar, self.running_since, max(at, self.running_since))
        return replace(self, consumed=self.consumed + used, running_since=None, state=state, halted_at=at)

    def resumed(self, *, at: datetime) -> SlaClock:
        """The clock runs again from ``at`` with the working time it had left."""
        if self.state in (ClockState.RUNNING, ClockState.FINISHED):
            return self
        since = max(at, self.halted_at or self.routed_at)
        return replace(self, running_since=since, state=ClockState.RUNNING, halted_at=None)

    def after_status(self, calendar: BusinessCalendar, status: RequestStatus, *, at: datetime) -> SlaClock:
        """What a status change seen on ``requests.status.v1`` does to the clock.

        ``on_hold`` pauses it; ``resolved`` stops it; ``closed`` and ``rejected`` finish it; any
        other status (the request back with its team) resumes a paused or stopped clock. Flags,
        routing's own SLA statuses, and anything not newer than the last status applied (from
        before the request was routed, or an older status delivered late: a sweeper's or a
        restart's republishing can overtake) change nothing; a finished clock never runs again.
        """
        if status in _FLAGS or self.state is ClockState.FINISHED:
            return self
        position = position_of(status, at)
        if position <= self.last_applied:
            return self
        if status in _FINAL:
            changed = self.halted(calendar, at=at, state=ClockState.FINISHED)
        elif status is RequestStatus.ON_HOLD:
            changed = self.halted(calendar, at=at, state=ClockState.PAUSED)
        elif status is RequestStatus.RESOLVED:
            changed = self.halted(calendar, at=at, state=ClockState.STOPPED)
        else:
            changed = self.resumed(at=at)
        return replace(changed, last_status_at=position.at, last_status_rank=position.rank)


def routed_message(queue: str) -> str:
    return f"Your request is with our {_team(queue)} team."


def warning_message(queue: str) -> str:
    return f"Your request is taking longer than we aim for; our {_team(queue)} team is on it."


def breached_message(queue: str) -> str:
    return f"We have not answered your request in the time we promise; our {_team(queue)} team has been told."


def escalated_message(escalation_target: str) -> str:
    return f"Your request has been passed to {_team(escalation_target)} to be dealt with first."


def _team(queue: str) -> str:
    return queue.replace("_", " ")
