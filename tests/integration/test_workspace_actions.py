"""The console's actions carried out by their owners, on the real broker and database: routing
re-routes and reclassifies, resolution posts a person's decision (through the approval policy and
segregation of duties), sends a failed posting again and closes; each refusal is a dead letter on
``requests.actions.v1.dlq`` with its reason."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from services.routing.app import build_app as build_routing
from services.routing.settings import RoutingSettings
from shared.actions import action_event_id
from shared.contract import RequestStatus, RequestType
from shared.events import RequestValidated
from shared.topics import (
    ERP_ACKS,
    ERP_RESOLUTIONS,
    PAYMENTS,
    REQUEST_ACTIONS,
    REQUEST_ROUTED,
    REQUEST_STATUS,
    REQUEST_VALIDATED,
    dead_letter_topic,
)
from tests.e2e.finance import Resolution, decide, routed, send, statuses, usd, world_known
from tests.e2e.scenario import UPDATED_AT, World, new_world
from tests.support import (
    MovableClock,
    Servers,
    isolated_settings,
    mongo,
    publish,
    running_service,
    unique,
    wait_for_records,
    wait_until,
)
from tests.workspace.events import routed_request, status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def services(servers: Servers) -> AsyncIterator[tuple[RoutingSettings, Resolution]]:
    routing = isolated_settings(RoutingSettings)
    resolution = isolated_settings(ResolutionSettings)
    async with (
        running_service(build_routing, routing, servers),
        running_service(build_resolution, resolution, servers),
    ):
        yield routing, Resolution(resolution, MovableClock(), servers)


def action(
    request_id: str, event_type: str, *, actor: str = "ada.agent", **fields: Any
) -> tuple[str, str, Any]:
    """A person's action as the workspace publishes it."""
    action_id = uuid.uuid4().hex
    value = {
        "event_type": event_type,
        "event_id": action_event_id(request_id, action_id),
        "request_id": request_id,
        "correlation_id": f"CASE-{request_id}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": actor,
        "actor_role": "team_lead" if actor in ("lena.lead", "bob.smith") else "agent",
        **fields,
    }
    return (REQUEST_ACTIONS, request_id, value)


async def refused(servers: Servers, request_id: str) -> dict[str, str]:
    """The headers of the request's action dead-lettered (its reason, and the service that refused)."""
    (dead,) = await wait_for_records(
        servers, [dead_letter_topic(REQUEST_ACTIONS)], lambda r: r.key == request_id
    )
    return dead.headers


# --- Routing ---------------------------------------------------------------------------------


async def routed_by_routing(servers: Servers) -> str:
    """A billing dispute routing routed itself (to accounts receivable)."""
    request_id = unique("REQ")
    (validated,) = [value for topic, _, value in routed_request(request_id) if topic == REQUEST_VALIDATED]
    await publish(
        servers,
        (REQUEST_VALIDATED, request_id, RequestValidated.model_validate(validated).model_dump(mode="json")),
    )
    await wait_for_records(
        servers, [REQUEST_ROUTED], lambda r: r.key == request_id and r.value["rule_version"] != "routing-test"
    )
    return request_id


async def test_a_rerouted_request_goes_to_the_new_queue_with_a_new_sla(
    services: tuple[RoutingSettings, Resolution], servers: Servers
) -> None:
    routing, _ = services
    request_id = await routed_by_routing(servers)
    await publish(
        servers,
        action(
            request_id,
            "RerouteRequested",
            actor="lena.lead",
            queue="collections",
            priority="urgent",
            reason="it is a write-off",
        ),
    )
    (moved,) = await wait_for_records(
        servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["reason"] == "rerouted_by_person"
    )
    assert (moved.value["status"], moved.value["queue"], moved.value["priority"]) == (
        "routed",
        "collections",
        "urgent",
    )
    assert "lena.lead" in moved.value["message"]
    assert "it is a write-off" in moved.value["message"]
    (announced,) = await wait_for_records(
        servers, [REQUEST_ROUTED], lambda r: r.key == request_id and r.value["queue"] == "collections"
    )
    assert announced.value["sla_due_at"] == moved.value["sla_due_at"]
    database = mongo(servers)[routing.database]
    clock = await database.sla_clocks.find_one({"_id": request_id})
    assert clock is not None
    assert (clock["queue"], clock["escalation_target"], clock["priority"]) == (
        "collections",
        "collections_lead",
        "urgent",
    )
    route = await database.routes.find_one({"_id": request_id})
    assert route is not None
    assert route["queue"] == "collections"


