"""`crs stack up` as a user runs it: seven processes on loopback, a request all the way through."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crs.io import producer, publish_json
from crs.stack import (
    PARTS,
    StackConfig,
    stack_down,
    stack_on_free_ports,
    stack_status,
    stack_up,
)
from services.intake.domain import crm_request_id
from shared.topics import CRM_REQUESTS, ERP_RESOLUTIONS, REQUEST_STATUS
from tests.e2e.scenario import new_world
from tests.support import Servers, records_now, unique, wait_for_records, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
async def local_stack(tmp_path: Path) -> AsyncIterator[StackConfig]:
    config = stack_on_free_ports(home=tmp_path / "crs-home")
    try:
        await stack_up(config, timeout=120)
        yield config
    finally:
        await stack_down(config)


@pytest.mark.timeout(240)
async def test_the_stack_processes_resolve_a_dispute_and_stop_cleanly(local_stack: StackConfig) -> None:
    servers = Servers(local_stack.bootstrap_servers, local_stack.mongodb_uri, local_stack)
    status = await stack_status(local_stack)
    assert all(part.healthy for part in status), status
    world = new_world()
    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    async with producer(local_stack.bootstrap_servers) as client:
        # The invoice comes after the request: the request waits for it, then goes on by itself.
        customer, contract, invoice = world.reference_records()
        for topic, key, value in (customer, contract):
            await publish_json(client, topic, key, value)
        from pymongo import AsyncMongoClient

        views = AsyncMongoClient[dict[str, object]](local_stack.mongodb_uri).crs_validation

        async def reference_data_known() -> bool:
            customers = await views.customers.count_documents({"_id": world.customer_id})
            contracts = await views.contracts.count_documents({"_id": world.contract_id})
            return customers == contracts == 1

        await wait_until(reference_data_known)
        await publish_json(client, CRM_REQUESTS, case_id, world.dispute(case_id))
        await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["status"] == "on_hold"
        )
        await publish_json(client, *invoice)
        (resolution,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
    assert resolution.value["amount"] == {"amount": "200.00", "currency": "USD"}
    statuses = await records_now(servers, [REQUEST_STATUS], lambda r: r.key == request_id)
    assert [record.value["status"] for record in statuses] == [
        "received",
        "on_hold",
        "validated",
        "routed",
        "resolved",
    ]
    assert statuses[1].value["reason"] == "awaiting_reference_data"

    pids = [part.pid for part in await stack_status(local_stack) if part.pid is not None]
    assert len(pids) == len(PARTS)  # the broker, the database server and every service
    await stack_down(local_stack)
    after = await stack_status(local_stack)
    assert not any(part.running for part in after)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} survived stack down"  # noqa: ASYNC240
