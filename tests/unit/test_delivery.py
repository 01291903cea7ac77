"""The delivery guarantees on fakes: idempotence, dead letters, retries, crash recovery."""

from __future__ import annotations

import json

import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from pydantic import BaseModel

from shared.delivery import (
    DatabaseUnavailable,
    DeliveryPolicy,
    Inbound,
    LedgerTransaction,
    MessageOrigin,
    OutgoingMessage,
    PermanentFailure,
    ReliableConsumer,
)
from shared.kafka import BrokerPublisher
from shared.runtime import inbound_batch
from tests.unit.fakes import FakeLedger, RecordingPublisher

ORIGIN = MessageOrigin(topic="orders.v1", partition=2, offset=41, key="K-1")


class Order(BaseModel):
    order_id: str
    quantity: int


class Handler:
    def __init__(self, failures: int = 0, permanent: bool = False) -> None:
        self.calls = 0
        self.failures = failures
        self.permanent = permanent

    async def __call__(self, order: Order, tx: LedgerTransaction, _: MessageOrigin) -> None:
        self.calls += 1
        if self.permanent:
            raise PermanentFailure("unknown_order", f"{order.order_id} does not exist")
        if self.calls <= self.failures:
            raise RuntimeError("transient trouble")
        tx.emit(
            OutgoingMessage(
                message_id=f"evt-{order.order_id}",
                topic="orders.accepted.v1",
                key=order.order_id,
                value=b"{}",
            )
        )


def consumer(ledger: FakeLedger, publisher: RecordingPublisher) -> ReliableConsumer:
    return ReliableConsumer(
        service="test",
        ledger=ledger,
        publish=publisher,
        policy=DeliveryPolicy(max_attempts=3, retry_backoff_seconds=0.001, max_message_bytes=1_000),
    )


async def consume(reliable: ReliableConsumer, value: bytes, handler: Handler) -> None:
    await reliable.consume_batch(
        [Inbound(value, ORIGIN)],
        model=Order,
        idempotency_key=lambda order, _: f"order:{order.order_id}",
        apply=handler,
    )


ORDER = json.dumps({"order_id": "O-1", "quantity": 3}).encode()


async def test_a_message_delivered_twice_is_applied_and_published_once() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler()
    reliable = consumer(ledger, publisher)
    await consume(reliable, ORDER, handler)
    await consume(reliable, ORDER, handler)
    assert handler.calls == 1
    assert [sent[0] for sent in publisher.sent] == ["orders.accepted.v1"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (json.dumps({"order_id": "O-1", "quantity": "many"}).encode(), "invalid_message"),
        (json.dumps({"quantity": 1}).encode(), "invalid_message"),
        (json.dumps({"order_id": "O-1", "quantity": 1, "pad": "x" * 2_000}).encode(), "message_too_large"),
    ],
)
async def test_unreadable_messages_are_dead_lettered_with_their_origin(value: bytes, reason: str) -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler()
    await consume(consumer(ledger, publisher), value, handler)
    assert handler.calls == 0
    (dead,) = publisher.on("orders.v1.dlq")
    _, key, raw, headers = dead
    assert raw == value
    assert key == "K-1"
    assert headers["x-error-reason"] == reason
    assert headers["x-original-topic"] == "orders.v1"
    assert headers["x-original-partition"] == "2"
    assert headers["x-original-offset"] == "41"
    assert headers["x-failed-service"] == "test"
    assert ledger.processed == set()


async def test_a_transient_failure_is_retried_and_then_succeeds() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler(failures=2)
    await consume(consumer(ledger, publisher), ORDER, handler)
    assert handler.calls == 3
    assert publisher.on("orders.v1.dlq") == []
    assert len(publisher.on("orders.accepted.v1")) == 1


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_bounded_retries() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler(failures=99)
    await consume(consumer(ledger, publisher), ORDER, handler)
    assert handler.calls == 3
    (dead,) = publisher.on("orders.v1.dlq")
    assert dead[3]["x-error-reason"] == "handler_failed"
    assert "transient trouble" in dead[3]["x-error"]
    assert publisher.on("orders.accepted.v1") == []


async def test_a_permanent_failure_goes_straight_to_the_dead_letter_topic() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler(permanent=True)
    await consume(consumer(ledger, publisher), ORDER, handler)
    assert handler.calls == 1
    assert publisher.on("orders.v1.dlq")[0][3]["x-error-reason"] == "unknown_order"


async def test_a_failed_commit_leaves_no_trace_and_the_retry_applies_once() -> None:
    ledger, publisher, handler = FakeLedger(fail_next_commits=1), RecordingPublisher(), Handler()
    await consume(consumer(ledger, publisher), ORDER, handler)
    assert handler.calls == 2
    assert ledger.processed == {"order:O-1"}
    assert len(publisher.on("orders.accepted.v1")) == 1


async def test_a_crash_between_commit_and_publish_is_repaired_by_redelivery() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(fail_next=1), Handler()
    reliable = consumer(ledger, publisher)
    with pytest.raises(ConnectionError):
        await consume(reliable, ORDER, handler)  # committed, then the broker was gone
    assert publisher.sent == []
    await consume(reliable, ORDER, handler)  # the broker redelivers: the offset was not committed
    assert handler.calls == 1
    assert len(publisher.on("orders.accepted.v1")) == 1


