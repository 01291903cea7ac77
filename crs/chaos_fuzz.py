"""`crs chaos fuzz`: bad messages on every inbound topic of a running stack, and what became of them.

For each inbound topic of the contract it publishes ``--per-topic`` bad messages (structure, types,
sizes, encodings, nesting, huge numbers, lone surrogates, operator-like values such as
``{"$gt": ""}``, limits one past the edge), interleaved with valid ones *on the same keys* (so a
valid message shares its partition, and sometimes its sender, with the bad ones around it). Then it
waits until every consumer group of the topic has committed past what it sent, and checks:

- every bad message was dead-lettered, with a reason, by every service that consumes the topic
  (and exactly once: a second dead letter of one record means a poison loop); CRM cases and emails
  whose sender could be identified count the ``rejected`` statuses too;
- every valid message was processed: its request exists in intake's store, its record in the
  reference views of validation and resolution, and no service refused it as unreadable;
- no partition stalled (a consumer group that does not get past what was sent within the time
  limit), and no service restarted (its pid changed).

The valid messages open new requests, customers, invoices, payments and contracts with ids of the
run's own (``FZ<run>-…``), and decisions and acks for requests nobody knows (which resolution
refuses with a reason of its domain, not as unreadable). Run it against a stack you can afford to
fill: with the defaults, 40,000 bad and 10,000 valid messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from crs.stack import SERVICES, StackConfig, stack_status
from services.audit.settings import AuditSettings
from services.intake.settings import IntakeSettings
from services.resolution.settings import ResolutionSettings
from services.validation.settings import ValidationSettings
from shared.delivery import SCREENING_REASONS
from shared.identity import crm_request_id, email_request_id
from shared.topics import (
    APPROVALS,
    CONTRACTS,
    CRM_REQUESTS,
    CUSTOMERS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    INVOICES,
    PAYMENTS,
    REQUEST_STATUS,
    dead_letter_topic,
)

INBOUND_TOPICS = (CRM_REQUESTS, EMAIL_REQUESTS, CUSTOMERS, INVOICES, PAYMENTS, CONTRACTS, APPROVALS, ERP_ACKS)
REFERENCE_VIEWS = {CUSTOMERS: "customers", INVOICES: "invoices", PAYMENTS: "payments", CONTRACTS: "contracts"}
CONSUMERS: dict[str, tuple[str, ...]] = {
    CRM_REQUESTS: ("intake",),
    EMAIL_REQUESTS: ("intake",),
    **dict.fromkeys(REFERENCE_VIEWS, ("validation", "resolution")),
    APPROVALS: ("resolution",),
    ERP_ACKS: ("resolution",),
}
"""The services that read each topic and dead-letter what they cannot read."""
AUDITED = frozenset({CRM_REQUESTS, EMAIL_REQUESTS, APPROVALS, ERP_ACKS})
"""Topics audit records as well (it keeps even what is not JSON, so it dead-letters nothing here)."""
REFUSED_AS_UNREADABLE = SCREENING_REASONS | {"handler_failed"}
STAMP = "2026-11-01T08:00:00Z"
OVERSIZE_BYTES = 600 * 1024  # above the services' 512 KiB message limit, below the producer's 1 MiB
UNICODE_TEXTS = (
    "Überhöhte Rechnung – bitte prüfen",
    "Facture erronée : montant différent du contrat",
    "請求書の金額が契約と異なります",
    "فاتورة خاطئة",
    "Invoice \u202egnorw\u202c amount 🧾💸",
    "Zoë Ångström e\u0301\u0301 ﷽",
)


@dataclass(frozen=True)
class Shape:
    """Where a topic's message keeps what the mutations aim at (dotted paths into the JSON)."""

    key_field: str
    other_id: str
    short_text: str
    enum_field: str
    timestamp: str
    money: str | None
    list_field: str | None
    list_item: Any
    list_limit: int


