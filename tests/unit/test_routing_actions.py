"""What people decide in the workspace that routing carries out: a request sent to another queue
(and priority) with a new SLA, or reclassified and routed again by the rules for its new type;
refused for a request that is closed or a queue the rules do not define."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from services.routing.app import RoutingHandlers
from services.routing.domain import ClockState
from services.routing.lifecycle import RoutedRequest
from shared.actions import (
    ClosureRequested,
    ReclassificationRequested,
    RerouteRequested,
    WorkspaceActionMessage,
)
from shared.business_time import add_working_time
from shared.contract import Priority, RequestStatus, RequestStatusChanged, RequestType
from shared.delivery import MessageOrigin
from shared.events import RequestRouted
from shared.lifecycle import TransitionRefused
from shared.topics import REQUEST_ROUTED, REQUEST_STATUS
from tests.unit.fakes import FakeLedger, FakeTransaction
from tests.unit.test_routing_lifecycle import ROUTED_AT, routed
from tests.unit.test_routing_rules import CALENDAR, RULES

LATER = ROUTED_AT + timedelta(hours=1)


def reroute(**change: Any) -> RerouteRequested:
    values: dict[str, Any] = {
        "event_id": "act-1",
        "request_id": "REQ-1",
        "correlation_id": "CASE-1",
        "occurred_at": LATER,
        "actor": "lena.lead",
        "actor_role": "team_lead",
        "queue": "collections",
        "reason": "it is a write-off",
        **change,
    }
    return RerouteRequested.model_validate(values)


def reclassify(**change: Any) -> ReclassificationRequested:
    values: dict[str, Any] = {
        "event_id": "act-2",
        "request_id": "REQ-1",
        "correlation_id": "CASE-1",
        "occurred_at": LATER,
        "actor": "ada.agent",
        "actor_role": "agent",
        "request_type": "payment_query",
        "reason": "the customer asks where the payment went",
        **change,
    }
    return ReclassificationRequested.model_validate(values)


def a_routed_request() -> RoutedRequest:
    request, _ = routed()
    return request


def test_a_rerouted_request_is_in_the_new_queue_with_a_new_sla_from_now() -> None:
    request = a_routed_request()
    announced, status = request.reroute(reroute(priority="urgent"), RULES, CALENDAR, now=LATER)
    assert isinstance(announced, RequestRouted)
    assert isinstance(status, RequestStatusChanged)
    due = add_working_time(CALENDAR, LATER, RULES.sla.target(Priority.URGENT))
    assert (status.status, status.reason, status.queue, status.priority, status.sla_due_at) == (
        RequestStatus.ROUTED,
        "rerouted_by_person",
        "collections",
        Priority.URGENT,
        due,
    )
    assert "lena.lead" in status.message
    assert "it is a write-off" in status.message
    assert (announced.queue, announced.priority, announced.sla_due_at) == (
        "collections",
        Priority.URGENT,
        due,
    )
    assert (request.route.queue, request.route.escalation_target) == ("collections", "collections_lead")
    assert (request.clock.state, request.clock.routed_at, request.clock.consumed) == (
        ClockState.RUNNING,
        LATER,
        timedelta(0),
    )


def test_a_reroute_without_priority_keeps_the_priority() -> None:
    request = a_routed_request()
    request.reroute(reroute(), RULES, CALENDAR, now=LATER)
    assert request.route.priority is Priority.HIGH


def test_a_reclassified_request_is_routed_again_by_the_rules_for_its_new_type() -> None:
    request = a_routed_request()
    announced, status = request.reclassify(reclassify(), RULES, CALENDAR, now=LATER)
    assert isinstance(announced, RequestRouted)
    assert isinstance(status, RequestStatusChanged)
    assert announced.details.request_type is RequestType.PAYMENT_QUERY
    assert (status.queue, status.reason) == ("cash_application", "reclassified_by_person")
    assert request.details is not None
    assert request.details.request_type is RequestType.PAYMENT_QUERY


def test_a_queue_the_rules_do_not_define_is_refused() -> None:
    request = a_routed_request()
    with pytest.raises(TransitionRefused) as refused:
        request.reroute(reroute(queue="treasury"), RULES, CALENDAR, now=LATER)
    assert refused.value.reason == "unknown_queue"
    assert request.route.queue == "accounts_receivable"


def test_a_request_routed_before_routing_kept_its_details_is_not_reclassified() -> None:
    request = a_routed_request()
    request.details = None
    with pytest.raises(TransitionRefused) as refused:
        request.reclassify(reclassify(), RULES, CALENDAR, now=LATER)
    assert refused.value.reason == "not_reclassifiable"


def test_a_closed_request_is_neither_rerouted_nor_reclassified() -> None:
    request = a_routed_request()
    request.clock = request.clock.after_status(CALENDAR, RequestStatus.CLOSED, at=LATER)
    with pytest.raises(TransitionRefused) as refused:
        request.reroute(reroute(), RULES, CALENDAR, now=LATER)
    assert refused.value.reason == "request_closed"
    with pytest.raises(TransitionRefused) as refused:
        request.reclassify(reclassify(), RULES, CALENDAR, now=LATER)
    assert refused.value.reason == "request_closed"
    assert request.route.queue == "accounts_receivable"


# --- The handler -----------------------------------------------------------------------------


class FakeRoutes:
    """Routing's store in memory: the requests routed, each saved as moved."""

    def __init__(self, *requests: RoutedRequest) -> None:
        self.routed = {request.request_id: request for request in requests}
        self.moved: list[str] = []

    async def load(self, request_id: str, *, session: Any) -> RoutedRequest | None:
        found = self.routed.get(request_id)
        return copy.deepcopy(found) if found is not None else None

    async def save_moved(self, request: RoutedRequest, *, at: Any, session: Any) -> None:
        self.routed[request.request_id] = copy.deepcopy(request)
        self.moved.append(request.request_id)

    async def start(self, *args: Any, **kwargs: Any) -> None: ...

    async def clocks(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    async def save_clocks(self, *args: Any, **kwargs: Any) -> int:
        return 0

    async def due_clocks(self, *args: Any, **kwargs: Any) -> list[str]:
        return []

    async def save(self, *args: Any, **kwargs: Any) -> bool:
        return True


ORIGIN = MessageOrigin(topic="requests.actions.v1", partition=0, offset=0, key="REQ-1")


async def test_the_handler_reroutes_and_ignores_actions_it_does_not_own() -> None:
    store = FakeRoutes(a_routed_request())
    handlers = RoutingHandlers(store, RULES, clock=lambda: LATER)
    tx = FakeTransaction(FakeLedger())
    await handlers.carry_out(WorkspaceActionMessage(reroute()), tx, ORIGIN)
    assert [message.topic for message in tx.emitted] == [REQUEST_ROUTED, REQUEST_STATUS]
    assert (store.moved, store.routed["REQ-1"].route.queue) == (["REQ-1"], "collections")

    closure = ClosureRequested.model_validate(
        {
            **reroute().model_dump(),
            "event_type": "ClosureRequested",
            "event_id": "act-9",
            "reason_code": "answered",
        }
    )
    ignored = FakeTransaction(FakeLedger())
    await handlers.carry_out(WorkspaceActionMessage(closure), ignored, ORIGIN)
    assert (ignored.emitted, store.moved) == ([], ["REQ-1"])


async def test_the_handler_refuses_an_action_on_a_request_routing_never_routed() -> None:
    handlers = RoutingHandlers(FakeRoutes(), RULES, clock=lambda: LATER)
    with pytest.raises(TransitionRefused) as refused:
        await handlers.carry_out(WorkspaceActionMessage(reroute()), FakeTransaction(FakeLedger()), ORIGIN)
    assert refused.value.reason == "unknown_request"