async def test_a_reclassified_request_is_routed_by_the_rules_for_its_new_type(
    services: tuple[RoutingSettings, Resolution], servers: Servers
) -> None:
    request_id = await routed_by_routing(servers)
    await publish(
        servers,
        action(
            request_id, "ReclassificationRequested", request_type="payment_query", reason="a payment question"
        ),
    )
    (moved,) = await wait_for_records(
        servers,
        [REQUEST_STATUS],
        lambda r: r.key == request_id and r.value["reason"] == "reclassified_by_person",
    )
    assert moved.value["queue"] == "cash_application"
    (announced,) = await wait_for_records(
        servers, [REQUEST_ROUTED], lambda r: r.key == request_id and r.value["queue"] == "cash_application"
    )
    assert announced.value["details"]["request_type"] == "payment_query"


async def test_routing_refuses_to_reroute_a_request_it_does_not_know_or_that_is_closed(
    services: tuple[RoutingSettings, Resolution], servers: Servers
) -> None:
    routing, _ = services
    unknown = unique("REQ")
    await publish(servers, action(unknown, "RerouteRequested", queue="collections", reason="x"))
    headers = await refused(servers, unknown)
    assert (headers["x-error-reason"], headers["x-failed-service"]) == ("unknown_request", "routing")

    closed = await routed_by_routing(servers)
    await publish(servers, status(closed, RequestStatus.CLOSED, datetime.now(UTC)))
    clocks = mongo(servers)[routing.database].sla_clocks

    async def finished() -> bool:
        clock = await clocks.find_one({"_id": closed})
        return bool(clock and clock["state"] == "finished")

    await wait_until(finished)
    await publish(servers, action(closed, "RerouteRequested", queue="collections", reason="too late"))
    headers = await refused(servers, closed)
    assert (headers["x-error-reason"], headers["x-failed-service"]) == ("request_closed", "routing")


# --- Resolution ------------------------------------------------------------------------------


def payment_record(
    world: World, suffix: str, *, customer_id: str | None = None
) -> tuple[str, str, dict[str, Any]]:
    payment_id = f"PAY-{world.customer_id}-{suffix}"
    return (
        PAYMENTS,
        payment_id,
        {
            "payment_id": payment_id,
            "customer_id": customer_id or world.customer_id,
            "amount": usd("1200.00"),
            "received_on": "2026-10-20",
            "reference": "transfer",
            "status": "unapplied",
            "applied_to": [],
            "updated_at": UPDATED_AT,
        },
    )


async def with_two_candidates(resolution: Resolution, *extra: tuple[str, str, Any]) -> tuple[World, str]:
    world = new_world()
    await world_known(resolution, world, payment_record(world, "1"), payment_record(world, "2"), *extra)
    event = routed(world, RequestType.PAYMENT_QUERY)
    await send(resolution.servers, event)
    (several,) = await statuses(resolution.servers, event.request_id, "routed")
    assert several["reason"] == "several_payments_match"
    return world, event.request_id


