"""Hand-written fakes of the boundaries: an in-memory ledger, a recording publisher, and the stores
of validation's and resolution's lifecycles (in memory, each request saved as a copy)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.resolution.lifecycle import RequestResolution
from services.resolution.strategies import Facts as ResolutionFacts
from services.validation.domain import References
from services.validation.duplicates import Claim
from services.validation.lifecycle import Facts as ValidationFacts
from services.validation.lifecycle import Hold, Lookup, RequestValidation
from shared.contract import Customer, CustomerContract, Invoice, Payment
from shared.delivery import OutgoingMessage
from shared.events import RequestRouted


@dataclass(eq=False)  # identity, like a real transaction: it keys per-transaction buffers
class FakeTransaction:
    ledger: FakeLedger
    outgoing: list[tuple[str, OutgoingMessage]] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    current_key: str = ""
    session: Any = None
    actions: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    committed_actions: list[Callable[[], None]] = field(default_factory=list)
    rollback_actions: list[Callable[[], None]] = field(default_factory=list)

    async def processed_among(self, keys: Sequence[str]) -> set[str]:
        return {key for key in keys if key in self.ledger.processed}

    def begin(self, key: str) -> None:
        self.current_key = key

    def mark_processed(self, key: str) -> None:
        self.marks.append(key)

    def emit(self, message: OutgoingMessage) -> None:
        self.outgoing.append((self.current_key, message))

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        self.actions.append(action)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed_actions.append(action)

    def after_rollback(self, action: Callable[[], None]) -> None:
        self.rollback_actions.append(action)

    @property
    def emitted(self) -> list[OutgoingMessage]:
        return [message for _, message in self.outgoing]


@dataclass
class FakeLedger:
    """Commits atomically like the real one: all of a transaction's effects or none."""

    processed: set[str] = field(default_factory=set)
    outbox: dict[str, tuple[str, OutgoingMessage, bool]] = field(default_factory=dict)
    fail_next_commits: int = 0
    commit_error: Callable[[], BaseException] = lambda: ConnectionError("database went away during commit")
    down: bool = False
    commits: int = 0
    refused: dict[str, tuple[OutgoingMessage, str]] = field(default_factory=dict)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        transaction = FakeTransaction(self)
        try:
            yield transaction
            for action in transaction.actions:
                await action()
            if self.fail_next_commits:
                self.fail_next_commits -= 1
                raise self.commit_error()
        except BaseException:
            for rolled_back in transaction.rollback_actions:
                rolled_back()
            raise
        self.commits += 1
        self.processed.update(transaction.marks)
        for source_key, message in transaction.outgoing:
            self.outbox.setdefault(message.message_id, (source_key, message, False))
        for committed in transaction.committed_actions:
            committed()

    async def unpublished(
        self,
        *,
        source_keys: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
        older_than: timedelta | None = None,
        limit: int | None = 500,
    ) -> list[OutgoingMessage]:
        del older_than  # every entry counts as old enough in a fake
        return [
            message
            for source_key, message, published in self.outbox.values()
            if not published
            and (source_keys is None or source_key in source_keys)
            and (keys is None or message.key in keys)
        ][:limit]

    def is_unavailable(self, error: BaseException) -> bool:
        return isinstance(error, ConnectionError)

    async def answers(self) -> bool:
        return not self.down

    async def set_aside(self, message: OutgoingMessage, *, reason: str) -> None:
        self.refused[message.message_id] = (self.outbox.pop(message.message_id)[1], reason)

    async def mark_published(self, messages: Sequence[OutgoingMessage]) -> None:
        for published in messages:
            key, message, _ = self.outbox[published.message_id]
            self.outbox[published.message_id] = (key, message, True)


@dataclass
class RecordingPublisher:
    sent: list[tuple[str, str | None, bytes, dict[str, str]]] = field(default_factory=list)
    fail_next: int = 0

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker unavailable")
        self.sent.append((topic, key, value, headers))
        delivered: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    def on(self, topic: str) -> list[tuple[str, str | None, bytes, dict[str, str]]]:
        return [sent for sent in self.sent if sent[0] == topic]


