"""Publishing from the outbox: a request's events in commit order, and an entry the broker refuses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel

from shared.delivery import Inbound, LedgerTransaction, MessageOrigin, OutgoingMessage, ReliableConsumer
from tests.unit.fakes import FakeLedger, RecordingPublisher


class Step(BaseModel):
    request_id: str
    step: int
    size: int = 10


async def emit_step(step: Step, tx: LedgerTransaction, _: MessageOrigin) -> None:
    tx.emit(OutgoingMessage(f"{step.request_id}-{step.step}", "status.v1", step.request_id, b"x" * step.size))


class TooLarge(Exception):
    """What a producer raises for a record over its limit."""


@dataclass
class LimitedPublisher(RecordingPublisher):
    """A broker that takes records up to ``limit`` bytes and refuses larger ones for good."""

    limit: int = 100
    refused: list[str] = field(default_factory=list)

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        if len(value) > self.limit:
            self.refused.append(headers["x-event-id"])
            raise TooLarge(f"{len(value)} bytes")
        return await super().__call__(value, topic=topic, key=key, headers=headers)


async def step(reliable: ReliableConsumer, request_id: str, number: int, size: int = 10) -> None:
    value = json.dumps({"request_id": request_id, "step": number, "size": size}).encode()
    await reliable.consume_batch(
        [Inbound(value, MessageOrigin("steps.v1", 0, number, request_id))],
        model=Step,
        idempotency_key=lambda message, _: f"step:{message.request_id}:{message.step}",
        apply=emit_step,
    )


async def test_an_event_left_in_the_outbox_goes_out_before_the_next_event_of_its_request() -> None:
    ledger, publisher = FakeLedger(), RecordingPublisher(fail_next=1)
    reliable = ReliableConsumer("test", ledger, publisher)
    with pytest.raises(ConnectionError):
        await step(reliable, "REQ-1", 1)  # committed, not published
    await step(reliable, "REQ-2", 1)  # another request: nothing of REQ-1 goes with it
    await step(reliable, "REQ-1", 2)
    assert [sent[3]["x-event-id"] for sent in publisher.sent] == ["REQ-2-1", "REQ-1-1", "REQ-1-2"]
    assert await reliable.flush_outbox() == 0


async def test_an_entry_the_broker_refuses_for_good_is_set_aside_and_blocks_nothing() -> None:
    ledger, publisher = FakeLedger(), LimitedPublisher()
    reliable = ReliableConsumer(
        "test", ledger, publisher, refused_for_good=lambda error: isinstance(error, TooLarge)
    )
    await step(reliable, "REQ-1", 1, size=500)
    await step(reliable, "REQ-1", 2)
    await step(reliable, "REQ-1", 3)
    assert publisher.refused == ["REQ-1-1"]
    assert [sent[3]["x-event-id"] for sent in publisher.sent] == ["REQ-1-2", "REQ-1-3"]
    assert list(ledger.refused) == ["REQ-1-1"]
    assert "TooLarge" in ledger.refused["REQ-1-1"][1]
    assert await reliable.flush_outbox() == 0


@dataclass
class SlowBroker(RecordingPublisher):
    """Acknowledges only when the test says so: publishes stay in flight meanwhile."""

    pending: list[asyncio.Future[object]] = field(default_factory=list)
    handed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        self.sent.append((topic, key, value, headers))
        acknowledged: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.pending.append(acknowledged)
        async with self.handed:
            self.handed.notify_all()
        return acknowledged

    async def wait_until_handed(self, count: int) -> None:
        async with self.handed:
            await self.handed.wait_for(lambda: len(self.pending) >= count)

    def acknowledge_all(self) -> None:
        for acknowledged in self.pending:
            if not acknowledged.done():
                acknowledged.set_result(None)


async def test_an_event_still_in_flight_is_not_sent_again_by_the_next_event_of_its_request() -> None:
    """The ERP may acknowledge a posting before it is marked: the ack's status must not resend it.

    The consumer goes on while a batch's events wait for the broker's acknowledgement; the next
    batch's events are handed over only once they are settled, so they cannot overtake them."""
    ledger, broker = FakeLedger(), SlowBroker()
    reliable = ReliableConsumer("test", ledger, broker)
    await step(reliable, "REQ-1", 1)  # handed to the producer, not acknowledged yet: the batch is done
    closing = asyncio.create_task(step(reliable, "REQ-1", 2))
    await asyncio.sleep(0.05)
    assert len(broker.sent) == 1, "the next event waits until the one in flight is settled"
    broker.acknowledge_all()
    await broker.wait_until_handed(2)
    broker.acknowledge_all()
    await closing
    await reliable.settle_published()
    assert [sent[3]["x-event-id"] for sent in broker.sent] == ["REQ-1-1", "REQ-1-2"]
    assert await reliable.flush_outbox() == 0


@dataclass
class LosingBroker(RecordingPublisher):
    """Takes every record, then fails the acknowledgement of the next ``lose`` of them."""

    lose: int = 0

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        self.sent.append((topic, key, value, headers))
        acknowledged: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.lose:
            self.lose -= 1
            acknowledged.set_exception(ConnectionError("the leader went away"))
        else:
            acknowledged.set_result(None)
        return acknowledged


async def test_an_event_whose_acknowledgement_failed_goes_out_again_before_anything_newer() -> None:
    """The batch that emitted it is done by then (its offset may be committed): the event is in the
    outbox, and the next publish sends it first, before any newer event of any request."""
    ledger, broker = FakeLedger(), LosingBroker(lose=1)
    reliable = ReliableConsumer("test", ledger, broker)
    await step(reliable, "REQ-1", 1)  # handed over; its acknowledgement fails in the background
    await step(reliable, "REQ-2", 1)
    await reliable.settle_published()
    assert [sent[3]["x-event-id"] for sent in broker.sent] == ["REQ-1-1", "REQ-1-1", "REQ-2-1"]
    assert await reliable.flush_outbox() == 0


async def test_an_acknowledgement_that_fails_again_reaches_the_next_batch() -> None:
    """The broker still gone: the next batch fails (the subscriber takes it again), nothing is lost,
    and the first event still goes out before anything newer once the broker is back."""
    ledger, broker = FakeLedger(), LosingBroker(lose=2)
    reliable = ReliableConsumer("test", ledger, broker)
    await step(reliable, "REQ-1", 1)
    with pytest.raises(ConnectionError):
        await step(reliable, "REQ-2", 1)  # committed; REQ-1-1 failed again before it
    await step(reliable, "REQ-2", 1)  # the subscriber takes the batch again
    await step(reliable, "REQ-3", 1)
    await reliable.settle_published()
    assert await reliable.flush_outbox() == 0
    sent = [one[3]["x-event-id"] for one in broker.sent]
    assert sent == ["REQ-1-1", "REQ-1-1", "REQ-1-1", "REQ-2-1", "REQ-3-1"]