async def test_a_chosen_candidate_payment_is_allocated_and_sent_to_the_erp(
    services: tuple[RoutingSettings, Resolution], servers: Servers
) -> None:
    _, resolution = services
    world, request_id = await with_two_candidates(resolution)
    chosen = f"PAY-{world.customer_id}-2"
    await publish(
        servers,
        action(
            request_id,
            "ResolutionDecided",
            kind="payment_allocation",
            payment_id=chosen,
            reason="the bank says so",
        ),
    )
    (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
    assert (posting.value["kind"], posting.value["payment_id"], posting.value["invoice_id"]) == (
        "payment_allocation",
        chosen,
        world.invoice_id,
    )
    assert posting.value["amount"] == usd("1200.00")
    (resolved,) = await statuses(servers, request_id, "resolved")
    assert "ada.agent decided a payment allocation" in resolved["message"]


async def test_a_chosen_payment_of_another_customer_is_refused(
    services: tuple[RoutingSettings, Resolution], servers: Servers
) -> None:
    _, resolution = services
    stranger = new_world()
    foreign = payment_record(stranger, "9")
    world, request_id = await with_two_candidates(resolution, foreign)
    await publish(
        servers,
        action(request_id, "ResolutionDecided", kind="payment_allocation", payment_id=foreign[1], reason="x"),
    )
    headers = await refused(servers, request_id)
    assert (headers["x-error-reason"], headers["x-failed-service"]) == (
        "payment_of_another_customer",
        "resolution",
    )
    assert f"is not a payment of {world.customer_id}" in headers["x-error"]


async def known_to_resolution(resolution: Resolution, request_type: RequestType) -> tuple[World, str]:
    world = new_world()
    await world_known(resolution, world)
    event = routed(world, request_type)
    await send(resolution.servers, event)
    await resolution.knows("requests", event.request_id)
    return world, event.request_id


async def test_the_decider_cannot_approve_their_own_decision(
    services: tuple[RoutingSettings, Resolution], servers: Servers
) -> None:
    _, resolution = services
    _, request_id = await known_to_resolution(resolution, RequestType.CONTRACT_QUERY)
    await publish(
        servers,
        action(
            request_id,
            "ResolutionDecided",
            actor="bob.smith",
            kind="credit_memo",
            amount=usd("1100.00"),
            reason="goodwill",
        ),
    )
    (waiting,) = await statuses(servers, request_id, "awaiting_approval")
    assert "approval is needed by a team lead" in waiting["message"]
    await decide(servers, "approve", request_id, "bob", role="team_lead")
    (refusal,) = await wait_for_records(
        servers,
        [REQUEST_STATUS],
        lambda r: r.key == request_id and r.value["reason"] == "segregation_of_duties",
    )
    assert "decided this resolution" in refusal.value["message"]
    await decide(servers, "approve", request_id, "lena.lead", role="team_lead")
    (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
    assert [approval["approver"] for approval in posting.value["approvals"]] == ["lena.lead"]
    assert posting.value["amount"] == usd("1100.00")


async def test_a_failed_posting_is_sent_again_under_a_new_resolution_id(
    services: tuple[RoutingSettings, Resolution], servers: Servers
) -> None:
    _, resolution = services
    _, request_id = await known_to_resolution(resolution, RequestType.BILLING_DISPUTE)
    (first,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
    failed = {
        "resolution_id": first.value["resolution_id"],
        "request_id": request_id,
        "status": "failed",
        "error": "period closed",
    }
    await publish(servers, (ERP_ACKS, request_id, failed))
    await wait_for_records(
        servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["reason"] == "erp_posting_failed"
    )
    await publish(servers, action(request_id, "PostingRetryRequested", reason="the period is open again"))
    postings = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id, count=2)
    again = postings[1].value
    assert again["resolution_id"] != first.value["resolution_id"]
    assert (again["kind"], again["amount"], again["invoice_id"]) == (
        first.value["kind"],
        first.value["amount"],
        first.value["invoice_id"],
    )
    posted = {
        "resolution_id": again["resolution_id"],
        "request_id": request_id,
        "status": "posted",
        "erp_document_id": "CM-9",
    }
    await publish(servers, (ERP_ACKS, request_id, posted))
    (closed,) = await statuses(servers, request_id, "closed")
    assert "CM-9" in closed["message"]


async def test_a_person_closes_a_request_and_a_second_closure_or_an_unknown_request_is_refused(
    services: tuple[RoutingSettings, Resolution], servers: Servers
) -> None:
    _, resolution = services
    _, request_id = await known_to_resolution(resolution, RequestType.CONTRACT_QUERY)
    await publish(
        servers, action(request_id, "ClosureRequested", reason_code="answered", comment="told by phone")
    )
    (closed,) = await statuses(servers, request_id, "closed")
    assert closed["reason"] == "answered"
    assert "told by phone" in closed["message"]
    await publish(servers, action(request_id, "ClosureRequested", reason_code="duplicate"))
    headers = await refused(servers, request_id)
    assert (headers["x-error-reason"], headers["x-failed-service"]) == ("request_closed", "resolution")

    unknown = unique("REQ")
    await publish(servers, action(unknown, "ClosureRequested", reason_code="answered"))
    headers = await refused(servers, unknown)
    assert (headers["x-error-reason"], headers["x-failed-service"]) == ("unknown_request", "resolution")
