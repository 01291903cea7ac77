"""Finance resolution with services of the test's own: restarts, and a CRM case through the pipeline.

These tests start their own resolution service(s), so they live apart from the module that keeps
one running: two resolution services alive at once on the shared broker would each act on the
same routed events.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from services.intake.app import build_app as build_intake
from services.intake.domain import crm_request_id
from services.intake.settings import IntakeSettings
from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from services.routing.app import build_app as build_routing
from services.routing.settings import RoutingSettings
from services.validation.app import build_app as build_validation
from services.validation.settings import ValidationSettings
from shared.contract import RequestType
from shared.money import Money
from shared.topics import (
    APPROVALS,
    CRM_REQUESTS,
)
from tests.e2e.finance import (
    Resolution,
    decide,
    resolutions_of,
    routed,
    send,
    statuses,
    usd,
    world_known,
)
from tests.e2e.scenario import new_world
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

pytestmark = pytest.mark.e2e


async def test_restarts_and_replays_never_make_a_second_posting(servers: Servers) -> None:
    settings = isolated_settings(ResolutionSettings)
    world = new_world()
    event = routed(
        world,
        RequestType.CREDIT_LIMIT_CHANGE,
        invoice_ids=(),
        requested_credit_limit=Money.model_validate(usd("52000.00")),
    )
    async with running_service(build_resolution, settings, servers):
        await world_known(Resolution(settings, MovableClock(), servers), world)
        await send(servers, event)
        (awaiting,) = await statuses(servers, event.request_id, "awaiting_approval")
    assert "a team lead" in awaiting["message"]
    # Decided while the service is down: taken up after the restart.
    await decide(servers, "approve", event.request_id, "lena.lead", role="team_lead")
    async with running_service(build_resolution, settings, servers):
        await statuses(servers, event.request_id, "approved", "resolved")
    async with running_service(build_resolution, settings, servers):
        # Everything again after another restart: routing's event under a new id, the approval.
        replayed = event.model_copy(update={"event_id": unique("evt")})
        await send(servers, replayed)
        await decide(servers, "approve", event.request_id, "lena.lead", role="team_lead")
        await wait_for_records(
            servers, [f"{APPROVALS}.dlq"], lambda r: r.key == event.request_id
        )  # a second decision once resolved is dead-lettered, not applied
        processed = mongo(servers)[settings.database].processed_messages
        await wait_until(lambda: processed.count_documents({"_id": f"event:{replayed.event_id}"}))
    postings = await resolutions_of(servers, event.request_id)
    assert len(postings) == 1
    assert postings[0]["amount"] == usd("2000.00")
    assert [one["approver"] for one in postings[0]["approvals"]] == ["lena.lead"]


async def test_a_crm_credit_limit_request_goes_through_validation_and_routing_to_two_approvals(
    servers: Servers,
) -> None:
    world = new_world()
    resolution = isolated_settings(ResolutionSettings)
    validation = isolated_settings(ValidationSettings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            running_service(build_intake, isolated_settings(IntakeSettings), servers)
        )
        await stack.enter_async_context(running_service(build_validation, validation, servers))
        await stack.enter_async_context(
            running_service(build_routing, isolated_settings(RoutingSettings), servers)
        )
        await stack.enter_async_context(running_service(build_resolution, resolution, servers))
        await world_known(Resolution(resolution, MovableClock(), servers), world)
        await wait_until(
            lambda: mongo(servers)[validation.database].customers.count_documents({"_id": world.customer_id})
        )
        case_id = unique("CASE")
        request_id = crm_request_id(case_id)
        case = {
            "case_id": case_id,
            "channel": "crm",
            "customer_id": world.customer_id,
            "type": "credit_limit_change",
            "subject": "Please raise our credit limit to 75,000 USD",
            "requested_credit_limit": usd("75000.00"),
            "contact": {"name": "Jane Doe", "email": world.contact_email},
            "submitted_at": "2026-11-23T09:00:00Z",
        }
        await publish(servers, (CRM_REQUESTS, case_id, case))
        (routed_status, awaiting) = await statuses(servers, request_id, "routed", "awaiting_approval")
        assert routed_status["queue"] == "credit_control"
        assert "a team lead and a finance manager" in awaiting["message"]
        await decide(servers, "approve", request_id, "fred.finance", role="finance_manager")
        await decide(servers, "approve", request_id, "lena.lead", role="team_lead")
        await statuses(servers, request_id, "approved", "resolved")
    (posting,) = await resolutions_of(servers, request_id)
    assert posting["kind"] == "credit_limit_update"
    assert posting["amount"] == usd("25000.00")
    assert posting["corrected_amount"] == usd("75000.00")
    assert {one["role"] for one in posting["approvals"]} == {"team_lead", "finance_manager"}
