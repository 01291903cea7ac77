"""The delivery guarantees on fakes: idempotence, dead letters, retries, crash recovery."""

from __future__ import annotations

import asyncio
import json
from typing import Any

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


# --- Poison messages: nothing a record can contain escapes consume_batch -------------------------


def raw_inbound(value: bytes, offset: int, key: str = "K-1") -> Inbound:
    return Inbound(
        value, MessageOrigin(topic="orders.v1", partition=0, offset=offset, key=key, timestamp_ms=1)
    )


POISON = [
    (b"[" * 100_000, "too_deeply_nested"),
    (b'{"order_id": "O-9", "quantity": ' + b"1" * 5_000 + b"}", "malformed_json"),
    (b'{"order_id": "\\ud800", "quantity": 1}', "invalid_encoding"),
    (b'{"order_id": "O-9", "quantity": 1, "\\udfff": 2}', "invalid_encoding"),
    (
        b'{"order_id": "O-9", "quantity": 1, "x": ' + b'{"a":' * 80 + b"1" + b"}" * 80 + b"}",
        "too_deeply_nested",
    ),
    (b'{"order_id": "O-9", "quantity": 1e999999}', "invalid_message"),
]


@pytest.mark.parametrize(
    ("value", "reason"),
    POISON,
    ids=["deep-array", "long-number", "surrogate-value", "surrogate-name", "deep-object", "infinite"],
)
async def test_a_poison_record_is_dead_lettered_and_the_valid_ones_around_it_are_processed(
    value: bytes, reason: str
) -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler()
    batch = [raw_inbound(ORDER, 1, "O-1"), raw_inbound(value, 2, "K-POISON"), inbound("O-2", 3)]
    reliable = ReliableConsumer("test", ledger, publisher, DeliveryPolicy(max_message_bytes=1_000_000))
    await reliable.consume_batch(
        batch, model=Order, idempotency_key=lambda order, _: f"order:{order.order_id}", apply=handler
    )
    assert ledger.processed == {"order:O-1", "order:O-2"}
    (dead,) = publisher.on("orders.v1.dlq")
    assert (dead[1], dead[3]["x-error-reason"]) == ("K-POISON", reason)
    assert dead[3]["x-error"]


async def test_an_invalid_message_hook_that_breaks_still_dead_letters_and_goes_on() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler()

    async def breaking_hook(
        payload: dict[str, object], problems: str, origin: MessageOrigin
    ) -> list[OutgoingMessage]:
        str(payload["order_id"]).encode()  # what intake's hook did with a lone surrogate
        return []

    batch = [raw_inbound(b'{"order_id": "\\ud800", "quantity": "x"}', 1), inbound("O-2", 2)]
    await consumer(ledger, publisher).consume_batch(
        batch,
        model=Order,
        idempotency_key=lambda order, _: f"order:{order.order_id}",
        apply=handler,
        on_invalid=breaking_hook,
    )
    assert [sent[3]["x-error-reason"] for sent in publisher.on("orders.v1.dlq")] == ["invalid_encoding"]
    assert ledger.processed == {"order:O-2"}


async def test_a_key_that_cannot_be_stored_is_refused_not_retried() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler()
    await consumer(ledger, publisher).consume_batch(
        [inbound("O-1", 1)],
        model=Order,
        idempotency_key=lambda order, _: f"order:{order.order_id}\ud800",
        apply=handler,
    )
    assert handler.calls == 0
    assert publisher.on("orders.v1.dlq")[0][3]["x-error-reason"] == "invalid_message"


async def test_the_sender_hook_sees_what_the_messages_before_it_in_the_batch_created() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler()
    seen: list[set[str]] = []

    async def hook(payload: dict[str, object], problems: str, origin: MessageOrigin) -> list[OutgoingMessage]:
        seen.append(set(ledger.processed))
        assert "quantity" in problems
        return [OutgoingMessage("rejected-O-1", "orders.status.v1", "O-1", b'{"status": "rejected"}')]

    batch = [inbound("O-1", 1), inbound("O-1", 2, quantity="many"), inbound("O-3", 3)]
    await consumer(ledger, publisher).consume_batch(
        batch,
        model=Order,
        idempotency_key=lambda order, _: f"order:{order.order_id}",
        apply=handler,
        on_invalid=hook,
    )
    assert seen == [{"order:O-1"}]
    assert [sent[0] for sent in publisher.sent] == [
        "orders.accepted.v1",
        "orders.status.v1",
        "orders.v1.dlq",
        "orders.accepted.v1",
    ]


