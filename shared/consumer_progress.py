"""How far a service's consumers have come: consumer lag for ``/metrics``, and the catch-up gate.

Two questions are answered here from what this replica already knows, so that neither costs a
broker round trip per partition every time it is asked:

- **Consumer lag** (``crs_consumer_lag``): the end offset of each partition this replica holds
  (the high watermark of the consumer's latest fetch) minus the group's committed offset. The
  committed offsets are those of the batches this replica handled (FastStream commits right after
  the handler returns); a partition's committed offset is asked of the broker once, when this
  replica starts holding it and has handled nothing there yet.
- **Caught up** (:class:`CatchUp`): timers (SLA clocks, hold re-checks, ack time-outs) decide from
  the service's view, so they must not run on a view that is behind what is waiting on the topics
  after a start or an outage. The gate reads the end offsets of every partition of every topic the
  service consumes, once, and opens when each group has committed up to them. It closes again when
  a handler, a timer or the sweeper reports an outage, and reads new targets once the database
  answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition

from shared.metrics import PartitionLag, lag_of

log = structlog.get_logger(__name__)

WAITING_LOG_EVERY_SECONDS = 10.0


@dataclass
class SubscriberProgress:
    """One subscriber (one consumer group) of this replica and the offsets it has committed."""

    group: str
    subscriber: Any
    """The FastStream subscriber; its aiokafka consumer is ``subscriber.consumer`` once started."""
    committed: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def consumer(self) -> Any | None:
        return getattr(self.subscriber, "consumer", None)

    def handled(self, records: Iterable[Any]) -> None:
        """A batch was handled and its offsets are being committed: they are the group's now."""
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            self.committed[partition] = max(self.committed.get(partition, 0), record.offset + 1)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked or newly assigned: another replica may have moved them since."""
        for partition in partitions:
            self.committed.pop(partition, None)

    def listener(self) -> ConsumerRebalanceListener:
        """The rebalance listener that keeps :attr:`committed` to what this replica holds."""
        return _ForgetOnRebalance(self)

    async def lags(self) -> list[PartitionLag]:
        """Lag of every partition assigned to this replica; no broker round trip once known."""
        consumer = self.consumer
        if consumer is None:
            return []
        assigned = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        if not assigned:
            return []
        ends: dict[TopicPartition, int | None] = {tp: consumer.highwater(tp) for tp in assigned}
        unfetched = [tp for tp, end in ends.items() if end is None]
        if unfetched:  # one request for all of them, only until the first fetch of each
            ends.update(await consumer.end_offsets(unfetched))
        unknown = [tp for tp in assigned if tp not in self.committed]
        if unknown:
            for tp, offset in (await committed_offsets(consumer, unknown)).items():
                # A batch handled while the broker answered is newer than what it answered.
                self.committed[tp] = max(self.committed.get(tp, offset), offset)
        return [
            PartitionLag(
                group=self.group,
                topic=tp.topic,
                partition=tp.partition,
                lag=lag_of(ends[tp] or 0, self.committed[tp], 0),
            )
            for tp in assigned
        ]


class _ForgetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, progress: SubscriberProgress) -> None:
        self._progress = progress

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._progress.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._progress.forget(assigned)


async def committed_offsets(consumer: Any, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
    """The group's committed offset of each partition; where it never committed, the first offset."""
    # One request per partition (aiokafka asks for one at a time): issued together.
    found = await asyncio.gather(*(consumer.committed(tp) for tp in partitions))
    offsets = dict(zip(partitions, found, strict=True))
    never = [tp for tp, offset in offsets.items() if offset is None]
    beginnings = await consumer.beginning_offsets(never) if never else {}
    return {tp: offset if offset is not None else beginnings[tp] for tp, offset in offsets.items()}


@dataclass(frozen=True)
class Behind:
    """A partition a group has not committed up to its target yet."""

    group: str
    topic: str
    partition: int
    committed: int
    target: int


