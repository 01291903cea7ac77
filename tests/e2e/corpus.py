"""The corpus harness: scenarios written by hand in ``tests/corpus/*.yaml``, run end to end.

Every scenario is a list of messages as the outside world sends them (ERP and master data, CRM
cases, emails, approvals) and what the contract says must come of them: the statuses each request
reaches (with their reasons), the postings on ``erp.resolutions.v1``, and the messages meant to be
dead-lettered. The harness talks to the system only through the contract: it publishes on the
inbound topics (the reference topics, ``crm.requests.v1``, ``email.requests.v1``,
``requests.approvals.v1``, and ``erp.acks.v1`` as a stand-in for the ERP) and reads only
``requests.status.v1``, ``erp.resolutions.v1`` and the dead-letter topics. A request is found by
the ``source_id`` of its status events (the case id or Message-ID it came from), never by knowing
how intake derives request ids.

All scenarios run at once on one stack: first every reference message, then the first message of
every scenario, then each later step as soon as what it waits for has been seen (a status, a
posting). The run ends once nothing concerning it has happened for ``settle`` seconds; then each
scenario is judged on everything seen.

``{r}`` anywhere in a corpus string is replaced by a token drawn once per run (five digits), so
ids, document numbers, addresses and Message-IDs of one run never meet those of another on a
shared broker. The corpus places it where a number of that shape would have its digits anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crs.io import TopicRecord, producer, tail
from shared.topics import (
    ALL_TOPICS,
    APPROVALS,
    CONTRACTS,
    CRM_REQUESTS,
    CUSTOMERS,
    DLQ_SUFFIX,
    EMAIL_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    INVOICES,
    PAYMENTS,
    REQUEST_STATUS,
)
from tests.support import Servers, isolated_settings, mongo, running_service

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
TOKEN = "{r}"

# Topic of each kind of message a step may send, and the field that is its key (contract).
TOPICS: Mapping[str, tuple[str, str]] = {
    "customer": (CUSTOMERS, "customer_id"),
    "invoice": (INVOICES, "invoice_id"),
    "payment": (PAYMENTS, "payment_id"),
    "contract": (CONTRACTS, "contract_id"),
    "crm": (CRM_REQUESTS, "case_id"),
    "email": (EMAIL_REQUESTS, "message_id"),
}
REQUEST_KINDS = frozenset({"crm", "email"})
FLAGS = frozenset({"sla_warning", "sla_breached", "escalated"})
DECISIVE = frozenset({"rejected", "duplicate_of", "resolved", "closed", "reopened", "approved"})
"""Statuses that must each be expected: an extra one is a wrong outcome, not noise."""
RACE_NOISE = ("on_hold", "awaiting_reference_data")
"""A service may read a request before the reference data published just ahead of it; that hold
resumes by itself and is ignored unless a scenario expects it."""


def run_token() -> str:
    """Five digits, never starting with 0 (the corpus puts leading zeros in front of it)."""
    return str(random.SystemRandom().randint(10_000, 99_999))


def normalise_source(value: str) -> str:
    """A case id or Message-ID as compared here: without surrounding space and angle brackets."""
    return value.strip().strip("<>").strip()


# --------------------------------------------------------------------------------------
# The corpus format
# --------------------------------------------------------------------------------------


class Strict(BaseModel):
    """Corpus entries: frozen, and a misspelt field is an error, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class StatusPattern(Strict):
    """One status a request must reach: ``"routed"``, ``"on_hold: awaiting_customer"``, or a mapping.

    ``reason`` may list several codes (any of them will do: where the contract allows two
    readings); ``mentions`` are words the status message must contain (case-insensitive; ``a|b``:
    either, for a message that may be in the customer's language);
    ``queue`` the queue it must name; ``duplicate_of`` the label of the request it must name.
    """

    status: str
    reason: list[str] | None = None
    mentions: list[str] = Field(default_factory=list)
    queue: str | None = None
    duplicate_of: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            status, _, reason = value.partition(":")
            return {"status": status.strip(), "reason": reason.strip() or None}
        return value

    @field_validator("reason", mode="before")
    @classmethod
    def _reasons(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split("|")]
        return value

    @field_validator("mentions", mode="before")
    @classmethod
    def _mentions(cls, value: Any) -> Any:
        return _as_list(value)

    def describe(self) -> str:
        text = self.status + (f": {'|'.join(self.reason)}" if self.reason else "")
        extras = [f"mentions {self.mentions}"] if self.mentions else []
        extras += [f"queue {self.queue}"] if self.queue else []
        extras += [f"duplicate of {self.duplicate_of}"] if self.duplicate_of else []
        return text + (f" ({', '.join(extras)})" if extras else "")


def parse_money(text: str) -> tuple[Decimal, str]:
    """``"700.00 USD"`` as (Decimal, currency)."""
    amount, _, currency = text.strip().partition(" ")
    try:
        return Decimal(amount), currency.strip()
    except InvalidOperation as error:
        raise ValueError(f"{text!r} is not an amount followed by a currency code") from error


_SHORT_POSTING = re.compile(
    r"^(?P<kind>\w+)\s+(?P<amount>-?[\d.]+\s+[A-Z]{3})"
    r"(?:\s+on\s+(?P<invoice>\S+))?(?:\s+from\s+(?P<payment>\S+))?$"
)