SHAPES = {
    CRM_REQUESTS: Shape(
        "case_id",
        "customer_id",
        "subject",
        "priority",
        "submitted_at",
        "disputed_amount",
        "invoice_ids",
        "INV-1",
        100,
    ),
    EMAIL_REQUESTS: Shape(
        "message_id", "from", "subject", "to", "received_at", None, "to", "a@b.example", 100
    ),
    CUSTOMERS: Shape(
        "customer_id",
        "name",
        "name",
        "status",
        "updated_at",
        "credit_limit",
        "contacts",
        {"name": "A"},
        1_000,
    ),
    INVOICES: Shape(
        "invoice_id",
        "customer_id",
        "lines.0.sku",
        "status",
        "updated_at",
        "total",
        "lines",
        {"sku": "S", "quantity": "1", "unit_price": "1.00"},
        10_000,
    ),
    PAYMENTS: Shape(
        "payment_id",
        "customer_id",
        "reference",
        "status",
        "updated_at",
        "amount",
        "applied_to",
        {"invoice_id": "I", "amount": "0.01"},
        10_000,
    ),
    CONTRACTS: Shape(
        "contract_id",
        "customer_id",
        "prices.0.sku",
        "currency",
        "updated_at",
        None,
        "prices",
        {"sku": "S", "unit_price": "1.00"},
        10_000,
    ),
    APPROVALS: Shape("request_id", "approver", "role", "decision", "decided_at", None, None, None, 0),
    ERP_ACKS: Shape(
        "request_id", "resolution_id", "erp_document_id", "status", "posted_at", None, None, None, 0
    ),
}


@dataclass(frozen=True)
class FuzzMessage:
    """One message to publish: valid (``kind == "valid"``) or bad, with the mutation that made it."""

    topic: str
    key: str
    value: bytes
    kind: str
    headers: tuple[tuple[str, bytes], ...] = ()
    source: str | None = None
    """The id the valid message creates (request, customer, …), checked in the services' stores."""


@dataclass(frozen=True)
class Sent:
    """A message as the broker took it."""

    message: FuzzMessage
    partition: int
    offset: int


@dataclass
class TopicFigures:
    """What became of one topic's messages."""

    topic: str
    bad_sent: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    valid_sent: int = 0
    processed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    dead_lettered_twice: int = 0
    not_dead_lettered: list[str] = field(default_factory=list)
    not_processed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.dead_lettered == self.bad_sent
            and self.processed == self.valid_sent
            and self.dead_lettered_twice == 0
        )