async def test_a_dead_letter_whose_key_and_error_are_not_text_still_goes_out() -> None:
    ledger, publisher = FakeLedger(), RecordingPublisher()
    origin = MessageOrigin(topic="orders.v1", partition=0, offset=7, key="K-\ud800")
    await consumer(ledger, publisher).dead_letter(
        b"{}", origin, reason="invalid_message", detail="bad \udfff"
    )
    (dead,) = publisher.on("orders.v1.dlq")
    assert dead[1] is not None
    dead[1].encode()
    for value in dead[3].values():
        value.encode()
    assert "\\udfff" in dead[3]["x-error"]


async def test_a_dead_letter_too_large_for_a_record_is_cut_and_says_so() -> None:
    ledger, publisher = FakeLedger(), RecordingPublisher()
    reliable = ReliableConsumer(
        "test", ledger, publisher, DeliveryPolicy(max_message_bytes=1_000, max_record_bytes=100_000)
    )
    await consume(reliable, b'{"order_id": "' + b"x" * 500_000 + b'"}', Handler())
    (dead,) = publisher.on("orders.v1.dlq")
    assert dead[3]["x-error-reason"] == "message_too_large"
    assert dead[3]["x-value-truncated"] == "true"
    assert dead[3]["x-original-bytes"] == str(500_000 + 16)
    assert len(dead[2]) < 100_000


class Chatty(Handler):
    """Emits an event of the size the order asks for."""

    async def __call__(self, order: Order, tx: LedgerTransaction, _: MessageOrigin) -> None:
        self.calls += 1
        tx.emit(
            OutgoingMessage(
                f"evt-{order.order_id}", "orders.accepted.v1", order.order_id, b"x" * order.quantity
            )
        )


async def test_an_event_too_large_for_the_broker_fails_its_message_and_never_enters_the_outbox() -> None:
    ledger, publisher = FakeLedger(), RecordingPublisher()
    reliable = ReliableConsumer("test", ledger, publisher, DeliveryPolicy(max_record_bytes=70_000))
    told: list[str] = []

    async def hook(payload: dict[str, object], problems: str, origin: MessageOrigin) -> list[OutgoingMessage]:
        told.append(problems)
        return []

    batch = [
        inbound("O-1", 1, quantity=10),
        inbound("O-BIG", 2, quantity=80_000),
        inbound("O-3", 3, quantity=10),
    ]
    await reliable.consume_batch(
        batch,
        model=Order,
        idempotency_key=lambda o, _: f"order:{o.order_id}",
        apply=Chatty(),
        on_invalid=hook,
    )
    assert ledger.processed == {"order:O-1", "order:O-3"}
    assert "evt-O-BIG" not in ledger.outbox
    (dead,) = publisher.on("orders.v1.dlq")
    assert dead[3]["x-error-reason"] == "event_too_large"
    assert "max_record_bytes" in dead[3]["x-error"]
    assert len(told) == 1
    assert "70000" in told[0]


async def test_an_outbox_entry_the_broker_refuses_is_set_aside_and_the_entries_behind_it_go_out() -> None:
    ledger, publisher = FakeLedger(), RecordingPublisher()
    reliable = ReliableConsumer("test", ledger, publisher, DeliveryPolicy(max_record_bytes=70_000))
    for name, size in (("A", 10), ("HUGE", 100_000), ("B", 10)):
        message = OutgoingMessage(f"evt-{name}", "orders.accepted.v1", name, b"x" * size)
        ledger.outbox[message.message_id] = (f"order:{name}", message, False)

    assert await reliable.flush_outbox() == 3
    assert [sent[1] for sent in publisher.on("orders.accepted.v1")] == ["A", "B"]
    assert set(ledger.refused) == {"evt-HUGE"}
    assert "max_record_bytes" in ledger.refused["evt-HUGE"][1]
    assert await reliable.flush_outbox() == 0


async def test_a_record_the_broker_refuses_by_size_is_set_aside_not_resent_forever() -> None:
    from aiokafka.errors import MessageSizeTooLargeError

    class RefusesBig(RecordingPublisher):
        async def __call__(
            self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
        ) -> Any:
            if key == "BIG":
                raise MessageSizeTooLargeError("too big for this broker")
            return await super().__call__(value, topic=topic, key=key, headers=headers)

    ledger, publisher = FakeLedger(), RefusesBig()
    reliable = consumer(ledger, publisher)
    for name in ("A", "BIG", "B"):
        message = OutgoingMessage(f"evt-{name}", "orders.accepted.v1", name, b"{}")
        ledger.outbox[message.message_id] = (f"order:{name}", message, False)
    await reliable.flush_outbox()
    assert [sent[1] for sent in publisher.on("orders.accepted.v1")] == ["A", "B"]
    assert set(ledger.refused) == {"evt-BIG"}
    assert await reliable.flush_outbox() == 0


