"""Poison records on the real broker: each is dead-lettered once, and nothing else waits for it.

A batch subscriber that lets an error out rewinds *every* partition its batch came from, so one
poison record used to stop a service's whole subscription: valid records on its own partition and
on the others waited behind it forever, while the batch was fetched again and again. Here poison
and valid records go to explicit partitions of each inbound topic; every valid one must be
processed, every poison one dead-lettered exactly once, and the consumer group must catch up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from crs.io import TopicRecord, producer
from services.intake.app import build_app as build_intake
from services.intake.domain import crm_request_id, email_request_id
from services.intake.settings import IntakeSettings
from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from services.validation.app import build_app as build_validation
from services.validation.settings import ValidationSettings
from shared.topics import (
    APPROVALS,
    CRM_REQUESTS,
    CUSTOMERS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    REQUEST_CAPTURED,
    dead_letter_topic,
)
from tests.e2e.scenario import new_world
from tests.support import (
    Servers,
    isolated_settings,
    mongo,
    records_now,
    running_service,
    unique,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.integration

PARTITIONS = (0, 1, 2, 3)

DEEP_NESTING = b"[" * 100_000
LONG_NUMBER = b'{"case_id": "X", "n": ' + b"7" * 5_000 + b"}"


def lone_surrogate(field: str, other_fields: dict[str, Any]) -> bytes:
    """A record whose ``field`` is an escaped lone surrogate: valid JSON, not Unicode text."""
    rest = json.dumps({name: value for name, value in other_fields.items() if name != field})[1:-1]
    return ("{" + f'"{field}": "CASE-\\ud800", ' + rest + "}").encode()


@dataclass(frozen=True)
class Sent:
    topic: str
    partition: int
    offset: int
    key: str


async def send(
    client: AIOKafkaProducer,
    topic: str,
    partition: int,
    key: str,
    value: bytes,
    *,
    headers: list[tuple[str, bytes]] | None = None,
) -> Sent:
    metadata = await client.send_and_wait(
        topic, value, key=key.encode(), partition=partition, headers=headers
    )
    return Sent(topic, metadata.partition, metadata.offset, key)


async def send_json(client: AIOKafkaProducer, topic: str, partition: int, key: str, value: Any) -> Sent:
    return await send(client, topic, partition, key, json.dumps(value).encode())


def dead_letter_of(record: TopicRecord, poison: Sequence[Sent]) -> Sent | None:
    for sent in poison:
        if (
            record.headers.get("x-original-topic") == sent.topic
            and record.headers.get("x-original-partition") == str(sent.partition)
            and record.headers.get("x-original-offset") == str(sent.offset)
        ):
            return sent
    return None


async def dead_lettered_once_each(
    servers: Servers, poison: Sequence[Sent], service: str
) -> dict[Sent, TopicRecord]:
    """Wait for a dead letter of every poison record, then check none came twice (no hot loop)."""
    topics = sorted({dead_letter_topic(sent.topic) for sent in poison})

    def ours(record: TopicRecord) -> bool:
        return (
            record.headers.get("x-failed-service") == service and dead_letter_of(record, poison) is not None
        )

    await wait_for_records(servers, topics, ours, count=len(poison), timeout=60)
    await asyncio.sleep(3)  # a hot loop would dead-letter them again meanwhile
    letters = await records_now(servers, topics, ours)
    found: dict[Sent, TopicRecord] = {}
    for record in letters:
        sent = dead_letter_of(record, poison)
        assert sent is not None
        assert sent not in found, f"{sent} dead-lettered more than once"
        found[sent] = record
    assert set(found) == set(poison)
    return found


async def wait_caught_up(servers: Servers, group: str, topic: str) -> None:
    """Wait until ``group`` has committed every partition of ``topic`` up to its end."""
    await wait_until(partial(caught_up, servers, group, topic), timeout=30)


async def caught_up(servers: Servers, group: str, topic: str) -> bool:
    """Whether ``group`` has committed every partition of ``topic`` up to its end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, partition) for partition in PARTITIONS]
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            if (await consumer.committed(partition) or 0) < ends[partition]:
                return False
        return True
    finally:
        await consumer.stop()