@dataclass
class FuzzReport:
    """The figures of one fuzz run: per topic, stalled partitions and restarted services."""

    bootstrap_servers: str
    per_topic: int
    seed: int
    topics: list[TopicFigures]
    stalled: list[str]
    restarts: list[str]
    seconds: float
    pids_checked: bool = True

    @property
    def ok(self) -> bool:
        """Every bad message dead-lettered once, every valid one processed, nothing stalled or restarted."""
        return all(figures.ok for figures in self.topics) and not self.stalled and not self.restarts

    def render(self) -> str:
        """The report as a table, then what went wrong (if anything), then the verdict."""
        lines = [
            f"fuzz of the stack at {self.bootstrap_servers}: {self.per_topic} bad messages per topic, "
            f"seed {self.seed}, {self.seconds:.1f} s",
            "",
            f"{'topic':<24}{'bad sent':>10}{'dead-lettered':>15}{'rejected':>10}"
            f"{'valid sent':>12}{'processed':>11}",
        ]
        for figures in self.topics:
            lines.append(
                f"{figures.topic:<24}{figures.bad_sent:>10}{figures.dead_lettered:>15}{figures.rejected:>10}"
                f"{figures.valid_sent:>12}{figures.processed:>11}"
            )
        lines.append("")
        lines.append("dead-letter reasons")
        for figures in self.topics:
            reasons = ", ".join(f"{reason} {count}" for reason, count in figures.reasons.most_common())
            lines.append(f"  {figures.topic}: {reasons or '-'}")
        for figures in self.topics:
            if figures.dead_lettered_twice:
                lines.append(f"{figures.topic}: {figures.dead_lettered_twice} dead-lettered more than once")
            for missing in figures.not_dead_lettered[:5]:
                lines.append(f"{figures.topic}: not dead-lettered: {missing}")
            for missing in figures.not_processed[:5]:
                lines.append(f"{figures.topic}: not processed: {missing}")
        lines.append(f"stalled partitions: {', '.join(self.stalled) if self.stalled else 'none'}")
        restarts = ", ".join(self.restarts) if self.restarts else "none"
        lines.append(f"service restarts: {restarts if self.pids_checked else 'not checked (no local stack)'}")
        lines.append(f"result: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Valid messages
# --------------------------------------------------------------------------------------


def _valid_payload(topic: str, key: str, run: str, rng: random.Random) -> dict[str, Any]:
    text = rng.choice(UNICODE_TEXTS)
    customer = f"CUST-{run}"
    if topic == CRM_REQUESTS:
        return {
            "case_id": key,
            "channel": rng.choice(["crm", "portal"]),
            "customer_id": customer,
            "type": "billing_dispute",
            "subject": text,
            "description": f"{text}. Invoice INV-{run}-1 is billed at 600.00; our contract says 500.00.",
            "invoice_ids": [f"INV-{run}-1"],
            "disputed_amount": {"amount": "200.00", "currency": "USD"},
            "priority": "normal",
            "contact": {"name": "Zoë Ångström", "email": "zoe@fuzz.example"},
            "submitted_at": "2026-11-22T10:15:00Z",
        }
    if topic == EMAIL_REQUESTS:
        return {
            "message_id": key,
            "from": "Zoë Ångström <zoe@fuzz.example>",
            "to": ["ar@billing.example"],
            "subject": text,
            "body_text": f"Hello,\n\n{text}: INV-{run}-1 shows 1,200.00 USD, we expected 1,000.00 USD.\n",
            "received_at": "2026-11-22T11:00:00Z",
        }
    if topic == CUSTOMERS:
        return {
            "customer_id": key,
            "name": text,
            "status": "active",
            "kyc_status": "verified",
            "kyc_expires_on": "2027-12-31",
            "credit_limit": {"amount": "50000.00", "currency": "USD"},
            "tier": "standard",
            "contacts": [{"name": "Zoë Ångström", "email": "zoe@fuzz.example"}],
            "updated_at": STAMP,
        }
    if topic == INVOICES:
        return {
            "invoice_id": key,
            "customer_id": customer,
            "contract_id": f"CTR-{run}",
            "issued_on": "2026-10-01",
            "due_on": "2026-10-31",
            "currency": "USD",
            "lines": [{"sku": "SKU-1", "description": text, "quantity": "2", "unit_price": "600.00"}],
            "total": {"amount": "1200.00", "currency": "USD"},
            "open_amount": {"amount": "1200.00", "currency": "USD"},
            "status": "open",
            "updated_at": STAMP,
        }
    if topic == PAYMENTS:
        return {
            "payment_id": key,
            "customer_id": customer,
            "amount": {"amount": "1200.00", "currency": "USD"},
            "received_on": "2026-10-20",
            "reference": text,
            "status": "unapplied",
            "applied_to": [],
            "updated_at": STAMP,
        }
    if topic == CONTRACTS:
        return {
            "contract_id": key,
            "customer_id": customer,
            "valid_from": "2026-01-01",
            "valid_to": "2027-12-31",
            "currency": "USD",
            "prices": [{"sku": "SKU-1", "unit_price": "500.00"}],
            "payment_terms_days": 30,
            "updated_at": STAMP,
        }
    if topic == APPROVALS:
        return {
            "request_id": key,
            "decision": rng.choice(["approve", "reject"]),
            "approver": "lena.lead",
            "role": "team_lead",
            "comment": text,
            "decided_at": "2026-11-22T12:00:00Z",
        }
    return {
        "resolution_id": f"RES-{run}-{key}",
        "request_id": key,
        "status": rng.choice(["posted", "failed"]),
        "erp_document_id": "CM-1",
        "error": None,
        "posted_at": "2026-11-22T12:00:00Z",
    }


def _key(topic: str, run: str, index: int) -> str:
    if topic == EMAIL_REQUESTS:
        return f"<fz{run.lower()}-{index}@fuzz.example>"
    prefix = {
        CRM_REQUESTS: "CASE",
        CUSTOMERS: "CUST",
        INVOICES: "INV",
        PAYMENTS: "PAY",
        CONTRACTS: "CTR",
        APPROVALS: "REQ",
        ERP_ACKS: "REQ",
    }[topic]
    return f"{prefix}-{run}-{index}"


def _source(topic: str, key: str) -> str:
    """The id a valid message leaves in the services' stores."""
    if topic == CRM_REQUESTS:
        return crm_request_id(key)
    if topic == EMAIL_REQUESTS:
        return email_request_id(key)
    return key


# --------------------------------------------------------------------------------------
# Bad messages
# --------------------------------------------------------------------------------------


def _set(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``payload`` with ``value`` at the dotted ``path`` (list indexes as numbers)."""
    copy: dict[str, Any] = json.loads(json.dumps(payload))
    node: Any = copy
    steps = path.split(".")
    for step in steps[:-1]:
        node = node[int(step)] if isinstance(node, list) else node[step]
    last = steps[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copy


def _without(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != name}


def _encode(payload: Any) -> bytes:
    # ensure_ascii: lone surrogates travel as the escape ``\\udXXX``, which is valid JSON syntax.
    return json.dumps(payload).encode()


MUTATIONS = (
    "not_json",
    "truncated_json",
    "trailing_garbage",
    "empty",
    "invalid_utf8",
    "not_an_object",
    "deep_array",
    "deep_object",
    "huge_integer",
    "huge_exponent",
    "nan_literal",
    "duplicate_key",
    "lone_surrogate_key",
    "lone_surrogate_text",
    "surrogate_field_name",
    "missing_key",
    "null_key",
    "empty_key",
    "number_key",
    "list_key",
    "operator_key",
    "operator_value",
    "too_long_id",
    "too_long_text",
    "too_many_items",
    "bad_enum",
    "bad_timestamp",
    "float_money",
    "nan_money",
    "bad_currency",
    "oversize",
)
"""Every way :func:`mutate` spoils a valid message."""


def mutate(kind: str, payload: dict[str, Any], shape: Shape, rng: random.Random) -> bytes | None:  # noqa: PLR0912 - one case per mutation
    """The valid ``payload`` spoiled the ``kind`` way, or ``None`` when that does not apply to the topic."""
    valid = _encode(payload)
    match kind:
        case "not_json":
            return b"{" + bytes(rng.randrange(256) for _ in range(40))
        case "truncated_json":
            return valid[: len(valid) // 2]
        case "trailing_garbage":
            return valid + b"}}]"
        case "empty":
            return b""
        case "invalid_utf8":
            return valid.replace(b'"', b'"\xff\xfe', 1)
        case "not_an_object":
            return rng.choice([b"[1, 2]", b'"text"', b"42", b"null", b"true"])
        case "deep_array":  # past the JSON reader's recursion limit
            return b"[" * rng.choice([3_000, 100_000])
        case "deep_object":  # readable, but past the services' nesting limit
            nested: Any = 1
            for _ in range(200):
                nested = {"a": nested}
            return _encode({**payload, "extra": nested})
        case "huge_integer":  # more than the 4,300 digits Python converts
            return valid[:-1] + b', "n": ' + b"9" * 5_000 + b"}"
        case "huge_exponent":
            return valid[:-1] + f', "{shape.other_id}": 1e999999}}'.encode()
        case "nan_literal":
            return valid[:-1] + f', "{shape.key_field}": NaN}}'.encode()
        case "duplicate_key":  # the last one counts
            return valid[:-1] + f', "{shape.key_field}": 5}}'.encode()
        case "lone_surrogate_key":
            return _encode(_set(payload, shape.key_field, "ID-\ud800"))
        case "lone_surrogate_text":
            return _encode(_set(payload, shape.short_text, "text \udfff"))
        case "surrogate_field_name":
            return _encode({**payload, "\udfff": 1})
        case "missing_key":
            return _encode({name: value for name, value in payload.items() if name != shape.key_field})
        case "null_key" | "empty_key" | "number_key" | "list_key" | "operator_key" | "too_long_id":
            spoilt: Any = {
                "null_key": None,
                "empty_key": "   ",
                "number_key": 12345,
                "list_key": ["a"],
                "operator_key": {"$gt": ""},
                "too_long_id": "X" * 201,
            }[kind]
            return _encode(_set(payload, shape.key_field, spoilt))
        case "operator_value":
            return _encode(_set(payload, shape.other_id, {"$ne": None, "$where": "1"}))
        case "too_long_text":
            return _encode(_set(payload, shape.short_text, "t" * 1_001))
        case "too_many_items":
            if shape.list_field is None:
                return None
            return _encode(_set(payload, shape.list_field, [shape.list_item] * (shape.list_limit + 1)))
        case "bad_enum":
            return _encode(_set(payload, shape.enum_field, "zombie"))
        case "bad_timestamp":
            return _encode(
                _set(payload, shape.timestamp, rng.choice(["2026-11-22T10:15:00", "2026-13-45T99:00Z"]))
            )
        case "float_money" | "nan_money" | "bad_currency":
            if shape.money is None:
                return None
            field_name, wrong = {
                "float_money": ("amount", 12.5),
                "nan_money": ("amount", "NaN"),
                "bad_currency": ("currency", "usd"),
            }[kind]
            return _encode(_set(payload, f"{shape.money}.{field_name}", wrong))
        case "oversize":
            return _encode({**payload, shape.short_text.split(".")[0]: "x" * OVERSIZE_BYTES})
    raise ValueError(f"unknown mutation {kind}")


LARGE_SHARE = 500
"""At most one message of each large kind per this many bad ones (they are up to 600 KB each, and
the broker keeps them, and their dead letters, in memory locally)."""


def _is_large(kind: str, shape: Shape) -> bool:
    return kind == "oversize" or (kind == "too_many_items" and shape.list_limit >= 1_000)


def generate(topic: str, per_topic: int, *, run: str, seed: int) -> list[FuzzMessage]:
    """``per_topic`` bad messages of ``topic`` and one valid message per key, interleaved.

    Keys are shared: each key gets about four bad messages and one valid one, the valid one at a
    random place among them (before them, between them or after them).
    """
    rng = random.Random(f"{seed}:{topic}")  # noqa: S311 - test data, not security
    shape = SHAPES[topic]
    keys = [_key(topic, run, index) for index in range(max(1, per_topic // 4))]
    names = list(MUTATIONS)
    rng.shuffle(names)
    large_left = dict.fromkeys(("oversize", "too_many_items"), max(1, per_topic // LARGE_SHARE))
    by_key: dict[str, list[FuzzMessage]] = {key: [] for key in keys}
    for index in range(per_topic):
        key = keys[index % len(keys)]
        payload = _valid_payload(topic, key, run, rng)
        value: bytes | None = None
        kind = names[index % len(names)]
        for attempt in range(len(names)):
            kind = names[(index + attempt) % len(names)]
            if _is_large(kind, shape):
                if large_left[kind] == 0:
                    continue
                large_left[kind] -= 1
            value = mutate(kind, payload, shape, rng)
            if value is not None:
                break
        assert value is not None
        by_key[key].append(FuzzMessage(topic, key, value, kind))
    for key in keys:
        valid = _valid_payload(topic, key, run, rng)
        headers: tuple[tuple[str, bytes], ...] = ()
        if rng.random() < 0.2:  # a header that is not UTF-8 makes no message bad
            headers = (("x-gateway-note", b"\xff\xfe\x00 not text"),)
        message = FuzzMessage(topic, key, _encode(valid), "valid", headers, _source(topic, key))
        by_key[key].insert(rng.randrange(len(by_key[key]) + 1), message)
    ordered: list[FuzzMessage] = []
    queues = [by_key[key] for key in keys]
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


# --------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzTarget:
    """Where the stack under test is, and the stores and groups of its services."""

    bootstrap_servers: str
    mongodb_uri: str
    stack: StackConfig | None = None
    databases: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    database_uris: dict[str, str] = field(default_factory=dict)
    """The server of each service's database where it is not ``mongodb_uri`` (a local stack with
    several database servers)."""

    @classmethod
    def of(
        cls,
        stack: StackConfig | None,
        *,
        bootstrap_servers: str | None = None,
        mongodb_uri: str | None = None,
    ) -> FuzzTarget:
        """The target with the services' own settings (their environment variables count)."""
        settings = {
            "intake": IntakeSettings(),
            "validation": ValidationSettings(),
            "resolution": ResolutionSettings(),
            "audit": AuditSettings(),
        }
        if stack is not None:
            bootstrap_servers = bootstrap_servers or stack.bootstrap_servers
            mongodb_uri = mongodb_uri or stack.mongodb_uri
        if bootstrap_servers is None or mongodb_uri is None:
            raise ValueError("a fuzz target needs a broker and a database server")
        return cls(
            bootstrap_servers=bootstrap_servers,
            mongodb_uri=mongodb_uri,
            stack=stack,
            databases={name: value.database for name, value in settings.items()},
            groups={name: value.consumer_group for name, value in settings.items()},
            database_uris=(
                {name: stack.mongodb_uri_for(name, pool=False) for name in settings}
                if stack is not None and mongodb_uri == stack.mongodb_uri
                else {}
            ),
        )

    def mongodb_uri_of(self, service: str) -> str:
        """The database server that keeps ``service``'s database."""
        return self.database_uris.get(service, self.mongodb_uri)

    def groups_of(self, topic: str) -> list[str]:
        """The consumer groups that read ``topic``: those that must get past what was sent."""
        groups = [f"{self.groups[service]}.{topic}" for service in CONSUMERS[topic]]
        if topic in AUDITED:
            groups.append(f"{self.groups['audit']}.request-topics")
        return groups


async def _pids(target: FuzzTarget) -> dict[str, int | None]:
    if target.stack is None:
        return {}
    return {part.name: part.pid for part in await stack_status(target.stack) if part.name in SERVICES}


async def _end_offsets(bootstrap_servers: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(await _partitions_of(consumer, topic))
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def _partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(40):
        await consumer.topics()
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.25)
    raise LookupError(f"topic {topic} does not exist: is the stack up?")


async def _read_from(bootstrap_servers: str, starts: dict[TopicPartition, int]) -> list[Any]:
    """Every record from ``starts`` up to the partitions' current ends."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(starts))
        wanted = {tp: end for tp, end in ends.items() if end > starts[tp]}
        if not wanted:
            return []
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, starts[tp])
        records: list[Any] = []
        idle = 0
        while wanted and idle < 60:  # a minute without any record: what is there has been read
            batch = await consumer.getmany(timeout_ms=1_000)
            idle = 0 if batch else idle + 1
            for tp, found in batch.items():
                records.extend(found)
                if found and found[-1].offset + 1 >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
        return records
    finally:
        await consumer.stop()


async def _publish(bootstrap_servers: str, messages: Sequence[FuzzMessage]) -> list[Sent]:
    client = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5, max_request_size=1024 * 1024
    )
    await client.start()
    try:
        pending = [
            (
                message,
                await client.send(
                    message.topic, message.value, key=message.key.encode(), headers=list(message.headers)
                ),
            )
            for message in messages
        ]
        sent: list[Sent] = []
        for message, delivery in pending:
            metadata = await delivery
            sent.append(Sent(message, metadata.partition, metadata.offset))
        return sent
    finally:
        await client.stop()


Committed = dict[tuple[str, TopicPartition], int]
"""How far each consumer group has committed on each partition."""


async def _wait_until_consumed(
    target: FuzzTarget, sent: Sequence[Sent], *, timeout: float, progress: Callable[[str], None]
) -> tuple[list[str], Committed]:
    """Wait until every group that reads a topic committed past what was sent.

    Returns the partitions that did not get there in time (stalled) and what each group committed.
    """
    wanted: Committed = {}
    for item in sent:
        tp = TopicPartition(item.message.topic, item.partition)
        for group in target.groups_of(item.message.topic):
            wanted[(group, tp)] = max(wanted.get((group, tp), 0), item.offset + 1)
    consumers: dict[str, AIOKafkaConsumer] = {}
    committed: Committed = dict.fromkeys(wanted, 0)
    try:
        for group in {group for group, _ in wanted}:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=target.bootstrap_servers, group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            consumers[group] = consumer
        deadline = time.monotonic() + timeout
        while True:
            for group, tp in wanted:
                if committed[(group, tp)] < wanted[(group, tp)]:
                    committed[(group, tp)] = await consumers[group].committed(tp) or 0
            behind = {
                where: wanted[where] - committed[where]
                for where in wanted
                if committed[where] < wanted[where]
            }
            if not behind or time.monotonic() > deadline:
                break
            progress(f"  waiting: {len(behind)} group partitions behind, {sum(behind.values())} records")
            await asyncio.sleep(2)
        stalled = [
            f"{group} {tp.topic}[{tp.partition}] {lag} behind"
            for (group, tp), lag in sorted(behind.items(), key=str)
        ]
        return stalled, committed
    finally:
        for consumer in consumers.values():
            await consumer.stop()


async def run_fuzz(
    target: FuzzTarget | None = None,
    *,
    per_topic: int = 5_000,
    seed: int = 0,
    topics: Sequence[str] = INBOUND_TOPICS,
    timeout: float = 900.0,
    progress: Callable[[str], None] = lambda _: None,
) -> FuzzReport:
    """Fuzz ``topics`` of a running stack (the local ``crs stack`` by default) and report."""
    target = target or FuzzTarget.of(StackConfig.from_env())
    started = time.monotonic()
    run = f"FZ{uuid.uuid4().hex[:8].upper()}"
    messages = [message for topic in topics for message in generate(topic, per_topic, run=run, seed=seed)]
    dead_letter_topics = [dead_letter_topic(topic) for topic in topics]
    pids_before = await _pids(target)
    starts = await _end_offsets(target.bootstrap_servers, [*dead_letter_topics, REQUEST_STATUS])
    progress(f"fuzz {run}: publishing {len(messages)} messages on {len(topics)} topics")
    sent = await _publish(target.bootstrap_servers, messages)
    progress("waiting for the services to consume them")
    stalled, committed = await _wait_until_consumed(target, sent, timeout=timeout, progress=progress)
    records = await _read_from(target.bootstrap_servers, starts)
    figures = await _figures(target, topics, sent, records, committed)
    pids_after = await _pids(target)
    restarts = [
        f"{name}: pid {pids_before.get(name)} -> {pids_after.get(name)}"
        for name in sorted(set(pids_before) | set(pids_after))
        if pids_before.get(name) != pids_after.get(name)
    ]
    return FuzzReport(
        bootstrap_servers=target.bootstrap_servers,
        per_topic=per_topic,
        seed=seed,
        topics=figures,
        stalled=stalled,
        restarts=restarts,
        seconds=time.monotonic() - started,
        pids_checked=target.stack is not None,
    )


async def _figures(
    target: FuzzTarget,
    topics: Sequence[str],
    sent: Sequence[Sent],
    records: Sequence[Any],
    committed: Committed,
) -> list[TopicFigures]:
    letters: dict[tuple[str, int, int, str], list[str]] = {}
    rejected_sources: set[str] = set()
    for record in records:
        headers = {name: (value or b"").decode(errors="replace") for name, value in record.headers or ()}
        if record.topic == REQUEST_STATUS:
            status = _json(record.value)
            if isinstance(status, dict) and status.get("status") == "rejected" and status.get("reason"):
                rejected_sources.add(str(status.get("source_id")))
            continue
        where = (
            headers.get("x-original-topic", ""),
            int(headers.get("x-original-partition", "-1") or -1),
            int(headers.get("x-original-offset", "-1") or -1),
            headers.get("x-failed-service", ""),
        )
        letters.setdefault(where, []).append(headers.get("x-error-reason", ""))
    present = await _present_in_stores(target, sent)
    figures = {topic: TopicFigures(topic) for topic in topics}
    rejected_keys: dict[str, set[str]] = {topic: set() for topic in topics}
    for item in sent:
        message, numbers = item.message, figures[item.message.topic]
        found = {
            service: letters.get((message.topic, item.partition, item.offset, service), [])
            for service in CONSUMERS[message.topic]
        }
        described = f"{message.kind} {message.key} at {message.topic}[{item.partition}]@{item.offset}"
        if message.kind == "valid":
            numbers.valid_sent += 1
            unreadable = [
                reason for reasons in found.values() for reason in reasons if reason in REFUSED_AS_UNREADABLE
            ]
            tp = TopicPartition(message.topic, item.partition)
            passed = all(
                committed.get((f"{target.groups[service]}.{message.topic}", tp), 0) > item.offset
                for service in CONSUMERS[message.topic]
            )
            if unreadable or not passed or not present.get((message.topic, message.source or "")):
                why = unreadable or ("not consumed" if not passed else "not in the stores")
                numbers.not_processed.append(f"{described} {why}")
            else:
                numbers.processed += 1
            continue
        numbers.bad_sent += 1
        if all(reasons and all(reasons) for reasons in found.values()):
            numbers.dead_lettered += 1
            numbers.reasons.update(reason for reasons in found.values() for reason in reasons)
        else:
            numbers.not_dead_lettered.append(described)
        if any(len(reasons) > 1 for reasons in found.values()):
            numbers.dead_lettered_twice += 1
        if message.key in rejected_sources:
            rejected_keys[message.topic].add(message.key)
    for topic, keys in rejected_keys.items():
        figures[topic].rejected = len(keys)
    return [figures[topic] for topic in topics]


def _json(raw: bytes | None) -> Any:
    try:
        return json.loads(raw or b"")
    except (ValueError, RecursionError):
        return None


async def _present_in_stores(target: FuzzTarget, sent: Sequence[Sent]) -> dict[tuple[str, str], bool]:
    """Whether each valid message's request or record is in the stores of the services that read it."""
    uris = {target.mongodb_uri_of(service) for service in ("intake", "validation", "resolution")}
    clients: dict[str, AsyncMongoClient[dict[str, Any]]] = {
        uri: AsyncMongoClient(uri, tz_aware=True) for uri in uris
    }

    def database_of(service: str) -> Any:
        return clients[target.mongodb_uri_of(service)][target.databases[service]]

    try:
        present: dict[tuple[str, str], bool] = {}
        by_topic: dict[str, list[str]] = {}
        for item in sent:
            if item.message.kind == "valid" and item.message.source is not None:
                by_topic.setdefault(item.message.topic, []).append(item.message.source)
        for topic, sources in by_topic.items():
            if topic in (CRM_REQUESTS, EMAIL_REQUESTS):
                stores = [database_of("intake").requests]
            elif topic in REFERENCE_VIEWS:
                stores = [database_of(service)[REFERENCE_VIEWS[topic]] for service in CONSUMERS[topic]]
            else:
                for source in sources:
                    present[(topic, source)] = True  # decisions and acks leave nothing to look up
                continue
            found: list[set[str]] = []
            for store in stores:
                ids: set[str] = set()
                for start in range(0, len(sources), 500):
                    chunk = sources[start : start + 500]
                    cursor = store.find({"_id": {"$in": chunk}}, {"_id": 1})
                    ids.update([str(doc["_id"]) async for doc in cursor])
                found.append(ids)
            for source in sources:
                present[(topic, source)] = all(source in ids for ids in found)
        return present
    finally:
        for client in clients.values():
            await client.close()


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """``crs chaos fuzz`` options."""
    parser = argparse.ArgumentParser(
        prog="crs chaos fuzz",
        description="Publish bad messages (with valid ones on the same keys) on every inbound topic of a "
        "running stack and check that each bad one is dead-lettered, each valid one processed, "
        "no partition stalls and no service restarts.",
    )
    parser.add_argument("--per-topic", type=int, default=5_000, help="bad messages per topic (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    parser.add_argument(
        "--topic", action="append", choices=INBOUND_TOPICS, help="only this topic (repeatable; default all)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the services")
    parser.add_argument("--home", type=Path, help="the local stack's home (default: CRS_HOME or .crs)")
    parser.add_argument("--bootstrap-servers", help="another broker (then pids are not checked)")
    parser.add_argument("--mongodb-uri", help="another database server")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz and print its figures; 0 when everything held, 1 when not."""
    args = build_parser().parse_args(argv)
    if args.per_topic < 1:
        print("--per-topic must be at least 1", file=sys.stderr)
        return 2
    external = args.bootstrap_servers or args.mongodb_uri or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    stack = None if external and args.home is None else StackConfig.from_env(args.home)
    target = FuzzTarget.of(
        stack,
        bootstrap_servers=args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        mongodb_uri=args.mongodb_uri or os.environ.get("MONGODB_URI"),
    )
    report = asyncio.run(
        run_fuzz(
            target,
            per_topic=args.per_topic,
            seed=args.seed,
            topics=tuple(args.topic or INBOUND_TOPICS),
            timeout=args.timeout,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    )
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