class ExpectedPosting(Strict):
    """A posting on ``erp.resolutions.v1``: ``"credit_memo 700.00 USD on RE/2026/{r}42"`` or a mapping.

    Amounts are compared as numbers (``150000`` JPY equals ``150000.00`` JPY); ``approvals`` lists
    the roles of the approvals the posting must carry (``[]``: none), unchecked when absent.
    """

    kind: str
    amount: str
    invoice: str | None = None
    payment: str | None = None
    original: str | None = None
    corrected: str | None = None
    approvals: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _SHORT_POSTING.match(value.strip())
            if match is None:
                raise ValueError(f"cannot read posting {value!r}: '<kind> <amount> <CUR> [on <invoice>]'")
            return {key: item for key, item in match.groupdict().items() if item is not None}
        return value

    @field_validator("amount", "original", "corrected")
    @classmethod
    def _money(cls, value: str | None) -> str | None:
        if value is not None:
            parse_money(value)
        return value

    def describe(self) -> str:
        text = f"{self.kind} {self.amount}"
        text += f" on {self.invoice}" if self.invoice else ""
        text += f" from {self.payment}" if self.payment else ""
        text += f" ({self.original} -> {self.corrected})" if self.original and self.corrected else ""
        return text + (f" approved by {self.approvals}" if self.approvals is not None else "")


class Outcome(Strict):
    """What must come of one request: its statuses in order, its final status, its postings."""

    statuses: list[StatusPattern] = Field(default_factory=list)
    final: list[str] | None = None
    """The last status seen (flags aside); default: the last of ``statuses``; ``any``: unchecked."""
    resolutions: list[ExpectedPosting] = Field(default_factory=list)
    """Every posting of the request; an empty list means nothing may be posted."""
    never: list[str] = Field(default_factory=list)
    """Statuses that must not appear at all (``awaiting_approval`` where the policy needs none)."""

    @field_validator("final", mode="before")
    @classmethod
    def _final(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split("|")]
        return value


class Expectation(Outcome):
    """An :class:`Outcome`, or several (``any_of``: where the contract allows two readings).

    ``joins``: the message opens no request of its own, it is added to the labelled request
    (an email reply in its thread, a CRM case published again).
    """

    any_of: list[Outcome] = Field(default_factory=list)
    joins: str | None = None

    def outcomes(self) -> list[Outcome]:
        return list(self.any_of) or [self]


class ExpectedDeadLetter(Strict):
    """A message meant to be dead-lettered: on ``<topic>.dlq``, with one of ``reason``."""

    topic: str
    key: str | None = None
    reason: list[str]
    mentions: list[str] = Field(default_factory=list)
    """Words the error (``x-error`` header) must contain, case-insensitive."""

    @field_validator("reason", "mentions", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)


class DeadLettered(Strict):
    """What a reference message meant to be refused expects: its dead letter."""

    dead_lettered: ExpectedDeadLetter


class Condition(Strict):
    """What a step waits for: a status of a request (``count`` times), or a posting for it.

    ``status`` and ``reason`` may name several (``rejected|on_hold``): where the contract allows
    two readings, the step goes once either has happened.
    """

    of: str = "request"
    status: list[str] | None = None
    reason: list[str] | None = None
    count: int = 1
    resolution: bool = False

    @field_validator("status", "reason", mode="before")
    @classmethod
    def _alternatives(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split("|")]
        return value

    def describe(self) -> str:
        if self.resolution:
            return f"a posting for {self.of}"
        status = "|".join(self.status or ["any status"])
        reason = f": {'|'.join(self.reason)}" if self.reason else ""
        times = f" x{self.count}" if self.count > 1 else ""
        return f"{self.of} {status}{reason}{times}"


class Decision(Strict):
    """An approver's decision, published on ``requests.approvals.v1`` for the labelled request."""

    approver: str
    role: str
    comment: str | None = None


class RawMessage(Strict):
    """Bytes that are not a JSON object (a broken connector's output), sent as they are."""

    topic: str
    key: str
    text: str


