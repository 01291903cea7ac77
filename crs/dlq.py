"""`crs dlq list | show | replay`: inspect dead letters and send them back once fixed.

A dead letter (``<topic>.dlq``, written by ``shared.delivery``) holds the original bytes and key,
with headers saying why it failed and where it came from. Each is named by its place,
``<dlq topic>:<partition>:<offset>``. Replaying sends the original bytes and key back to the one
service that failed on it (``x-failed-service``), on that service's own replay topic
``replays.<service>.v1``, with headers naming the original topic, partition, offset and key and
the dead letter (``x-replayed-from``); the service hands it to the handler of the original topic
as if read from there. Not to the original topic: every consumer of that one would read it again,
so a record audit failed on, replayed on ``erp.resolutions.v1``, would reach the ERP a second
time. A dead letter that names no service of ours (written before the header existed, or by a
foreign tool) goes to its original topic, as before.

Audit and replays: a replay for audit is recorded at its original place (topic, partition,
offset), as if audit had not failed on it, so its record and hash chains hold the original once.
A replay for another service is not on a request topic, so audit does not record the replay
itself (``crs_ops.replays`` does); what the service emits on handling it, audit records as usual.

The replay is recorded in the ``crs_ops`` database (``replays``), so the same dead letter is not
sent twice by accident (``--force`` sends it again; the consuming services are idempotent anyway,
so a second copy of a message they already processed changes nothing).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import ReplaceOne

from crs.io import TopicRecord, producer
from crs.progress import Progress
from shared.mongo import build_mongo_client
from shared.topics import (
    CONSUMED_TOPICS,
    DLQ_SUFFIX,
    REPLAY_FOR,
    REPLAY_ORIGINAL_KEY,
    REPLAY_ORIGINAL_OFFSET,
    REPLAY_ORIGINAL_PARTITION,
    REPLAY_ORIGINAL_TOPIC,
    REPLAYED_SERVICES,
    dead_letter_topic,
    replay_topic,
)

OPS_DATABASE = "crs_ops"
REPLAYED_FROM = "x-replayed-from"


def dead_letter_topics(only: Sequence[str] | None = None) -> list[str]:
    """The DLQ topics to read: all of them, or those named (by DLQ or original topic name)."""
    every = [dead_letter_topic(topic) for topic in CONSUMED_TOPICS]
    if not only:
        return every
    wanted = {name if name.endswith(DLQ_SUFFIX) else dead_letter_topic(name) for name in only}
    return [topic for topic in every if topic in wanted] + sorted(wanted - set(every))


def letter_id(record: TopicRecord) -> str:
    return f"{record.topic}:{record.partition}:{record.offset}"


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter and whether (and when) it was replayed."""

    record: TopicRecord
    replayed_at: datetime | None = None

    @property
    def id(self) -> str:
        return letter_id(self.record)

    @property
    def reason(self) -> str:
        return self.record.headers.get("x-error-reason", "?")

    @property
    def original_topic(self) -> str:
        return self.record.headers.get("x-original-topic") or self.record.topic.removesuffix(DLQ_SUFFIX)

    @property
    def original_key(self) -> str | None:
        return self.record.headers.get("x-original-key") or self.record.key

    @property
    def failed_service(self) -> str | None:
        """The service of ours that gave up on it, if the dead letter names one."""
        service = self.record.headers.get("x-failed-service")
        return service if service in REPLAYED_SERVICES else None


@dataclass(frozen=True)
class ReplayTarget:
    """Where a replay goes: a topic and the headers that say what it is."""

    topic: str
    headers: list[tuple[str, bytes]]


def replay_target(letter: DeadLetter) -> ReplayTarget:
    """The failed service's replay topic with the original's place; else the original topic."""
    replayed_from = (REPLAYED_FROM, letter.id.encode())
    service = letter.failed_service
    if service is None:
        return ReplayTarget(letter.original_topic, [replayed_from])
    headers = letter.record.headers
    return ReplayTarget(
        replay_topic(service),
        [
            replayed_from,
            (REPLAY_FOR, service.encode()),
            (REPLAY_ORIGINAL_TOPIC, letter.original_topic.encode()),
            (REPLAY_ORIGINAL_PARTITION, headers.get("x-original-partition", "0").encode()),
            (REPLAY_ORIGINAL_OFFSET, headers.get("x-original-offset", "-1").encode()),
            (REPLAY_ORIGINAL_KEY, (letter.original_key or "").encode()),
        ],
    )


def select(
    letters: Iterable[DeadLetter], *, reason: str | None = None, ids: Sequence[str] = ()
) -> list[DeadLetter]:
    """The dead letters with this reason and among these ids (either left out: any)."""
    return [
        letter
        for letter in letters
        if (reason is None or letter.reason == reason) and (not ids or letter.id in ids)
    ]