async def test_the_outbox_sweep_publishes_what_a_crash_left_behind() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(fail_next=1), Handler()
    reliable = consumer(ledger, publisher)
    with pytest.raises(ConnectionError):
        await consume(reliable, ORDER, handler)
    assert await reliable.flush_outbox() == 1
    assert await reliable.flush_outbox() == 0
    assert len(publisher.on("orders.accepted.v1")) == 1


async def test_a_thin_handler_on_the_in_memory_broker_dead_letters_poison_and_goes_on() -> None:
    broker = KafkaBroker()
    ledger, handler = FakeLedger(), Handler()
    reliable = ReliableConsumer(service="test", ledger=ledger, publish=BrokerPublisher(broker))
    dead_letters: list[tuple[bytes, str]] = []
    accepted: list[str] = []

    @broker.subscriber("orders.v1", group_id="test", batch=True)
    async def on_order(message: KafkaMessage) -> None:
        await reliable.consume_batch(
            inbound_batch(message),
            model=Order,
            idempotency_key=lambda order, _: f"order:{order.order_id}",
            apply=handler,
        )

    @broker.subscriber("orders.v1.dlq", group_id="test-dlq")
    async def on_dead_letter(message: KafkaMessage) -> None:
        dead_letters.append((message.body, message.headers["x-error-reason"]))

    @broker.subscriber("orders.accepted.v1", group_id="test-accepted")
    async def on_accepted(message: KafkaMessage) -> None:
        accepted.append(message.raw_message.key.decode())  # type: ignore[union-attr]

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(b"\x00garbage", topic="orders.v1", key=b"K-0")
        await test_broker.publish(ORDER, topic="orders.v1", key=b"O-1")
        await test_broker.publish(ORDER, topic="orders.v1", key=b"O-1")

    assert dead_letters == [(b"\x00garbage", "malformed_json")]
    assert accepted == ["O-1"]


def inbound(order_id: str, offset: int, quantity: object = 1) -> Inbound:
    value = json.dumps({"order_id": order_id, "quantity": quantity}).encode()
    return Inbound(value, MessageOrigin(topic="orders.v1", partition=0, offset=offset, key=order_id))


class PickyHandler(Handler):
    """Refuses one order for good; accepts the rest."""

    async def __call__(self, order: Order, tx: LedgerTransaction, origin: MessageOrigin) -> None:
        self.calls += 1
        if order.order_id == "O-BAD":
            raise PermanentFailure("unknown_order", "no such order")
        await Handler.__call__(self, order, tx, origin)
        self.calls -= 1  # counted once above


async def test_a_batch_is_one_transaction_and_repeats_inside_it_count_once() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler()
    batch = [inbound("O-1", 1), inbound("O-2", 2), inbound("O-1", 3), inbound("O-3", 4, quantity="x")]
    await consumer(ledger, publisher).consume_batch(
        batch, model=Order, idempotency_key=lambda order, _: f"order:{order.order_id}", apply=handler
    )
    assert ledger.commits == 1
    assert handler.calls == 2
    assert [sent[1] for sent in publisher.on("orders.accepted.v1")] == ["O-1", "O-2"]
    assert [sent[1] for sent in publisher.on("orders.v1.dlq")] == ["O-3"]


async def test_one_bad_message_does_not_hold_up_the_rest_of_its_batch() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), PickyHandler()
    batch = [inbound("O-1", 1), inbound("O-BAD", 2), inbound("O-2", 3)]
    await consumer(ledger, publisher).consume_batch(
        batch, model=Order, idempotency_key=lambda order, _: f"order:{order.order_id}", apply=handler
    )
    assert ledger.processed == {"order:O-1", "order:O-2"}
    assert [sent[1] for sent in publisher.on("orders.accepted.v1")] == ["O-1", "O-2"]
    (dead,) = publisher.on("orders.v1.dlq")
    assert (dead[1], dead[3]["x-error-reason"]) == ("O-BAD", "unknown_order")


async def test_a_database_outage_is_not_blamed_on_the_message() -> None:
    ledger, publisher, handler = FakeLedger(fail_next_commits=3), RecordingPublisher(), Handler()
    reliable = consumer(ledger, publisher)
    with pytest.raises(DatabaseUnavailable):
        await consume(reliable, ORDER, handler)  # three attempts, three failed commits
    assert publisher.sent == []  # nothing dead-lettered, the offset stays uncommitted
    await consume(reliable, ORDER, handler)  # the broker redelivers once the database is back
    assert ledger.processed == {"order:O-1"}
    assert len(publisher.on("orders.accepted.v1")) == 1
    assert publisher.on("orders.v1.dlq") == []


def test_mongodb_errors_that_mean_unreachable_are_told_apart_from_bad_messages() -> None:
    from pymongo import AsyncMongoClient
    from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure, ServerSelectionTimeoutError

    from shared.mongo import MongoLedger

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    ledger = MongoLedger(client, client.unit)
    transient = OperationFailure(
        "write conflict", code=112, details={"errorLabels": ["TransientTransactionError"]}
    )
    assert ledger.is_unavailable(AutoReconnect("connection reset"))
    assert ledger.is_unavailable(ServerSelectionTimeoutError("no primary"))
    assert ledger.is_unavailable(transient)
    assert not ledger.is_unavailable(DuplicateKeyError("E11000"))
    assert not ledger.is_unavailable(ValueError("bad amount"))