@dataclass
class FakeValidationStore:
    """Validation's store in memory: reference records by id, requests saved as copies, claims.

    Like the real one, a request's claims are taken when it is passed on (again) and let go when
    it is closed; documents are found by id only (not by normalised number).
    """

    customers: dict[str, Customer] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    contracts: dict[str, CustomerContract] = field(default_factory=dict)
    saved: dict[str, RequestValidation] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)
    saves: int = 0

    async def load(self, request_id: str, *, session: Any) -> RequestValidation | None:
        found = self.saved.get(request_id)
        return copy.deepcopy(found) if found is not None else None

    async def save(self, request: RequestValidation, *, session: Any) -> None:
        before = self.saved.get(request.request_id)
        reopened = request.opened is not None and (before is None or before.opened != request.opened)
        if reopened or (before is not None and before.open and not request.open):
            for key in before.claims if before is not None else ():
                if key in self.claims and self.claims[key].request_id == request.request_id:
                    del self.claims[key]
        if reopened and request.opened is not None:
            for key in request.claims:
                self.claims[key] = Claim(key, request.request_id, request.opened.opened_at)
        self.saved[request.request_id] = copy.deepcopy(request)
        self.saves += 1

    async def facts(self, lookup: Lookup, *, session: Any) -> ValidationFacts:
        customers = [
            customer
            for customer in self.customers.values()
            if customer.customer_id == lookup.customer_id
            or (
                lookup.customer_id is None
                and lookup.sender_email is not None
                and lookup.sender_email.lower() in {c.email.lower() for c in customer.contacts if c.email}
            )
        ]
        return ValidationFacts(
            customers,
            # As the real store does: numbers from the text are looked up by id too.
            self._references(
                (*lookup.invoice_ids, *lookup.invoice_numbers),
                (*lookup.payment_ids, *lookup.payment_numbers),
                lookup.contract_ids,
            ),
        )

    async def claims_held(self, keys: Sequence[str], *, session: Any) -> list[Claim]:
        return [self.claims[key] for key in keys if key in self.claims]

    async def all_holds(self) -> list[Hold]:
        return [request.hold for request in self.saved.values() if request.held and request.hold is not None]

    async def awaited_by(self, holds: Sequence[Hold]) -> tuple[dict[str, Customer], References]:
        awaited = [item.partition(":") for hold in holds for item in hold.waiting_for]
        customers = {
            hold.customer_id: self.customers[hold.customer_id]
            for hold in holds
            if hold.customer_id in self.customers
        }
        return customers, self._references(
            [key for kind, _, key in awaited if kind == "invoice"],
            [key for kind, _, key in awaited if kind == "payment"],
            [key for kind, _, key in awaited if kind == "contract"],
        )

    def _references(
        self, invoice_ids: Sequence[str], payment_ids: Sequence[str], contract_ids: Sequence[str]
    ) -> References:
        invoices = {key: self.invoices.get(key) for key in invoice_ids}
        named = [
            *contract_ids,
            *(found.contract_id for found in invoices.values() if found and found.contract_id),
        ]
        return References(
            invoices=invoices,
            payments={key: self.payments.get(key) for key in payment_ids},
            contracts={key: self.contracts.get(key) for key in named},
        )


@dataclass
class FakeResolutionStore:
    """Resolution's store in memory: requests saved as copies, the facts the strategies see now."""

    facts_now: ResolutionFacts = field(
        default_factory=lambda: ResolutionFacts(customer=None, invoices={}, contracts={}, payments={})
    )
    saved: dict[str, RequestResolution] = field(default_factory=dict)
    saves: int = 0

    async def load(self, request_id: str, *, session: Any) -> RequestResolution | None:
        found = self.saved.get(request_id)
        return copy.deepcopy(found) if found is not None else None

    async def save(self, request: RequestResolution, *, session: Any) -> None:
        self.saved[request.request_id] = copy.deepcopy(request)
        self.saves += 1

    async def facts(self, event: RequestRouted, *, session: Any) -> ResolutionFacts:
        return self.facts_now

    async def documents(
        self, *, customer_id: str, invoice_ids: Any, payment_ids: Any, session: Any
    ) -> ResolutionFacts:
        return self.facts_now

    async def waiting_for_reference_data(self) -> list[str]:
        return [key for key, request in self.saved.items() if request.waits_for_reference_data]

    async def with_overdue_postings(self, now: datetime) -> list[str]:
        return [
            key
            for key, request in self.saved.items()
            if any(posting.overdue(now) for posting in request.postings.values())
        ]