async def read_dead_letters(bootstrap_servers: str, topics: Sequence[str]) -> list[TopicRecord]:
    """Every record now on ``topics`` (those that exist), read to their current end without a group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[TopicRecord] = []
    try:
        existing = await consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            if topic in existing
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return found
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1_000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        found.append(_topic_record(record))
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return found


def _topic_record(record: Any) -> TopicRecord:
    raw: bytes = record.value or b""
    try:
        value: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        value = raw.decode("utf-8", errors="replace")
    return TopicRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key is not None else None,
        value=value,
        raw=raw,
        headers={name: data.decode(errors="replace") for name, data in record.headers or ()},
        timestamp_ms=record.timestamp,
    )


async def load_dead_letters(
    bootstrap_servers: str, mongodb_uri: str, topics: Sequence[str], *, ops_database: str = OPS_DATABASE
) -> list[DeadLetter]:
    """The dead letters on ``topics``, each with when it was replayed (if it was)."""
    records = await read_dead_letters(bootstrap_servers, topics)
    client = build_mongo_client(mongodb_uri)
    try:
        replays = {
            found["_id"]: found.get("replayed_at")
            async for found in client[ops_database].replays.find(
                {"_id": {"$in": [letter_id(r) for r in records]}}
            )
        }
    finally:
        await client.close()
    return [DeadLetter(record, replays.get(letter_id(record))) for record in records]


def _when(timestamp_ms: int) -> str:
    return (
        datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def format_list(letters: Sequence[DeadLetter], *, latest: int = 10) -> str:
    """Counts per DLQ topic and reason, then the latest entries."""
    if not letters:
        return "no dead letters"
    per_topic = Counter(letter.record.topic for letter in letters)
    per_reason = Counter((letter.record.topic, letter.reason) for letter in letters)
    lines = ["dead letters by topic and reason"]
    for topic, count in sorted(per_topic.items()):
        replayed = sum(1 for letter in letters if letter.record.topic == topic and letter.replayed_at)
        lines.append(f"  {topic:<32} {count:>6}  ({replayed} replayed)")
        lines += [
            f"    {reason:<30} {number:>6}"
            for (where, reason), number in sorted(per_reason.items())
            if where == topic
        ]
    lines += ["", f"latest {min(latest, len(letters))}"]
    newest = sorted(letters, key=lambda letter: letter.record.timestamp_ms)[-latest:]
    for letter in reversed(newest):
        mark = " replayed" if letter.replayed_at else ""
        lines.append(
            f"  {_when(letter.record.timestamp_ms)} {letter.id:<40} {letter.reason:<20} "
            f"{letter.record.headers.get('x-failed-service', '-'):<11} key={letter.original_key}{mark}"
        )
    return "\n".join(lines)


def format_letter(letter: DeadLetter) -> str:
    """One dead letter in full: where it is, its headers and its value (pretty when JSON)."""
    record = letter.record
    value = (
        json.dumps(record.value, indent=2, ensure_ascii=False)
        if isinstance(record.value, dict | list)
        else str(record.value)
    )
    lines = [
        f"dead letter {letter.id}",
        f"key: {record.key}",
        f"dead-lettered at: {_when(record.timestamp_ms)}",
        f"replayed: {letter.replayed_at.isoformat() if letter.replayed_at else 'no'}",
        "headers:",
        *(f"  {name}: {data}" for name, data in sorted(record.headers.items())),
        f"value ({len(record.raw)} bytes):",
        value,
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ReplayOutcome:
    replayed: list[str]
    skipped: list[str]
    """Already replayed before, left alone without --force."""
    sent_to: dict[str, str] = field(default_factory=dict)
    """The topic each replayed dead letter was (or would be) sent to, by id."""


async def replay(
    bootstrap_servers: str,
    mongodb_uri: str,
    letters: Sequence[DeadLetter],
    *,
    force: bool = False,
    dry_run: bool = False,
    progress: bool | None = None,
    now: datetime | None = None,
    ops_database: str = OPS_DATABASE,
) -> ReplayOutcome:
    """Send the dead letters' original bytes back to the service that failed on each, and record that."""
    to_send = [letter for letter in letters if force or letter.replayed_at is None]
    skipped = [letter.id for letter in letters if letter not in to_send]
    targets = {letter.id: replay_target(letter) for letter in to_send}
    sent_to = {letter_id: target.topic for letter_id, target in targets.items()}
    if dry_run or not to_send:
        return ReplayOutcome([letter.id for letter in to_send], skipped, sent_to)
    counter = Progress("replay", total=len(to_send), unit="dead letters", enabled=progress)
    replayed_at = now or datetime.now(UTC)
    async with producer(bootstrap_servers) as client:
        for letter in to_send:
            key = letter.original_key
            target = targets[letter.id]
            await client.send_and_wait(
                target.topic,
                letter.record.raw,
                key=key.encode() if key is not None else None,
                headers=target.headers,
            )
            counter.advance()
    counter.finish()
    mongo = build_mongo_client(mongodb_uri)
    try:
        await mongo[ops_database].replays.bulk_write(
            [
                ReplaceOne(
                    {"_id": letter.id},
                    {
                        "_id": letter.id,
                        "replayed_at": replayed_at,
                        "original_topic": letter.original_topic,
                        "sent_to": sent_to[letter.id],
                        "key": letter.original_key,
                        "reason": letter.reason,
                    },
                    upsert=True,
                )
                for letter in to_send
            ]
        )
    finally:
        await mongo.close()
    return ReplayOutcome([letter.id for letter in to_send], skipped, sent_to)
