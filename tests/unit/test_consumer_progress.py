"""Consumer lag from what the subscribers committed, and the gate that timers wait at."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import TopicPartition

from shared.consumer_progress import CatchUp, SubscriberProgress
from shared.metrics import PartitionLag

TOPIC = "orders.v1"


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


@dataclass
class FakeConsumer:
    """What an aiokafka consumer answers, counting the requests that would reach the broker."""

    ends: dict[TopicPartition, int]
    broker_committed: dict[TopicPartition, int | None]
    assigned: set[TopicPartition] = field(default_factory=set)
    fetched_highwater: dict[TopicPartition, int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.fetched_highwater.get(partition)

    def subscription(self) -> set[str]:
        return {TOPIC}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {partition.partition for partition in self.ends if partition.topic == topic}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.requests.append("end_offsets")
        return {partition: self.ends[partition] for partition in partitions}

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.requests.append("beginning_offsets")
        return dict.fromkeys(partitions, 0)

    async def committed(self, partition: TopicPartition) -> int | None:
        self.requests.append(f"committed {partition.partition}")
        return self.broker_committed[partition]


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


@dataclass
class Subscriber:
    consumer: FakeConsumer


def progress_of(consumer: FakeConsumer) -> SubscriberProgress:
    return SubscriberProgress(group="g", subscriber=Subscriber(consumer))


async def test_lag_is_read_without_asking_the_broker_once_the_committed_offsets_are_known() -> None:
    consumer = FakeConsumer(
        ends={tp(0): 10, tp(1): 5},
        broker_committed={tp(0): 4, tp(1): None},
        assigned={tp(0), tp(1)},
        fetched_highwater={tp(0): 10, tp(1): 5},
    )
    progress = progress_of(consumer)

    assert await progress.lags() == [PartitionLag("g", TOPIC, 0, 6), PartitionLag("g", TOPIC, 1, 5)]
    asked = len(consumer.requests)
    assert asked > 0  # once, for the offsets this replica has not learnt yet

    progress.handled([Record(TOPIC, 0, 4), Record(TOPIC, 0, 7), Record(TOPIC, 1, 2)])
    consumer.fetched_highwater[tp(0)] = 12
    for _ in range(5):
        lags = await progress.lags()
    assert lags == [PartitionLag("g", TOPIC, 0, 4), PartitionLag("g", TOPIC, 1, 2)]
    assert len(consumer.requests) == asked  # five scrapes, no broker request


async def test_a_rebalance_makes_the_replica_learn_a_partition_s_committed_offset_again() -> None:
    consumer = FakeConsumer(
        ends={tp(0): 10}, broker_committed={tp(0): 3}, assigned={tp(0)}, fetched_highwater={tp(0): 10}
    )
    progress = progress_of(consumer)
    progress.handled([Record(TOPIC, 0, 3)])
    assert await progress.lags() == [PartitionLag("g", TOPIC, 0, 6)]

    # Another replica held the partition for a while and committed up to 9.
    await progress.listener().on_partitions_revoked({tp(0)})
    consumer.broker_committed[tp(0)] = 9
    await progress.listener().on_partitions_assigned({tp(0)})
    assert await progress.lags() == [PartitionLag("g", TOPIC, 0, 1)]


async def answers() -> bool:
    return True


async def test_timers_wait_until_every_partition_is_committed_up_to_the_end_read_at_start() -> None:
    consumer = FakeConsumer(ends={tp(0): 10, tp(1): 4}, broker_committed={tp(0): 2, tp(1): 4})
    progress = progress_of(consumer)
    gate = CatchUp([progress], database_answers=answers)

    assert not await gate.ready()
    consumer.ends[tp(0)] = 50  # more arrives after start: not what the gate waits for
    progress.handled([Record(TOPIC, 0, 9)])  # this replica handled partition 0 up to the target
    assert await gate.ready()
    requests = len(consumer.requests)
    assert await gate.ready()
    assert len(consumer.requests) == requests  # open: nothing asked any more


async def test_after_an_outage_timers_wait_for_what_piled_up_once_the_database_answers() -> None:
    consumer = FakeConsumer(ends={tp(0): 10}, broker_committed={tp(0): 10})
    database_up = True

    async def database_answers() -> bool:
        return database_up

    gate = CatchUp([progress_of(consumer)], database_answers=database_answers)
    assert await gate.ready()

    gate.fell_behind("the database went away")
    database_up = False
    consumer.ends[tp(0)] = 30  # what piled up during the outage
    assert not await gate.ready()
    database_up = True
    assert not await gate.ready()  # targets read now: 30
    consumer.broker_committed[tp(0)] = 29
    assert not await gate.ready()
    consumer.broker_committed[tp(0)] = 30
    assert await gate.ready()


async def test_a_group_that_never_committed_has_caught_up_only_with_nothing_to_read() -> None:
    empty = FakeConsumer(ends={tp(0): 0}, broker_committed={tp(0): None})
    assert await CatchUp([progress_of(empty)], database_answers=answers).ready()
    waiting = FakeConsumer(ends={tp(0): 3}, broker_committed={tp(0): None})
    assert not await CatchUp([progress_of(waiting)], database_answers=answers).ready()
