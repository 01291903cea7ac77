"""`make run`'s queue demo on the real local stack: a request waiting for a person in every queue.

The whole stack runs as `crs stack up` starts it (broker, database servers, the six services);
the demo dataset and the queue demo go in through the contract's inbound topics only, and what
the console shows is read through the workspace's API, as a person signed in would see it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crs.demo_data import generate_demo_data
from crs.demo_queues import QUEUES, DemoRequest, publish_queue_demo, queue_demo_requests
from crs.drain import drain
from crs.io import producer, publish_many
from crs.local_users import LocalUsers, prepare_local_users
from crs.stack import SERVICES, StackConfig, stack_down, stack_on_free_ports, stack_up
from shared.identity import crm_request_id, email_request_id
from shared.topics import CRM_REQUESTS
from tests.support import wait_until

pytestmark = pytest.mark.e2e

CUSTOMERS = 60  # every kind of demo request has its data at this size (and it loads quickly)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[StackConfig, LocalUsers]]:
    config = stack_on_free_ports(home=tmp_path / "crs-home")
    users = prepare_local_users(config.home)  # made here, so the test knows the passwords
    try:
        await stack_up(config, timeout=180)
        yield config, users
    finally:
        await stack_down(config)


def _request_id(request: DemoRequest) -> str:
    return crm_request_id(request.key) if request.topic == CRM_REQUESTS else email_request_id(request.key)


async def _drained(config: StackConfig) -> None:
    metrics = {name: f"http://127.0.0.1:{config.health_ports[name]}/metrics" for name in SERVICES}
    left = await drain(metrics, timeout=300, say=lambda _: None)
    assert not left.total, left.describe()


@pytest.mark.timeout(600)
async def test_every_queue_and_the_approvals_inbox_get_a_request_waiting_for_a_person(
    stack: tuple[StackConfig, LocalUsers],
) -> None:
    config, users = stack
    dataset = generate_demo_data(customers=CUSTOMERS)
    async with producer(config.bootstrap_servers) as client:
        await publish_many(client, ((r.topic, r.key, r.value) for r in dataset.records()))
    await _drained(config)

    published = await publish_queue_demo(config.bootstrap_servers, dataset)
    assert {request.queue for request in published} == set(QUEUES)
    expected = {_request_id(request): request.queue for request in published}
    resting = {_request_id(request): request.status for request in published}

    base = f"http://127.0.0.1:{config.health_ports['workspace']}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def token(user: str) -> dict[str, str]:
            answer = await http.post("/api/token", data={"username": user, "password": users.passwords[user]})
            answer.raise_for_status()
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        admin, lena, bob = await token("adam.admin"), await token("lena.lead"), await token("bob.smith")

        async def rows() -> dict[str, dict[str, Any]]:
            answer = await http.get("/api/queues", headers=admin)
            answer.raise_for_status()
            return {row["request_id"]: row for row in answer.json()}

        async def every_demo_request_waits() -> dict[str, dict[str, Any]] | None:
            shown = await rows()
            waiting = [
                request_id
                for request_id, status in resting.items()
                if request_id in shown and shown[request_id]["status"] == status
            ]
            return shown if len(waiting) == len(resting) else None

        shown = await wait_until(every_demo_request_waits, timeout=240, interval=1.0)
        for request_id, queue in expected.items():
            assert shown[request_id]["queue"] == queue, shown[request_id]
        assert {shown[request_id]["queue"] for request_id in expected} == set(QUEUES)

        async def inbox(headers: dict[str, str]) -> set[str]:
            answer = await http.get("/api/approvals", headers=headers)
            answer.raise_for_status()
            return {item["request_id"] for item in answer.json()}

        dispute, credit_limit = (
            _request_id(request)
            for request in published
            if request.queue in ("accounts_receivable", "credit_control")
        )
        assert dispute in await inbox(lena)
        assert credit_limit in await inbox(bob)

        # `make run` again on the same stack: the same requests are redeliveries, nothing is added.
        assert queue_demo_requests(generate_demo_data(customers=CUSTOMERS)) == published
        await publish_queue_demo(config.bootstrap_servers, dataset)
        await _drained(config)
        again = await rows()
        assert set(again) == set(shown)
        assert {request_id: again[request_id]["status"] for request_id in expected} == {
            request_id: shown[request_id]["status"] for request_id in expected
        }