async def test_poison_on_one_partition_holds_up_no_valid_case_or_email_on_any_partition(
    servers: Servers,
) -> None:
    settings = isolated_settings(IntakeSettings)
    cases = {partition: unique("CASE") for partition in PARTITIONS}
    late_cases = {partition: unique("CASE") for partition in PARTITIONS}
    emails = {partition: f"<{unique('mail').lower()}@acme.example>" for partition in PARTITIONS}
    world = new_world()
    async with (
        running_service(build_intake, settings, servers),
        producer(servers.bootstrap_servers) as client,
    ):
        poison = [
            await send(client, CRM_REQUESTS, 0, unique("DEEP"), DEEP_NESTING),
            await send(client, CRM_REQUESTS, 2, unique("LONG"), LONG_NUMBER),
            await send(
                client, CRM_REQUESTS, 1, unique("SURR"), lone_surrogate("case_id", world.dispute("x"))
            ),
            await send(client, EMAIL_REQUESTS, 0, unique("DEEP"), DEEP_NESTING),
            await send(
                client, EMAIL_REQUESTS, 3, unique("SURR"), lone_surrogate("message_id", world.email("x"))
            ),
            # Headers FastStream itself used to trip on before any handler ran.
            await send(
                client,
                CRM_REQUESTS,
                1,
                unique("JSON"),
                b"{not json",
                headers=[("content-type", b"application/json")],
            ),
            await send(
                client, EMAIL_REQUESTS, 2, unique("HDR"), b"{}", headers=[("x-note", b"\xff\xfe not utf-8")]
            ),
        ]
        for partition in PARTITIONS:  # valid ones behind the poison, on its partition and the others
            await send_json(
                client, CRM_REQUESTS, partition, cases[partition], world.dispute(cases[partition])
            )
            message = world.email(unique("m")) | {"message_id": emails[partition]}
            await send_json(client, EMAIL_REQUESTS, partition, emails[partition], message)
        # A second round of poison, then valid cases again: still no partition waits.
        poison.append(await send(client, CRM_REQUESTS, 3, unique("DEEP"), DEEP_NESTING))
        for partition in PARTITIONS:
            await send_json(
                client, CRM_REQUESTS, partition, late_cases[partition], world.dispute(late_cases[partition])
            )

        wanted = {crm_request_id(case) for case in (*cases.values(), *late_cases.values())}
        wanted |= {email_request_id(message_id) for message_id in emails.values()}
        captured = await wait_for_records(
            servers, [REQUEST_CAPTURED], lambda r: r.key in wanted, count=len(wanted), timeout=60
        )
        letters = await dead_lettered_once_each(servers, poison, "intake")
        for topic in (CRM_REQUESTS, EMAIL_REQUESTS):
            await wait_caught_up(servers, f"{settings.consumer_group}.{topic}", topic)

    assert {record.key for record in captured} == wanted
    reasons = sorted(record.headers["x-error-reason"] for record in letters.values())
    assert reasons == sorted(
        [
            "malformed_json",
            "invalid_message",
            "too_deeply_nested",
            "malformed_json",
            "invalid_encoding",
            "too_deeply_nested",
            "invalid_encoding",
            "too_deeply_nested",
        ]
    )
    long_number = next(record for sent, record in letters.items() if sent.key.startswith("LONG"))
    assert "4300" in long_number.headers["x-error"]
    assert all(record.raw for record in letters.values())


async def test_poison_on_a_reference_topic_holds_up_no_valid_record(servers: Servers) -> None:
    settings = isolated_settings(ValidationSettings)
    customers = {partition: new_world().customer for partition in PARTITIONS}
    async with (
        running_service(build_validation, settings, servers),
        producer(servers.bootstrap_servers) as client,
    ):
        poison = [
            await send(client, CUSTOMERS, 0, unique("DEEP"), DEEP_NESTING),
            await send(client, CUSTOMERS, 1, unique("LONG"), LONG_NUMBER),
            await send(client, CUSTOMERS, 2, unique("SURR"), lone_surrogate("customer_id", {"name": "x"})),
        ]
        for partition, customer in customers.items():
            await send_json(client, CUSTOMERS, partition, customer["customer_id"], customer)
        view = mongo(servers)[settings.database].customers

        async def all_stored() -> bool:
            ids = [customer["customer_id"] for customer in customers.values()]
            return await view.count_documents({"_id": {"$in": ids}}) == len(ids)

        await wait_until(all_stored, timeout=60)
        await dead_lettered_once_each(servers, poison, "validation")
        await wait_caught_up(servers, f"{settings.consumer_group}.{CUSTOMERS}", CUSTOMERS)


async def test_poison_on_the_approval_and_ack_topics_holds_up_no_valid_decision(servers: Servers) -> None:
    settings = isolated_settings(ResolutionSettings)
    decisions = {
        partition: {
            "request_id": unique("REQ"),
            "decision": "approve",
            "approver": "lena.lead",
            "role": "team_lead",
            "decided_at": "2026-11-22T10:00:00Z",
        }
        for partition in PARTITIONS
    }
    acks = {
        partition: {"resolution_id": unique("RES"), "request_id": unique("REQ"), "status": "posted"}
        for partition in PARTITIONS
    }
    async with (
        running_service(build_resolution, settings, servers),
        producer(servers.bootstrap_servers) as client,
    ):
        poison = [
            await send(client, APPROVALS, 0, unique("DEEP"), DEEP_NESTING),
            await send(client, APPROVALS, 1, unique("LONG"), LONG_NUMBER),
            await send(client, APPROVALS, 2, unique("SURR"), lone_surrogate("request_id", decisions[0])),
            await send(client, ERP_ACKS, 3, unique("DEEP"), DEEP_NESTING),
        ]
        valid = [
            *[
                await send_json(client, APPROVALS, partition, decision["request_id"], decision)
                for partition, decision in decisions.items()
            ],
            *[
                await send_json(client, ERP_ACKS, partition, ack["request_id"], ack)
                for partition, ack in acks.items()
            ],
        ]
        await dead_lettered_once_each(servers, poison, "resolution")
        # Decisions and acks for requests resolution does not know: each is handled by the service
        # (read, keyed, refused by the domain with its reason), which proves nothing held it up.
        handled = await dead_lettered_once_each(servers, valid, "resolution")
        for topic in (APPROVALS, ERP_ACKS):
            await wait_caught_up(servers, f"{settings.consumer_group}.{topic}", topic)
    assert {record.headers["x-error-reason"] for record in handled.values()} == {
        "unknown_request",
        "unknown_resolution",
    }
