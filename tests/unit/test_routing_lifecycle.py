"""Routing's lifecycle: a validated request routed (its events), and its SLA timers fired once each."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.routing.domain import ClockState, decide_route
from services.routing.lifecycle import RoutedRequest, route
from shared.contract import Priority, RequestStatus, RequestStatusChanged
from shared.events import RequestRouted, RequestValidated
from tests.unit.test_routing_rules import CALENDAR, RULES, at, details

ROUTED_AT = at("2026-11-27", "15:00")  # high priority: 8 working hours, warning after 6


def routed() -> tuple[RoutedRequest, list[object]]:
    event = RequestValidated(
        event_id="EVT-1",
        request_id="REQ-1",
        correlation_id="CASE-1",
        occurred_at=ROUTED_AT,
        details=details(priority_hint=Priority.HIGH),
        customer_id="CUST-1",
        customer_tier="standard",
    )
    decision = decide_route(
        event.details, customer_tier="standard", now=ROUTED_AT, rules=RULES, calendar=CALENDAR
    )
    request, effects = route(event, decision, now=ROUTED_AT)
    return request, list(effects)


def test_a_routed_request_is_announced_to_resolution_and_the_customer_and_its_clock_runs() -> None:
    request, (announced, status) = routed()
    assert isinstance(announced, RequestRouted)
    assert isinstance(status, RequestStatusChanged)
    assert (announced.queue, announced.priority) == ("accounts_receivable", Priority.HIGH)
    assert (status.status, status.queue, status.sla_due_at) == (
        RequestStatus.ROUTED,
        "accounts_receivable",
        announced.sla_due_at,
    )
    assert (request.route.queue, request.route.correlation_id) == ("accounts_receivable", "CASE-1")
    assert request.clock.state is ClockState.RUNNING


@pytest.mark.parametrize(
    ("moments", "fired"),
    [
        pytest.param([at("2026-11-30", "12:59")], [[]], id="nothing due yet"),
        pytest.param([at("2026-11-30", "13:00")], [["sla_warning"]], id="the warning"),
        pytest.param(
            [at("2026-12-01", "09:00")], [["sla_warning", "sla_breached", "escalated"]], id="both at once"
        ),
        pytest.param(
            [at("2026-11-30", "13:00"), at("2026-11-30", "15:00"), at("2026-12-02", "09:00")],
            [["sla_warning"], ["sla_breached", "escalated"], []],
            id="each once, in turn",
        ),
    ],
)
def test_the_sla_timers_fire_once_each(moments: list[datetime], fired: list[list[str]]) -> None:
    request, _ = routed()
    said = [[change.status.value for change in request.fire_due(CALENDAR, now=moment)] for moment in moments]
    assert said == fired


def test_the_escalation_goes_to_the_queues_escalation_target_with_the_sla_reason() -> None:
    request, _ = routed()
    *_, breached, escalated = request.fire_due(CALENDAR, now=at("2026-12-01", "09:00"))
    assert (breached.queue, breached.reason) == ("accounts_receivable", "sla_breach")
    assert (escalated.queue, escalated.reason) == (request.route.escalation_target, "sla_breach")


def test_a_paused_clock_fires_nothing() -> None:
    request, _ = routed()
    request.clock = request.clock.after_status(CALENDAR, RequestStatus.ON_HOLD, at=at("2026-11-30", "09:00"))
    assert request.fire_due(CALENDAR, now=at("2026-12-10", "09:00")) == []