class CatchUp:
    """Whether every consumer group of the service has read what was waiting at start or after an outage.

    Closed at start. :meth:`ready` reads the targets (end offsets of every partition of every topic
    the groups subscribe to, all partitions, not only this replica's: a timer acts on every
    request in the database) once the database answers, then opens when every group's committed
    offsets have reached them. :meth:`fell_behind` closes it again. While closed, each call costs
    a few broker requests; once open, nothing.
    """

    def __init__(
        self,
        subscribers: Sequence[SubscriberProgress],
        *,
        database_answers: Callable[[], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._subscribers = subscribers
        self._database_answers = database_answers
        self._clock = clock
        self._open = False
        self._targets: dict[tuple[str, TopicPartition], int] | None = None
        self._closed_at = clock()
        self._logged_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._open

    def fell_behind(self, reason: str) -> None:
        """An outage (or a failure that may be one): the view may be behind again."""
        if self._open:
            log.warning("catch_up.closed", reason=reason)
            self._closed_at = self._clock()
        self._open = False
        self._targets = None

    async def ready(self) -> bool:
        """Whether timers may run now: every group has committed what was waiting for it."""
        if self._open:
            return True
        async with self._lock:
            if self._open:
                return True
            try:
                behind = await self._behind()
            except Exception as error:  # the broker mid-rebalance or away: ask again later
                log.info("catch_up.check_failed", error=f"{type(error).__name__}: {error}", exc_info=error)
                self._targets = None
                return False
            if behind is None or behind:
                self._log_waiting(behind)
                return False
            self._open = True
            log.info("catch_up.reached", waited_seconds=round(self._clock() - self._closed_at, 1))
            return True

    async def _behind(self) -> list[Behind] | None:
        """What is still behind its target; None while the targets cannot be read yet."""
        if self._targets is None:
            if not await self._database_answers():
                return None
            self._targets = await self._read_targets()
            if self._targets is None:
                return None
        behind: list[Behind] = []
        for progress in self._subscribers:
            targets = {tp: end for (group, tp), end in self._targets.items() if group == progress.group}
            if not targets:
                continue
            consumer = progress.consumer
            if consumer is None:
                return None
            known = {tp: progress.committed[tp] for tp in targets if tp in progress.committed}
            asked = await committed_offsets(consumer, [tp for tp in targets if tp not in known])
            for tp, target in targets.items():
                committed = known.get(tp, asked.get(tp, 0))
                if committed < target:
                    behind.append(Behind(progress.group, tp.topic, tp.partition, committed, target))
        return behind

    async def _read_targets(self) -> dict[tuple[str, TopicPartition], int] | None:
        targets: dict[tuple[str, TopicPartition], int] = {}
        for progress in self._subscribers:
            consumer = progress.consumer
            if consumer is None:
                return None
            partitions: list[TopicPartition] = []
            for topic in sorted(consumer.subscription()):
                numbers = consumer.partitions_for_topic(topic)
                if not numbers:  # metadata not loaded yet
                    return None
                partitions += [TopicPartition(topic, number) for number in sorted(numbers)]
            if partitions:
                ends = await consumer.end_offsets(partitions)
                targets.update({(progress.group, tp): end for tp, end in ends.items()})
        return targets

    def _log_waiting(self, behind: list[Behind] | None) -> None:
        now = self._clock()
        if now - self._logged_at < WAITING_LOG_EVERY_SECONDS:
            return
        self._logged_at = now
        if behind is None:
            log.info("catch_up.waiting", detail="targets not read yet (database or broker not answering)")
            return
        log.info(
            "catch_up.waiting",
            partitions_behind=len(behind),
            records_behind=sum(item.target - item.committed for item in behind),
            first=[
                f"{item.group} {item.topic}/{item.partition} {item.committed}<{item.target}"
                for item in behind[:3]
            ],
        )
