"""A service's /metrics, /health and /health/live over real HTTP, on the real broker and database.

Intake runs under uvicorn on a free port, as ``python -m services.intake`` runs it. Its consumer
group reads ``crm.requests.v1`` from the beginning, where earlier tests left records too, so the
test waits until the group has caught up (consumer lag 0) and then asserts by how much each
counter moved.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from crs.io import producer, publish_json
from crs.stack import find_free_port
from services.intake.app import build_app
from services.intake.domain import crm_request_id
from services.intake.settings import IntakeSettings
from shared.topics import CRM_REQUESTS, REQUEST_CAPTURED, REQUEST_STATUS, dead_letter_topic
from tests.integration.test_intake import crm_case
from tests.support import Servers, isolated_settings, unique, wait_for_records, wait_until

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def http_get(url: str) -> tuple[int, str, bytes]:
    """Status, content type and body of a GET (blocking: run it in a thread)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type", ""), error.read()


@asynccontextmanager
async def served_intake(servers: Servers) -> AsyncIterator[str]:
    """Intake under uvicorn on a free port until the block ends; yields its base URL."""
    port = find_free_port()
    settings = isolated_settings(IntakeSettings, health_port=port)
    app, _ = build_app(settings, servers.infrastructure())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> bool:
            if task.done():
                task.result()
            try:
                status, _, _ = await asyncio.to_thread(http_get, f"{base}/health")
            except OSError:  # not listening yet
                return False
            return status == 204

        await wait_until(ready, timeout=60)
        yield base
    finally:
        server.should_exit = True
        await task


async def scrape(base: str) -> Samples:
    status, content_type, body = await asyncio.to_thread(http_get, f"{base}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset({"service": "intake", **labels}.items())), 0.0)


def crm_lag(samples: Samples) -> list[float]:
    return [
        found
        for (name, labels), found in samples.items()
        if name == "crs_consumer_lag" and ("topic", CRM_REQUESTS) in labels
    ]


async def test_metrics_count_a_processed_and_a_dead_lettered_message(servers: Servers) -> None:
    async with served_intake(servers) as base, producer(servers.bootstrap_servers) as client:
        live, _, _ = await asyncio.to_thread(http_get, f"{base}/health/live")
        assert live == 204

        async def caught_up() -> Samples | None:
            samples = await scrape(base)
            lags = crm_lag(samples)
            return samples if lags and not any(lags) else None

        before: Samples = await wait_until(caught_up, timeout=60)

        case_id, poison_key = unique("CASE"), unique("POISON")
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id))
        await client.send_and_wait(CRM_REQUESTS, b"{not json", key=poison_key.encode())
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == crm_request_id(case_id))
        await wait_for_records(servers, [dead_letter_topic(CRM_REQUESTS)], lambda r: r.key == poison_key)
        after: Samples = await wait_until(caught_up, timeout=60)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    handled = "crs_messages_handled_total"
    assert moved(handled, topic=CRM_REQUESTS, outcome="processed") == 1
    assert moved(handled, topic=CRM_REQUESTS, outcome="dead_lettered") == 1
    assert moved("crs_dead_letters_total", topic=CRM_REQUESTS, reason="malformed_json") == 1
    assert moved("crs_events_published_total", topic=REQUEST_CAPTURED) == 1
    assert moved("crs_status_events_published_total", status="received") == 1
    assert moved("crs_events_published_total", topic=REQUEST_STATUS) == 1
    assert moved("crs_batch_duration_seconds_count", topic=CRM_REQUESTS) >= 1
    assert value(after, "crs_outbox_unpublished") == 0
    assert value(after, "crs_metrics_refresh_failures_total", gauge="consumer_lag") == 0


async def test_a_scrape_asks_the_broker_nothing_per_partition_and_lag_follows_what_was_handled(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus scrapes every few seconds: committed offsets come from what the subscriber committed."""
    asked: list[TopicPartition] = []
    committed = AIOKafkaConsumer.committed

    async def counted(self: AIOKafkaConsumer, partition: TopicPartition) -> int | None:
        asked.append(partition)
        found: int | None = await committed(self, partition)
        return found

    monkeypatch.setattr(AIOKafkaConsumer, "committed", counted)
    async with served_intake(servers) as base, producer(servers.bootstrap_servers) as client:

        async def caught_up() -> Samples | None:
            samples = await scrape(base)
            lags = crm_lag(samples)
            return samples if lags and not any(lags) else None

        await wait_until(caught_up, timeout=60)
        before = len(asked)
        for _ in range(5):
            await scrape(base)
        assert len(asked) == before

        case_id = unique("CASE")
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id))
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == crm_request_id(case_id))
        await wait_until(caught_up, timeout=60)
        assert len(asked) == before