class Step(Strict):
    """One message to send: exactly one of the kinds, after an optional condition.

    ``as`` labels the request a CRM case or an email opens (default ``request``); a message that
    only adds to a request (a reply, a case published again) takes the label it should join too
    in ``as`` only when the scenario expects statuses under it.
    """

    after: Condition | None = None
    delay: float = 0.0
    """Seconds to wait once ``after`` is met: only where no status can tell that a message before
    this one was taken in (an out-of-office reply changes nothing a watcher could see)."""
    key: str | None = None
    """The record's key, when the sender keys it otherwise than the contract's key field."""
    label: str | None = Field(default=None, alias="as")
    of: str = "request"
    customer: dict[str, Any] | None = None
    invoice: dict[str, Any] | None = None
    payment: dict[str, Any] | None = None
    contract: dict[str, Any] | None = None
    crm: dict[str, Any] | None = None
    email: dict[str, Any] | None = None
    approve: Decision | None = None
    reject: Decision | None = None
    raw: RawMessage | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        kinds = [kind for kind in (*TOPICS, "approve", "reject", "raw") if getattr(self, kind) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step sends exactly one message, this one has {kinds or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in (*TOPICS, "approve", "reject", "raw") if getattr(self, kind) is not None)

    @property
    def message(self) -> dict[str, Any] | None:
        value = getattr(self, self.kind)
        return value if isinstance(value, dict) else None

    def topic_and_key(self) -> tuple[str, str] | None:
        """Where a message of the reference or request topics goes, and its key."""
        if self.raw is not None:
            return self.raw.topic, self.raw.key
        if self.kind not in TOPICS:
            return None
        topic, key_field = TOPICS[self.kind]
        assert self.message is not None
        return topic, self.key if self.key is not None else str(self.message.get(key_field, ""))


class Scenario(Strict):
    """A named story: messages in order, and what must come of them."""

    name: str
    about: str
    xfail: str | None = None
    """Why it cannot pass on today's code (the issue item that builds it): strict xfail."""
    erp: Literal["posted", "failed", "silent"] = "posted"
    """How the ERP stand-in answers each posting: acknowledges it, refuses it, or never answers."""
    steps: list[Step]
    expect: dict[str, Expectation] = Field(default_factory=dict)
    dead_letters: list[ExpectedDeadLetter] = Field(default_factory=list)
    file: str = ""

    @model_validator(mode="after")
    def _labels_known(self) -> Scenario:
        labels = set(self.request_labels())
        for step in self.steps:
            if step.after is not None and step.after.of not in labels:
                raise ValueError(f"{self.name}: step waits for unknown request {step.after.of!r}")
        if set(self.expect) != set(labels):
            expected = sorted(self.expect)
            raise ValueError(f"{self.name}: requests {sorted(labels)}, expectations for {expected}")
        for expectation in self.expect.values():
            if expectation.joins is not None and expectation.joins not in labels:
                raise ValueError(f"{self.name}: a message joins unknown request {expectation.joins!r}")
        return self

    def request_labels(self) -> dict[str, list[str]]:
        """Each request label and the source ids (case ids, Message-IDs) of its messages.

        A CRM case published again keeps the label of its case id; any other message that could
        open a request needs a label of its own (``as``), the first one defaulting to ``request``.
        """
        labels: dict[str, list[str]] = {}
        for step in self.steps:
            if step.kind not in REQUEST_KINDS:
                continue
            assert step.message is not None
            source = normalise_source(str(step.message.get(TOPICS[step.kind][1], "")))
            known = next((label for label, sources in labels.items() if source in sources), None)
            label = known or step.label or ("request" if not labels else None)
            if label is None:
                raise ValueError(f"{self.name}: a second request message needs a label (as: ...)")
            labels.setdefault(label, [])
            if source not in labels[label]:
                labels[label].append(source)
        return labels


class ReferenceEntry(Strict):
    """One reference-data message of the ERP or master-data feed, with what must come of it."""

    name: str
    about: str
    xfail: str | None = None
    customer: dict[str, Any] | None = None
    invoice: dict[str, Any] | None = None
    payment: dict[str, Any] | None = None
    contract: dict[str, Any] | None = None
    raw: RawMessage | None = None
    key: str | None = None
    expect: Literal["accepted"] | DeadLettered = "accepted"

    def as_scenario(self, file: str) -> Scenario:
        kinds = ("customer", "invoice", "payment", "contract", "raw")
        step = Step.model_validate(
            {"key": self.key} | {kind: getattr(self, kind) for kind in kinds if getattr(self, kind)}
        )
        dead = [self.expect.dead_lettered] if isinstance(self.expect, DeadLettered) else []
        return Scenario(
            name=self.name, about=self.about, xfail=self.xfail, steps=[step], dead_letters=dead, file=file
        )


class _CorpusLoader(yaml.SafeLoader):
    """YAML without floats and timestamps: ``12500.00`` and ``2026-10-05`` stay strings.

    Amounts and dates are strings on the wire (the contract); a float that slipped into the
    corpus unquoted would be a JSON number, which the contract refuses. A message that must carry
    a JSON number on purpose is written as ``raw`` text.
    """


_CorpusLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _substitute(value: Any, token: str) -> Any:
    if isinstance(value, str):
        return value.replace(TOKEN, token)
    if isinstance(value, list):
        return [_substitute(item, token) for item in value]
    if isinstance(value, dict):
        return {_substitute(key, token): _substitute(item, token) for key, item in value.items()}
    return value


def load_file(path: Path, token: str) -> list[Scenario]:
    """The scenarios of one corpus file: ``reference`` entries (one message each), ``scenarios``."""
    document = _substitute(yaml.load(path.read_text(encoding="utf-8"), Loader=_CorpusLoader), token)
    scenarios = [
        ReferenceEntry.model_validate(entry).as_scenario(path.name) for entry in document.get("reference", [])
    ]
    scenarios += [
        Scenario.model_validate({**entry, "file": path.name}) for entry in document.get("scenarios", [])
    ]
    return scenarios


def load_corpus(names: Iterable[str], token: str) -> list[Scenario]:
    """The scenarios of the named files of ``tests/corpus``, with ``{r}`` replaced by ``token``."""
    scenarios = [scenario for name in names for scenario in load_file(CORPUS_DIR / name, token)]
    _check_unique(scenarios)
    return scenarios


def _check_unique(scenarios: Sequence[Scenario]) -> None:
    """Names and request sources belong to one scenario each: scenarios run side by side.

    A reference record may be sent again by a scenario (an update: KYC verified, a payment
    booked); no other scenario may then depend on it.
    """
    names: set[str] = set()
    owners: dict[tuple[str, str], str] = {}
    for scenario in scenarios:
        if scenario.name in names:
            raise ValueError(f"two scenarios are named {scenario.name}")
        names.add(scenario.name)
        for step in scenario.steps:
            where = step.topic_and_key()
            if where is None or step.kind not in REQUEST_KINDS:
                continue
            owner = owners.setdefault(where, scenario.name)
            if owner != scenario.name:
                raise ValueError(f"{where[0]} key {where[1]} is sent by {owner} and by {scenario.name}")


# --------------------------------------------------------------------------------------
# What a run sees
# --------------------------------------------------------------------------------------


@dataclass
class DeadLetter:
    topic: str
    original_topic: str
    key: str | None
    reason: str
    error: str

    def describe(self) -> str:
        return f"{self.original_topic} key {self.key}: {self.reason} ({self.error[:160]})"


@dataclass
class Seen:
    """Everything observed of one scenario."""

    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per request label, its status events in the order they were published (repeats dropped)."""
    request_ids: dict[str, str] = field(default_factory=dict)
    postings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per request label, its distinct postings (by resolution id)."""
    conflicting_postings: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    sent: int = 0
    waiting_for: str | None = None


@dataclass
class _Live:
    scenario: Scenario
    seen: Seen = field(default_factory=Seen)
    next_step: int = 0
    status_ids: set[str] = field(default_factory=set)
    ready_at: float | None = None


ViewsKnow = Callable[[str, list[str]], Awaitable[set[str]]]
"""Which of these keys of a reference topic every service that keeps a view of it has taken in."""


class CorpusRun:
    """Publishes every scenario's messages, reacts as the ERP and the approvers, records what it sees."""

    def __init__(
        self,
        bootstrap_servers: str,
        scenarios: Sequence[Scenario],
        *,
        views_know: ViewsKnow | None = None,
        settle: float = 25.0,
        patience: float = 120.0,
    ) -> None:
        self._servers = bootstrap_servers
        self._views_know = views_know
        self._dead_lettered_keys: set[str] = set()
        self.reference_wait = 0.0
        self._live = {scenario.name: _Live(scenario) for scenario in scenarios}
        self._settle = settle
        self._patience = patience
        self._answered_sources: set[str] = set()
        self._sent_sources: set[str] = set()
        self._by_source: dict[str, tuple[_Live, str]] = {}
        self._by_request: dict[str, tuple[_Live, str]] = {}
        self._by_key: dict[str, list[_Live]] = {}
        self._unclaimed_postings: list[TopicRecord] = []
        self._unclaimed_dead_letters: list[TopicRecord] = []
        self._acked: set[str] = set()
        self._last_activity = time.monotonic()
        self._producer: AIOKafkaProducer | None = None
        self.published = 0
        for live in self._live.values():
            for label, sources in live.scenario.request_labels().items():
                for source in sources:
                    self._by_source[source] = (live, label)
            for step in live.scenario.steps:
                where = step.topic_and_key()
                if where is not None:
                    self._by_key.setdefault(where[1], []).append(live)

    async def run(self, *, deadline: float = 900.0) -> dict[str, Seen]:
        """Run every scenario to its end (or the deadline) and return what was seen of each."""
        observed = [
            REQUEST_STATUS,
            ERP_RESOLUTIONS,
            *(topic for topic in ALL_TOPICS if topic.endswith(DLQ_SUFFIX)),
        ]
        async with producer(self._servers) as client:
            self._producer = client
            watcher = asyncio.create_task(self._watch(observed))
            try:
                await self._start()
                started = time.monotonic()
                while time.monotonic() - self._last_activity < self._quiet_enough():
                    for live in self._live.values():
                        if live.ready_at is not None:
                            await self._advance(live)
                    if watcher.done():
                        watcher.result()
                        break
                    if time.monotonic() - started > deadline:
                        break
                    await asyncio.sleep(0.5)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        for live in self._live.values():
            if live.next_step < len(live.scenario.steps):
                condition = live.scenario.steps[live.next_step].after
                live.seen.waiting_for = condition.describe() if condition else "nothing"
        return {name: live.seen for name, live in self._live.items()}

    def _quiet_enough(self) -> float:
        """How long nothing may happen before the run is over.

        ``settle`` once every request message sent has a status (or a dead letter) of its own;
        ``patience`` before that: the services may still be reading earlier tests' records.
        """
        return self._settle if self._sent_sources <= self._answered_sources else self._patience

    async def _start(self) -> None:
        """The ERP feed first (it runs ahead of requests), then every scenario from its first request.

        Between the two, ``views_know`` (when given) is asked until every reference record sent is
        in the services' views or dead-lettered: a request must not overtake the customer record
        it needs (validation rejects a request of an unknown customer at once, as it should).
        """
        sent: list[tuple[str, str]] = []
        for live in self._live.values():
            steps = live.scenario.steps
            while live.next_step < len(steps) and _leading_reference(steps[live.next_step]):
                await self._send(live, steps[live.next_step])
                where = steps[live.next_step].topic_and_key()
                assert where is not None
                sent.append(where)
                live.next_step += 1
        if self._views_know is not None:
            await self._until_known(sent)
        for live in self._live.values():
            await self._advance(live)

    async def _until_known(self, sent: list[tuple[str, str]], *, timeout: float = 180.0) -> None:
        assert self._views_know is not None
        pending = set(sent)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for topic in {topic for topic, _ in pending}:
                keys = [key for where_topic, key in pending if where_topic == topic]
                known = await self._views_know(topic, keys) | (set(keys) & self._dead_lettered_keys)
                pending -= {(topic, key) for key in known}
            if pending:
                await asyncio.sleep(0.5)
        self.reference_wait = timeout - max(0.0, deadline - time.monotonic())

    async def _watch(self, topics: list[str]) -> None:
        async with contextlib.aclosing(tail(self._servers, topics)) as records:
            async for record in records:
                await self._observe(record)

    async def _observe(self, record: TopicRecord) -> None:
        if not isinstance(record.value, dict) and not record.topic.endswith(DLQ_SUFFIX):
            return
        if record.topic == REQUEST_STATUS:
            live = self._claim_status(record)
        elif record.topic == ERP_RESOLUTIONS:
            live = self._claim_posting(record)
        else:
            live = self._claim_dead_letter(record)
        if live is not None:
            self._last_activity = time.monotonic()
            await self._advance(live)

    def _claim_status(self, record: TopicRecord) -> _Live | None:
        value = record.value
        source = normalise_source(str(value.get("source_id") or ""))
        # The request id decides once known: a request resumed by a reply may name the reply as
        # its source; only a request id never seen is attributed by its source.
        owner = self._by_request.get(str(record.key)) or self._by_source.get(source)
        if owner is None:
            return None
        live, label = owner
        self._answered_sources.add(source)
        request_id = str(value.get("request_id") or record.key)
        if request_id not in self._by_request:
            self._by_request[request_id] = owner
            live.seen.request_ids.setdefault(label, request_id)
            self._reclaim()
        event_id = value.get("event_id")
        if isinstance(event_id, str):
            if event_id in live.status_ids:
                return live
            live.status_ids.add(event_id)
        live.seen.statuses.setdefault(label, []).append(value)
        return live

    def _claim_posting(self, record: TopicRecord) -> _Live | None:
        owner = self._by_request.get(str(record.key))
        if owner is None:
            self._unclaimed_postings.append(record)
            return None
        live, label = owner
        postings = live.seen.postings.setdefault(label, [])
        same = [posting for posting in postings if posting["resolution_id"] == record.value["resolution_id"]]
        if not same:
            postings.append(record.value)
        elif same[0] != record.value:
            live.seen.conflicting_postings.append(str(record.value["resolution_id"]))
        return live

    def _claim_dead_letter(self, record: TopicRecord) -> _Live | None:
        key = record.key or record.headers.get("x-original-key")
        owners = self._by_key.get(str(key), [])
        if not owners and str(key) in self._by_request:
            owners = [self._by_request[str(key)][0]]
        if not owners and isinstance(key, str) and normalise_source(key) in self._by_source:
            owners = [self._by_source[normalise_source(key)][0]]
        if isinstance(key, str):
            self._dead_lettered_keys.add(key)
            self._answered_sources.add(normalise_source(key))
        if not owners:
            self._unclaimed_dead_letters.append(record)
            return None
        letter = DeadLetter(
            topic=record.topic,
            original_topic=record.headers.get("x-original-topic", record.topic.removesuffix(DLQ_SUFFIX)),
            key=key,
            reason=record.headers.get("x-error-reason", ""),
            error=record.headers.get("x-error", ""),
        )
        for live in owners:
            live.seen.dead_letters.append(letter)
        return owners[0]

    def _reclaim(self) -> None:
        """Postings and dead letters read before the status that told whose request they are."""
        postings, self._unclaimed_postings = self._unclaimed_postings, []
        for record in postings:
            self._claim_posting(record)
        letters, self._unclaimed_dead_letters = self._unclaimed_dead_letters, []
        for record in letters:
            self._claim_dead_letter(record)

    async def _advance(self, live: _Live) -> None:
        """Answer new postings as the ERP, and send every step whose condition is met, in order."""
        await self._answer_postings(live)
        steps = live.scenario.steps
        while live.next_step < len(steps) and self._met(live, steps[live.next_step].after):
            step = steps[live.next_step]
            if step.delay:
                live.ready_at = live.ready_at or time.monotonic() + step.delay
                self._last_activity = time.monotonic()  # a step still to come: the run is not over
                if time.monotonic() < live.ready_at:
                    return
                live.ready_at = None
            await self._send(live, step)
            live.next_step += 1

    def _met(self, live: _Live, condition: Condition | None) -> bool:
        if condition is None:
            return True
        if condition.resolution:
            return bool(live.seen.postings.get(condition.of))
        matching = [
            status
            for status in live.seen.statuses.get(condition.of, [])
            if (condition.status is None or status.get("status") in condition.status)
            and (condition.reason is None or status.get("reason") in condition.reason)
        ]
        return len(matching) >= condition.count

    async def _answer_postings(self, live: _Live) -> None:
        if live.scenario.erp == "silent":
            return
        for postings in live.seen.postings.values():
            for posting in postings:
                if posting["resolution_id"] in self._acked:
                    continue
                self._acked.add(posting["resolution_id"])
                ack: dict[str, Any] = {
                    "resolution_id": posting["resolution_id"],
                    "request_id": posting["request_id"],
                    "status": live.scenario.erp,
                    "posted_at": _now(),
                }
                if live.scenario.erp == "posted":
                    ack["erp_document_id"] = f"51{posting['resolution_id'][-8:]}"
                else:
                    ack["error"] = "F5 702: Posting period 2026/11 is not open for company code 1000"
                await self._publish(ERP_ACKS, posting["request_id"], ack)

    async def _send(self, live: _Live, step: Step) -> None:
        live.seen.sent += 1
        decision = step.approve or step.reject
        if decision is not None:
            request_id = live.seen.request_ids.get(step.of)
            if request_id is None:
                raise AssertionError(f"{live.scenario.name}: no request {step.of} known to decide on")
            approval = {
                "request_id": request_id,
                "decision": "approve" if step.approve is not None else "reject",
                "approver": decision.approver,
                "role": decision.role,
                "comment": decision.comment,
                "decided_at": _now(),
            }
            await self._publish(APPROVALS, request_id, approval)
            return
        if step.raw is not None:
            await self._publish(step.raw.topic, step.raw.key, step.raw.text.encode())
            return
        where = step.topic_and_key()
        assert where is not None
        source = normalise_source(where[1])
        owner = self._by_source.get(source)
        if owner is not None and owner[0].scenario.expect[owner[1]].joins is None:
            self._sent_sources.add(source)  # a message that opens a request: its status must come
        await self._publish(where[0], where[1], step.message)

    async def _publish(self, topic: str, key: str, value: Any) -> None:
        assert self._producer is not None
        payload = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
        await self._producer.send_and_wait(topic, payload, key=key.encode())
        self.published += 1
        self._last_activity = time.monotonic()


def _leading_reference(step: Step) -> bool:
    return step.after is None and step.kind in ("customer", "invoice", "payment", "contract")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------------
# Judging
# --------------------------------------------------------------------------------------


def _contains(text: str | None, words: Sequence[str]) -> list[str]:
    """The words missing from ``text`` (case-insensitive); ``a|b`` is found when either is."""
    folded = (text or "").casefold()
    return [word for word in words if not any(part.casefold() in folded for part in word.split("|"))]


def _status_matches(
    pattern: StatusPattern, status: Mapping[str, Any], request_ids: Mapping[str, str]
) -> bool:
    if status.get("status") != pattern.status:
        return False
    if pattern.reason is not None and status.get("reason") not in pattern.reason:
        return False
    if _contains(status.get("message"), pattern.mentions):
        return False
    if pattern.queue is not None and status.get("queue") != pattern.queue:
        return False
    return pattern.duplicate_of is None or status.get("duplicate_of") == request_ids.get(pattern.duplicate_of)


def _relevant(statuses: Sequence[Mapping[str, Any]], outcome: Outcome) -> list[Mapping[str, Any]]:
    """The statuses judged: flags, and holds for reference data that then resumed, are dropped
    unless the outcome names them."""
    named = {pattern.status for pattern in outcome.statuses}
    race_expected = any(
        pattern.status == RACE_NOISE[0] and (pattern.reason is None or RACE_NOISE[1] in pattern.reason)
        for pattern in outcome.statuses
    )
    kept = []
    for index, status in enumerate(statuses):
        name = status.get("status")
        if name in FLAGS and name not in named:
            continue
        resumed = any(later.get("status") not in FLAGS for later in statuses[index + 1 :])
        if (name, status.get("reason")) == RACE_NOISE and not race_expected and resumed:
            continue
        kept.append(status)
    return kept


def _money_equal(expected: str | None, seen: Any) -> bool:
    if expected is None:
        return True
    if not isinstance(seen, dict):
        return False
    amount, currency = parse_money(expected)
    try:
        return Decimal(str(seen.get("amount"))) == amount and seen.get("currency") == currency
    except InvalidOperation:
        return False


def _posting_matches(expected: ExpectedPosting, posting: Mapping[str, Any]) -> bool:
    return (
        posting.get("kind") == expected.kind
        and _money_equal(expected.amount, posting.get("amount"))
        and (expected.invoice is None or posting.get("invoice_id") == expected.invoice)
        and (expected.payment is None or posting.get("payment_id") == expected.payment)
        and _money_equal(expected.original, posting.get("original_amount"))
        and _money_equal(expected.corrected, posting.get("corrected_amount"))
        and (
            expected.approvals is None
            or sorted(one.get("role", "") for one in posting.get("approvals") or [])
            == sorted(expected.approvals)
        )
    )


def _judge_outcome(
    outcome: Outcome,
    statuses: Sequence[Mapping[str, Any]],
    postings: Sequence[Mapping[str, Any]],
    request_ids: Mapping[str, str],
) -> list[str]:
    problems: list[str] = []
    kept = _relevant(statuses, outcome)
    position = 0
    matched: set[int] = set()
    for pattern in outcome.statuses:
        while position < len(kept) and not _status_matches(pattern, kept[position], request_ids):
            position += 1
        if position == len(kept):
            problems.append(f"status {pattern.describe()} not seen (in order)")
            break
        matched.add(position)
        position += 1
    else:
        for index, status in enumerate(kept):
            if index not in matched and status.get("status") in DECISIVE:
                problems.append(f"unexpected status {status.get('status')}: {status.get('reason')}")
    problems += [
        f"status {status.get('status')} must not appear: {status.get('reason')}"
        for status in statuses
        if status.get("status") in outcome.never
    ]
    final = outcome.final or ([outcome.statuses[-1].status] if outcome.statuses else None)
    if final and final != ["any"] and not problems:
        last = next((s.get("status") for s in reversed(kept) if s.get("status") not in FLAGS), None)
        if last not in final:
            problems.append(f"ends {last}, expected {'|'.join(final)}")
    remaining = list(postings)
    for expected in outcome.resolutions:
        found = next((posting for posting in remaining if _posting_matches(expected, posting)), None)
        if found is None:
            problems.append(f"posting {expected.describe()} not seen")
        else:
            remaining.remove(found)
    problems += [f"unexpected posting {describe_posting(posting)}" for posting in remaining]
    return problems


def judge(scenario: Scenario, seen: Seen) -> list[str]:
    """What went otherwise than the scenario expects; empty when it passed."""
    problems: list[str] = []
    if seen.waiting_for is not None:
        problems.append(f"step {seen.sent + 1} never sent: still waiting for {seen.waiting_for}")
    labels = scenario.request_labels()
    for label in labels:
        expectation = scenario.expect[label]
        statuses = seen.statuses.get(label, [])
        postings = seen.postings.get(label, [])
        if expectation.joins is not None:
            if statuses:
                problems.append(f"{label} opened a request of its own instead of joining {expectation.joins}")
            continue
        verdicts = [
            _judge_outcome(outcome, statuses, postings, seen.request_ids)
            for outcome in expectation.outcomes()
        ]
        best = min(verdicts, key=len)
        if best:
            prefix = f"{label}: " if len(labels) > 1 else ""
            alternatives = " (no reading matched)" if len(verdicts) > 1 else ""
            problems += [f"{prefix}{problem}{alternatives}" for problem in best]
    problems += [f"one resolution id posted with two contents: {rid}" for rid in seen.conflicting_postings]
    problems += _judge_dead_letters(scenario, seen)
    return problems


def _judge_dead_letters(scenario: Scenario, seen: Seen) -> list[str]:
    problems: list[str] = []
    accounted: set[int] = set()
    for expected in scenario.dead_letters:
        matches = [
            index
            for index, letter in enumerate(seen.dead_letters)
            if letter.original_topic == expected.topic
            and (expected.key is None or letter.key == expected.key)
            and letter.reason in expected.reason
            and not _contains(letter.error, expected.mentions)
        ]
        if not matches:
            mentions = f" mentioning {expected.mentions}" if expected.mentions else ""
            problems.append(f"no dead letter on {expected.topic}.dlq with reason {expected.reason}{mentions}")
        # A message dead-lettered by two services (validation and resolution both read reference
        # data) is one expected dead letter seen twice.
        accounted |= {
            index
            for index, letter in enumerate(seen.dead_letters)
            if letter.original_topic == expected.topic
            and (expected.key is None or letter.key == expected.key)
        }
    problems += [
        f"unexpected dead letter: {letter.describe()}"
        for index, letter in enumerate(seen.dead_letters)
        if index not in accounted
    ]
    return problems


def describe_posting(posting: Mapping[str, Any]) -> str:
    def money(value: Any) -> str:
        return f"{value.get('amount')} {value.get('currency')}" if isinstance(value, dict) else "-"

    roles = [one.get("role") for one in posting.get("approvals") or []]
    text = f"{posting.get('kind')} {money(posting.get('amount'))}"
    text += f" on {posting.get('invoice_id')}" if posting.get("invoice_id") else ""
    text += f" from {posting.get('payment_id')}" if posting.get("payment_id") else ""
    text += f" ({money(posting.get('original_amount'))} -> {money(posting.get('corrected_amount'))})"
    return text + f" approved by {roles}"


def report(scenario: Scenario, seen: Seen, problems: Sequence[str]) -> str:
    """Expected and seen, side by side, for a person reading a failed run."""
    lines = [f"scenario {scenario.name} ({scenario.file}): {scenario.about.strip()}", "problems:"]
    lines += [f"  - {problem}" for problem in problems]
    lines.append(f"steps sent: {seen.sent} of {len(scenario.steps)}")
    for label in scenario.request_labels():
        expectation = scenario.expect.get(label)
        lines.append(f"{label} ({seen.request_ids.get(label, 'no request seen')}):")
        if expectation is not None and expectation.joins is None:
            for number, outcome in enumerate(expectation.outcomes(), start=1):
                name = f"expected (reading {number})" if len(expectation.outcomes()) > 1 else "expected"
                lines.append(f"  {name}: " + " -> ".join(p.describe() for p in outcome.statuses))
                lines += [f"    posting {posting.describe()}" for posting in outcome.resolutions]
                if not outcome.resolutions:
                    lines.append("    no posting")
        elif expectation is not None:
            lines.append(f"  expected: joins {expectation.joins}")
        lines.append("  seen:")
        for status in seen.statuses.get(label, []):
            reason = f": {status.get('reason')}" if status.get("reason") else ""
            queue = f" [{status.get('queue')}]" if status.get("queue") else ""
            lines.append(f"    {status.get('status')}{reason}{queue} - {str(status.get('message'))[:200]}")
        lines += [f"    posting {describe_posting(p)}" for p in seen.postings.get(label, [])]
    for expected in scenario.dead_letters:
        lines.append(f"expected dead letter: {expected.topic} {expected.key or ''} {expected.reason}")
    lines += [f"seen dead letter: {letter.describe()}" for letter in seen.dead_letters]
    return "\n".join(lines)


def summary(
    scenarios: Sequence[Scenario], results: Mapping[str, Seen], seconds: float, published: int
) -> str:
    """One line per scenario: passed or what failed, and whether it is expected to fail today."""
    lines = [f"corpus run: {len(scenarios)} scenarios, {published} messages published, {seconds:.0f} s"]
    for scenario in scenarios:
        problems = judge(scenario, results[scenario.name])
        verdict = "pass" if not problems else "FAIL"
        marker = f" [xfail: {scenario.xfail}]" if scenario.xfail else ""
        first = f" - {problems[0]}" if problems else ""
        lines.append(f"{verdict:4} {scenario.file}:{scenario.name}{marker}{first}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The stack the corpus runs on, and the pytest glue
# --------------------------------------------------------------------------------------

VIEW_COLLECTIONS: Mapping[str, str] = {
    CUSTOMERS: "customers",
    INVOICES: "invoices",
    PAYMENTS: "payments",
    CONTRACTS: "contracts",
}


@dataclass(frozen=True, repr=False)
class CorpusResults:
    """What one run saw of every scenario, and what it cost."""

    seen: Mapping[str, Seen]
    seconds: float
    published: int
    reference_wait: float
    summary: str


async def run_on_stack(servers: Servers, scenarios: Sequence[Scenario]) -> CorpusResults:
    """Start the five services (databases and consumer groups of their own), run every scenario."""
    from services.audit.app import build_app as build_audit
    from services.audit.settings import AuditSettings
    from services.intake.app import build_app as build_intake
    from services.intake.settings import IntakeSettings
    from services.resolution.app import build_app as build_resolution
    from services.resolution.settings import ResolutionSettings
    from services.routing.app import build_app as build_routing
    from services.routing.settings import RoutingSettings
    from services.validation.app import build_app as build_validation
    from services.validation.settings import ValidationSettings

    # A question waits 44 seconds for its answer here (ten business days by default): long enough
    # for every scenario that answers, short enough to see a reminder and a no_response close.
    validation = isolated_settings(ValidationSettings).model_copy(update={"customer_answer_seconds": 44.0})
    resolution = isolated_settings(ResolutionSettings)
    # A reply reopens a request closed less than a minute ago (30 days by default); a later one
    # (a step with a delay) opens a new request linked to it.
    intake = isolated_settings(IntakeSettings).model_copy(update={"reopen_window_days": 60 / 86400})
    client = mongo(servers)

    async def views_know(topic: str, keys: list[str]) -> set[str]:
        collection = VIEW_COLLECTIONS[topic]
        known: set[str] | None = None
        for database in (validation.database, resolution.database):
            found = {
                str(document["_id"])
                async for document in client[database][collection].find({"_id": {"$in": keys}}, {"_id": 1})
            }
            known = found if known is None else known & found
        return known or set()

    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        await enter(running_service(build_intake, intake, servers))
        await enter(running_service(build_validation, validation, servers))
        await enter(running_service(build_routing, isolated_settings(RoutingSettings), servers))
        await enter(running_service(build_resolution, resolution, servers))
        await enter(running_service(build_audit, isolated_settings(AuditSettings), servers))
        run = CorpusRun(servers.bootstrap_servers, scenarios, views_know=views_know)
        started = time.monotonic()
        seen = await run.run()
        seconds = time.monotonic() - started
    await client.close()
    text = summary(scenarios, seen, seconds, run.published)
    text += f"\nwaited {run.reference_wait:.1f} s for the services to take in the reference data"
    return CorpusResults(seen, seconds, run.published, run.reference_wait, text)


def scenario_params(scenarios: Sequence[Scenario]) -> list[Any]:
    """One pytest parameter per scenario, strictly expected to fail where the corpus says why."""
    import pytest

    return [
        pytest.param(
            scenario.name,
            id=f"{Path(scenario.file).stem}/{scenario.name}",
            marks=[pytest.mark.xfail(strict=True, reason=scenario.xfail)] if scenario.xfail else [],
        )
        for scenario in scenarios
    ]


def check(scenarios: Sequence[Scenario], name: str, results: CorpusResults) -> None:
    """Fail with the scenario's report when what was seen is not what it expects."""
    (scenario,) = [scenario for scenario in scenarios if scenario.name == name]
    seen = results.seen[scenario.name]
    problems = judge(scenario, seen)
    assert not problems, report(scenario, seen, problems)