async def test_a_start_up_flush_that_fails_does_not_keep_the_service_from_starting() -> None:
    ledger, publisher = FakeLedger(), RecordingPublisher(fail_next=1)
    message = OutgoingMessage("evt-A", "orders.accepted.v1", "A", b"{}")
    ledger.outbox[message.message_id] = ("order:A", message, False)
    reliable = consumer(ledger, publisher)
    failures: list[BaseException] = []
    # The sweeper's first pass is the start-up flush: the broker is not there yet, which is
    # logged and reported, never raised; the next pass publishes.
    sweeper = asyncio.create_task(reliable.sweep_outbox(0.01, on_failure=failures.append))
    for _ in range(500):
        await asyncio.sleep(0.01)
        if publisher.on("orders.accepted.v1"):
            break
    sweeper.cancel()
    assert len(failures) == 1
    assert [sent[1] for sent in publisher.on("orders.accepted.v1")] == ["A"]


async def test_a_final_failure_while_the_database_does_not_answer_is_an_outage_not_the_message() -> None:
    ledger, publisher, handler = FakeLedger(fail_next_commits=3), RecordingPublisher(), Handler()
    ledger.commit_error = lambda: RuntimeError("operation exceeded time limit")
    ledger.down = True
    with pytest.raises(DatabaseUnavailable):
        await consume(consumer(ledger, publisher), ORDER, handler)
    assert publisher.on("orders.v1.dlq") == []


async def test_an_outage_cycle_does_not_dead_letter_the_batch_s_invalid_messages_again() -> None:
    ledger, publisher, handler = FakeLedger(fail_next_commits=3), RecordingPublisher(), Handler()
    reliable = consumer(ledger, publisher)
    batch = [raw_inbound(b"{not json", 1, "K-BAD"), inbound("O-1", 2)]

    async def once() -> None:
        await reliable.consume_batch(
            batch, model=Order, idempotency_key=lambda order, _: f"order:{order.order_id}", apply=handler
        )

    with pytest.raises(DatabaseUnavailable):
        await once()
    await once()  # the database is back: the batch comes back whole
    assert [sent[1] for sent in publisher.on("orders.v1.dlq")] == ["K-BAD"]
    assert ledger.processed == {"order:O-1"}


async def test_prepare_runs_on_each_accepted_message_before_its_transaction() -> None:
    ledger, publisher, handler = FakeLedger(), RecordingPublisher(), Handler()
    prepared: list[tuple[str, int]] = []

    async def prepare(order: Order) -> None:
        prepared.append((order.order_id, ledger.commits))

    await consumer(ledger, publisher).consume_batch(
        [inbound("O-1", 1), raw_inbound(b"[]", 2), inbound("O-2", 3)],
        model=Order,
        idempotency_key=lambda order, _: f"order:{order.order_id}",
        apply=handler,
        prepare=prepare,
    )
    assert prepared == [("O-1", 0), ("O-2", 0)]
    assert ledger.commits == 1


def test_mongodb_errors_of_an_outage_are_told_apart_whatever_their_form() -> None:
    from pymongo import AsyncMongoClient
    from pymongo.errors import (
        BulkWriteError,
        DuplicateKeyError,
        ExecutionTimeout,
        NetworkTimeout,
        NotPrimaryError,
        OperationFailure,
        WriteConcernError,
        WTimeoutError,
    )

    from shared.mongo import MongoLedger

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    ledger = MongoLedger(client, client.unit)
    unknown_commit = OperationFailure(
        "commit result unknown", code=50, details={"errorLabels": ["UnknownTransactionCommitResult"]}
    )
    outages: list[BaseException] = [
        NetworkTimeout("timed out"),
        NotPrimaryError("not primary"),
        ExecutionTimeout("operation exceeded time limit", code=50),
        WTimeoutError("waiting for replication timed out", code=64),
        WriteConcernError("write concern failed", code=64),
        unknown_commit,
        OperationFailure("primary stepped down", code=189),
        BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "timeout"}]}),
        TimeoutError(),
    ]
    wrapped = RuntimeError("the store failed")
    wrapped.__cause__ = NetworkTimeout("timed out")
    outages.append(wrapped)
    for error in outages:
        assert ledger.is_unavailable(error), error
    assert not ledger.is_unavailable(DuplicateKeyError("E11000"))
    assert not ledger.is_unavailable(OperationFailure("bad value", code=2))
    assert not ledger.is_unavailable(ValueError("bad amount"))
