"""Routing's SLA timers on the real broker and database, with the service's clock under test control.

The clock is set to chosen instants (a Friday afternoon in Zurich, the days around Christmas), so
a weekend, holidays and an on-hold pause are crossed on purpose. Each timer must fire exactly once:
with two replicas racing for it, and across a restart of the service on the same database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crs.io import producer, publish_json
from services.intake.domain import capture_crm_request
from services.routing.app import build_app as build_routing
from services.routing.settings import RoutingSettings
from shared.contract import CrmRequest
from shared.events import RequestValidated
from shared.topics import REQUEST_STATUS, REQUEST_VALIDATED
from tests.e2e.scenario import new_world
from tests.support import (
    Servers,
    isolated_settings,
    mongo,
    records_now,
    running_service,
    unique,
    wait_consumed,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.integration

ZURICH = ZoneInfo("Europe/Zurich")
SLA_STATUSES = ("sla_warning", "sla_breached", "escalated")


def zurich(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=ZURICH)


@dataclass
class SharedTime:
    """The instant every routing instance of a test believes it is; the test sets it."""

    now: datetime


@dataclass
class InstanceClock:
    """One instance's clock: the test's time, counting how often the instance read it."""

    time: SharedTime
    calls: int = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.time.now


@dataclass
class Routing:
    settings: RoutingSettings
    time: SharedTime
    servers: Servers

    @asynccontextmanager
    async def run(self, *, replica: str = "") -> AsyncIterator[None]:
        """One instance of the service; several can run at once (replicas) on the same database.

        A ``replica`` other than the first gets consumer groups of its own: two members of one
        group in one process leave the local broker (tansu) rebalancing for minutes after they
        stop. Its timer job races the first's for the same clocks in the same database, which is
        what this test is about.

        Returns once the instance's timer job runs, that is once it has fully started (its
        subscribers joined): stopping an instance half-started would leave its timer running.
        """
        clock = InstanceClock(self.time)
        settings = self.settings
        if replica:
            settings = settings.model_copy(update={"consumer_group": f"{settings.consumer_group}-{replica}"})
        async with running_service(partial(build_routing, clock=clock), settings, self.servers):

            async def timer_job_runs() -> bool:
                return clock.calls >= 2

            await wait_until(timer_job_runs, interval=0.05)
            yield

    async def clock_document(self, request_id: str) -> dict[str, Any] | None:
        return await mongo(self.servers)[self.settings.database].sla_clocks.find_one({"_id": request_id})

    async def sla_records(self, request_id: str) -> list[dict[str, Any]]:
        records = await records_now(
            self.servers,
            [REQUEST_STATUS],
            lambda r: r.key == request_id and r.value["status"] in SLA_STATUSES,
        )
        return [record.value for record in records]


@pytest.fixture
def routing(servers: Servers) -> Routing:
    settings = isolated_settings(RoutingSettings, sla_check_seconds=0.2)
    return Routing(settings, SharedTime(zurich("2026-11-27T15:00")), servers)


def validated_urgent_dispute() -> tuple[str, dict[str, Any]]:
    world = new_world()
    case = {**world.dispute(unique("CASE")), "priority": "urgent"}
    capture = capture_crm_request(CrmRequest.model_validate(case), now=datetime.now(UTC))
    event = RequestValidated.model_validate(
        {
            **capture.captured.model_dump(mode="json"),
            "event_type": "RequestValidated",
            "event_id": unique("evt"),
            "customer_id": world.customer_id,
            "customer_tier": "standard",
        }
    )
    return capture.request_id, event.model_dump(mode="json")


async def publish(servers: Servers, topic: str, key: str, value: dict[str, Any]) -> None:
    async with producer(servers.bootstrap_servers) as client:
        await publish_json(client, topic, key, value)


async def routed(routing: Routing, request_id: str, event: dict[str, Any]) -> dict[str, Any]:
    await publish(routing.servers, REQUEST_VALIDATED, request_id, event)
    (status,) = await wait_for_records(
        routing.servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["status"] == "routed"
    )
    value: dict[str, Any] = status.value
    return value


def status_change(request_id: str, status: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": unique("evt"),
        "request_id": request_id,
        "channel": "portal",
        "source_id": "CASE",
        "status": status,
        "message": f"Now {status}.",
        "at": at.isoformat(),
    }


async def nothing_fires_for(routing: Routing, request_id: str, seconds: float = 1.5) -> None:
    """Let the timer job run several times and check it fired nothing."""
    await asyncio.sleep(seconds)
    stored = await routing.clock_document(request_id)
    assert stored is not None
    assert (stored["warning_fired"], stored["breach_fired"]) == (False, False)


async def test_warning_breach_and_escalation_fire_once_across_a_weekend_replicas_and_a_restart(
    routing: Routing,
) -> None:
    request_id, event = validated_urgent_dispute()
    async with AsyncExitStack() as first_run:
        await first_run.enter_async_context(routing.run())
        status = await routed(routing, request_id, event)
        # Urgent: four working hours from Friday 15:00, two on Friday and two on Monday morning.
        assert datetime.fromisoformat(status["sla_due_at"]) == zurich("2026-11-30T11:00")
        stored = await routing.clock_document(request_id)
        assert stored is not None
        assert stored["next_due_at"] == zurich("2026-11-30T10:00")  # the warning: three hours in
        assert (stored["rule_version"], stored["escalation_target"]) == (
            "routing-2026.11.2",
            "accounts_receivable_lead",
        )

        routing.time.now = zurich("2026-11-29T16:00")  # Sunday: the weekend does not count
        await nothing_fires_for(routing, request_id)

        await first_run.enter_async_context(routing.run(replica="b"))  # a second replica on the same database
        routing.time.now = zurich("2026-11-30T10:15")
        (warning,) = await wait_for_records(
            routing.servers,
            [REQUEST_STATUS],
            lambda r: r.key == request_id and r.value["status"] == "sla_warning",
        )
        assert (warning.value["queue"], warning.value["priority"]) == ("accounts_receivable", "urgent")
        assert datetime.fromisoformat(warning.value["sla_due_at"]) == zurich("2026-11-30T11:00")
        await asyncio.sleep(1.0)  # both replicas' timer jobs run again meanwhile

    # Both replicas stopped; time passes the breach while nothing runs; a new instance starts.
    routing.time.now = zurich("2026-11-30T11:30")
    async with routing.run():
        (breached, escalated) = await wait_for_records(
            routing.servers,
            [REQUEST_STATUS],
            lambda r: r.key == request_id and r.value["status"] in {"sla_breached", "escalated"},
            count=2,
        )
        routing.time.now = zurich("2026-12-07T11:30")
        await asyncio.sleep(1.0)

    async with routing.run():  # and once more: a restart after everything fired changes nothing
        await asyncio.sleep(1.0)

    assert (breached.value["status"], breached.value["queue"]) == ("sla_breached", "accounts_receivable")
    assert (escalated.value["status"], escalated.value["queue"]) == ("escalated", "accounts_receivable_lead")
    assert escalated.value["reason"] == "sla_breach"
    fired = await routing.sla_records(request_id)
    assert Counter(record["status"] for record in fired) == {
        "sla_warning": 1,
        "sla_breached": 1,
        "escalated": 1,
    }
    stored = await routing.clock_document(request_id)
    assert stored is not None
    assert (stored["warning_fired"], stored["breach_fired"], stored["next_due_at"]) == (True, True, None)


async def test_on_hold_pauses_the_clock_over_christmas_and_the_next_status_resumes_it(
    routing: Routing,
) -> None:
    routing.time.now = zurich("2026-12-22T10:00")
    request_id, event = validated_urgent_dispute()
    async with routing.run():
        status = await routed(routing, request_id, event)
        assert datetime.fromisoformat(status["sla_due_at"]) == zurich("2026-12-22T14:00")

        # One working hour used, then the request waits for the customer.
        await publish(
            routing.servers,
            REQUEST_STATUS,
            request_id,
            status_change(request_id, "on_hold", zurich("2026-12-22T11:00")),
        )

        async def paused() -> bool:
            stored = await routing.clock_document(request_id)
            return stored is not None and stored["state"] == "paused"

        await wait_until(paused)
        routing.time.now = zurich("2026-12-23T16:30")  # long past the target: the clock stands
        await nothing_fires_for(routing, request_id)

        # Back on Monday after Christmas Eve, Christmas, St Stephen's day and the weekend, with
        # three working hours left: warning at 11:00 (three of four hours used), breach at 12:00.
        await publish(
            routing.servers,
            REQUEST_STATUS,
            request_id,
            status_change(request_id, "validated", zurich("2026-12-28T09:00")),
        )

        async def resumed() -> dict[str, Any] | None:
            stored = await routing.clock_document(request_id)
            return stored if stored is not None and stored["state"] == "running" else None

        stored = await wait_until(resumed)
        assert stored["warning_due_at"] == zurich("2026-12-28T11:00")
        assert stored["breach_due_at"] == zurich("2026-12-28T12:00")

        routing.time.now = zurich("2026-12-28T11:30")
        await wait_for_records(
            routing.servers,
            [REQUEST_STATUS],
            lambda r: r.key == request_id and r.value["status"] == "sla_warning",
        )
        stored = await routing.clock_document(request_id)
        assert stored is not None
        assert (stored["warning_fired"], stored["breach_fired"]) == (True, False)

        # Resolved before the breach: the breach never fires.
        await publish(
            routing.servers,
            REQUEST_STATUS,
            request_id,
            status_change(request_id, "resolved", zurich("2026-12-28T11:45")),
        )

        async def stopped() -> bool:
            stored = await routing.clock_document(request_id)
            return stored is not None and stored["state"] == "stopped"

        await wait_until(stopped)
        routing.time.now = zurich("2027-01-15T12:00")
        await asyncio.sleep(1.0)

    fired = await routing.sla_records(request_id)
    assert [record["status"] for record in fired] == ["sla_warning"]


async def test_a_late_awaiting_approval_after_resolved_leaves_the_clock_stopped(routing: Routing) -> None:
    request_id, event = validated_urgent_dispute()
    async with routing.run():
        await routed(routing, request_id, event)
        resolved = status_change(request_id, "resolved", zurich("2026-11-27T16:00"))
        # Published after the resolution (a sweeper's or a restart's republishing), though older.
        late = status_change(request_id, "awaiting_approval", zurich("2026-11-27T15:30"))
        await publish(routing.servers, REQUEST_STATUS, request_id, resolved)
        await publish(routing.servers, REQUEST_STATUS, request_id, late)
        await wait_consumed(routing.servers, routing.settings, REQUEST_STATUS)
        stored = await routing.clock_document(request_id)
        assert stored is not None
        assert (stored["state"], stored["next_due_at"]) == ("stopped", None)
        routing.time.now = zurich("2026-12-07T12:00")  # a week later: nothing may fire
        await nothing_fires_for(routing, request_id)
    assert await routing.sla_records(request_id) == []
