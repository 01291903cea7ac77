"""The runtime's one way to subscribe and one way to work through ids, on fakes and FastStream's
in-memory broker: idempotence by key, dead letters for unreadable records and refused transitions,
internal events read through upcasting, one transaction per id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.kafka import KafkaMessage, TestKafkaBroker
from pydantic import BaseModel

from shared.delivery import LedgerTransaction, MessageOrigin, OutgoingMessage, ReliableConsumer
from shared.events import RequestCaptured, RequestDetails
from shared.kafka import BrokerPublisher
from shared.lifecycle import TransitionRefused
from shared.runtime import ServiceRuntime, build_runtime, run_each
from shared.settings import InfrastructureSettings, ServiceSettings, service_settings_config
from shared.topics import REQUEST_CAPTURED, REQUEST_STATUS
from tests.unit.fakes import FakeLedger, RecordingPublisher

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class ExampleSettings(ServiceSettings):
    service_name = "example"
    model_config = service_settings_config("example")


class Order(BaseModel):
    order_id: str
    quantity: int


@pytest.fixture
async def runtime() -> AsyncIterator[ServiceRuntime]:
    """A runtime whose consumer keeps its ledger in memory; its broker is tested in memory."""
    built = build_runtime(ExampleSettings(), InfrastructureSettings(log_format="console"))
    built.consumer = ReliableConsumer(
        service="example", ledger=FakeLedger(), publish=BrokerPublisher(built.broker)
    )
    yield built
    await built.mongo_client.close()


def dead_letters_of(runtime: ServiceRuntime, topic: str) -> list[tuple[bytes, str]]:
    found: list[tuple[bytes, str]] = []

    @runtime.broker.subscriber(f"{topic}.dlq", group_id="test-dlq")
    async def on_dead_letter(message: KafkaMessage) -> None:
        found.append((message.body, message.headers["x-error-reason"]))

    return found


async def test_a_subscription_applies_each_key_once_and_dead_letters_what_it_cannot_read(
    runtime: ServiceRuntime,
) -> None:
    applied: list[tuple[str, str]] = []

    async def apply(order: Order, tx: LedgerTransaction, origin: MessageOrigin) -> None:
        applied.append((order.order_id, origin.topic))

    runtime.subscribe("orders.v1", Order, apply, key=lambda order, _: f"order:{order.order_id}")
    dead = dead_letters_of(runtime, "orders.v1")
    order = json.dumps({"order_id": "O-1", "quantity": 2}).encode()
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish(order, topic="orders.v1", key=b"O-1")
        await broker.publish(order, topic="orders.v1", key=b"O-1")  # a copy: same key, applied once
        await broker.publish(b'{"order_id": "O-2"}', topic="orders.v1", key=b"O-2")

    assert applied == [("O-1", "orders.v1")]
    assert dead == [(b'{"order_id": "O-2"}', "invalid_message")]


async def test_a_transition_the_state_refuses_is_dead_lettered_with_its_reason(
    runtime: ServiceRuntime,
) -> None:
    async def apply(order: Order, tx: LedgerTransaction, origin: MessageOrigin) -> None:
        raise TransitionRefused("not_open", f"order {order.order_id} is closed")

    runtime.subscribe("orders.v1", Order, apply, key=lambda order, _: f"order:{order.order_id}")
    dead = dead_letters_of(runtime, "orders.v1")
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish(b'{"order_id": "O-3", "quantity": 1}', topic="orders.v1", key=b"O-3")

    assert [reason for _, reason in dead] == ["not_open"]


def captured_v1() -> dict[str, Any]:
    """A ``RequestCaptured`` as intake wrote it before version 2: no text readings in its details."""
    current = RequestCaptured(
        event_id="EVT-1",
        request_id="REQ-1",
        correlation_id="CASE-1",
        occurred_at=NOW,
        details=RequestDetails(channel="crm", source_id="CASE-1", subject="Price", submitted_at=NOW),
    )
    payload = current.model_dump(mode="json")
    for added in ("invoice_candidates", "payment_candidates", "loose_candidates", "stated_amounts",
                  "paid_amount", "payment_date"):  # fmt: skip
        del payload["details"][added]
    return {**payload, "schema_version": 1}


async def test_the_event_subscription_reads_a_version_1_event_as_version_2(runtime: ServiceRuntime) -> None:
    read: list[RequestCaptured] = []

    async def apply(event: RequestCaptured, tx: LedgerTransaction, origin: MessageOrigin) -> None:
        read.append(event)

    runtime.subscribe_events(REQUEST_CAPTURED, RequestCaptured, apply)
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish(json.dumps(captured_v1()).encode(), topic=REQUEST_CAPTURED, key=b"REQ-1")

    (event,) = read
    assert event.schema_version == 2
    assert (event.details.invoice_candidates, event.details.paid_amount) == ((), None)


async def test_run_each_gives_every_id_its_own_transaction_and_one_failure_stops_no_other() -> None:
    ledger, publisher = FakeLedger(), RecordingPublisher()
    consumer = ReliableConsumer(service="example", ledger=ledger, publish=publisher)
    done: list[str] = []

    async def work(one: str, tx: LedgerTransaction) -> None:
        if one == "B":
            raise RuntimeError("broken")
        done.append(one)
        tx.emit(OutgoingMessage(message_id=f"evt-{one}", topic="done.v1", key=one, value=b"{}"))

    await run_each(consumer, ["A", "B", "C"], work, source_key=lambda one: f"job:{one}", name="example")

    assert done == ["A", "C"]
    assert ledger.commits == 2
    assert [key for _, key, _, _ in publisher.on("done.v1")] == ["A", "C"]
    assert {source for source, _, _ in ledger.outbox.values()} == {"job:A", "job:C"}


async def test_a_timer_over_ids_asks_which_are_due_then_works_on_each_in_its_own_transaction(
    runtime: ServiceRuntime,
) -> None:
    done: list[str] = []

    async def due() -> list[str]:
        return ["REQ-1", "REQ-2"]

    async def work(one: str, tx: LedgerTransaction) -> None:
        done.append(one)
        tx.emit(OutgoingMessage(message_id=f"evt-{one}", topic="done.v1", key=one, value=b"{}"))

    runtime.every_each(5.0, due, work, name="example_timer")
    name, seconds, job = runtime.periodic_jobs[-1]
    assert (name, seconds) == ("example_timer", 5.0)
    async with TestKafkaBroker(runtime.broker):
        await job()
    ledger = runtime.consumer.ledger
    assert isinstance(ledger, FakeLedger)
    assert done == ["REQ-1", "REQ-2"]
    assert ledger.commits == 2
    sources = sorted(source for source, _, _ in ledger.outbox.values())
    assert [
        source.startswith(f"example_timer:{one}:") for source, one in zip(sources, done, strict=True)
    ] == [
        True,
        True,
    ]


def test_consumers_of_a_requests_hops_fetch_with_a_short_wait_and_the_others_with_the_long_one(
    runtime: ServiceRuntime,
) -> None:
    # The local broker holds a fetch for much of its wait even when records arrive: on a
    # request's way from one service to the next that wait is added at every hop.
    async def on_records(message: KafkaMessage) -> None:
        del message

    runtime.subscriber(REQUEST_CAPTURED)(on_records)
    runtime.subscriber(REQUEST_STATUS)(on_records)
    runtime.subscriber(REQUEST_CAPTURED, REQUEST_STATUS, name="view")(on_records)
    subscribers: list[Any] = list(runtime.broker.subscribers)
    waits = {
        subscriber.group_id: subscriber._connection_args["fetch_max_wait_ms"] for subscriber in subscribers
    }
    settings = runtime.settings
    assert settings.request_fetch_max_wait_ms < settings.fetch_max_wait_ms
    assert waits == {
        f"{settings.consumer_group}.{REQUEST_CAPTURED}": settings.request_fetch_max_wait_ms,
        f"{settings.consumer_group}.{REQUEST_STATUS}": settings.fetch_max_wait_ms,
        f"{settings.consumer_group}.view": settings.fetch_max_wait_ms,
    }
