"""Timers wait until their service has read what was waiting for it, on the real broker and database.

Routing's SLA timer decides from the clocks in its database, which its status subscriber keeps up
to date. After a restart, the statuses published while it was down are still unread for a while:
a timer that fired then would breach an SLA whose ``resolved`` status sits in the backlog.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.partitioner import murmur2

from crs.io import producer, publish_many
from services.routing.settings import RoutingSettings
from shared.topics import REQUEST_STATUS
from tests.integration.test_routing_sla import (
    Routing,
    SharedTime,
    routed,
    status_change,
    validated_urgent_dispute,
    zurich,
)
from tests.support import Servers, isolated_settings, unique, wait_until

pytestmark = pytest.mark.integration

BACKLOG = 4000


@pytest.fixture
def routing(servers: Servers) -> Routing:
    settings = isolated_settings(RoutingSettings, sla_check_seconds=0.2)
    return Routing(settings, SharedTime(zurich("2026-11-27T15:00")), servers)


async def status_partitions(servers: Servers) -> int:
    async with producer(servers.bootstrap_servers) as client:
        partitions: set[int] = await client.partitions_for(REQUEST_STATUS)
        return len(partitions)


def keys_on_the_partition_of(key: str, partitions: int, count: int) -> list[str]:
    """Other requests' keys that land on ``key``'s partition (the producer's murmur2 partitioner)."""

    def partition(of: str) -> int:
        hashed: int = murmur2(of.encode())
        return (hashed & 0x7FFFFFFF) % partitions

    wanted, prefix = partition(key), unique("OTHER")
    found: list[str] = []
    number = 0
    while len(found) < count:
        candidate = f"{prefix}-{number}"
        if partition(candidate) == wanted:
            found.append(candidate)
        number += 1
    return found


async def test_a_restarted_service_reads_its_backlog_before_its_timers_fire(routing: Routing) -> None:
    """Resolved while routing was down, past the breach when it starts: no breach is published."""
    request_id, event = validated_urgent_dispute()
    async with routing.run():
        await routed(routing, request_id, event)  # urgent, Friday 15:00: breach on Monday 11:00

    # While routing is down: other requests' statuses pile up on the request's partition, then the
    # request is resolved before its breach; when routing starts again, the breach is long past.
    others = keys_on_the_partition_of(request_id, await status_partitions(routing.servers), BACKLOG)
    backlog = [
        (REQUEST_STATUS, other, status_change(other, "received", zurich("2026-11-30T09:00")))
        for other in others
    ]
    resolved = status_change(request_id, "resolved", zurich("2026-11-30T09:30"))
    async with producer(routing.servers.bootstrap_servers) as client:
        await publish_many(client, [*backlog, (REQUEST_STATUS, request_id, resolved)])
    routing.time.now = zurich("2026-11-30T12:00")

    async with routing.run():

        async def stopped() -> bool:
            stored = await routing.clock_document(request_id)
            return stored is not None and stored["state"] == "stopped"

        await wait_until(stopped, timeout=90)
        await asyncio.sleep(1.0)  # the timer job runs several times more

    assert await routing.sla_records(request_id) == []
    stored = await routing.clock_document(request_id)
    assert stored is not None
    assert (stored["warning_fired"], stored["breach_fired"]) == (False, False)
