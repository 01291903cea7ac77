"""A service's own view of a reference topic (customers, invoices, payments, contracts).

The contract says the latest message per key is the current record. Messages of one key arrive in
order on one partition, but a republished or replayed older version can still come late, so a
record replaces the stored one only when its ``updated_at`` is newer.

Invoices and payments are stored with their normalised numbers (``number_keys``, indexed), so a
number written in any format finds them (:mod:`shared.document_numbers`). Amounts are stored as
money objects whichever form the ERP sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.contract import Customer, CustomerContract, Invoice, Payment, ReferenceRecord
from shared.delivery import LedgerTransaction, MessageOrigin
from shared.document_numbers import number_keys
from shared.mongo import Document, batch_documents
from shared.runtime import ServiceRuntime
from shared.topics import CONTRACTS, CUSTOMERS, INVOICES, PAYMENTS

RecordT = TypeVar("RecordT", bound=ReferenceRecord)

NUMBER_KEYS = "number_keys"
"""The field of an invoice or payment record holding its normalised numbers (indexed)."""


def _as_published(record: ReferenceRecord) -> dict[str, Any]:
    return record.model_dump(mode="json")


def _numbered(number: Callable[[Any], str]) -> Callable[[Any], dict[str, Any]]:
    """The record as published, plus its normalised numbers for lookups by number."""

    def document(record: ReferenceRecord) -> dict[str, Any]:
        return {**record.model_dump(mode="json"), NUMBER_KEYS: list(number_keys(number(record)))}

    return document


class ReferenceView:
    """Latest-version-wins records of one reference topic, in one collection."""

    def __init__(self, database: AsyncDatabase[Document], collection: str) -> None:
        self._collection = database[collection]

    async def upsert_if_newer(
        self, key: str, record: dict[str, Any], updated_at: datetime, *, session: AsyncClientSession | None
    ) -> bool:
        """Store ``record`` under ``key`` unless a newer version is already stored."""
        current = await self._collection.find_one({"_id": key}, {"updated_at": 1}, session=session)
        if current is not None and current["updated_at"] >= updated_at:
            return False
        await self._collection.replace_one(
            {"_id": key}, {**record, "_id": key, "updated_at": updated_at}, upsert=True, session=session
        )
        return True

    @property
    def collection(self) -> AsyncCollection[Document]:
        """The view's collection (what a batch prefetch reads, :class:`shared.mongo.BatchDocuments`)."""
        return self._collection

    async def get(self, key: str, *, session: AsyncClientSession | None = None) -> Document | None:
        """The record stored under ``key``: read once per batch where the batch prefetched it."""
        return await batch_documents(session).fetch_one(self._collection, key)

    async def get_many(
        self, keys: Iterable[str], *, session: AsyncClientSession | None = None
    ) -> dict[str, Document | None]:
        """The records stored under ``keys`` (None: not stored), one ``$in`` per chunk."""
        return await batch_documents(session).fetch(self._collection, keys)

    async def find(self, query: Document, *, session: AsyncClientSession | None = None) -> list[Document]:
        return [document async for document in self._collection.find(query, session=session)]

    async def create_index(self, field: str) -> None:
        await self._collection.create_index(field)

    async def ensure_number_keys(self, number_field: str) -> None:
        """Index the normalised numbers and give them to records stored before they existed.

        Lookups by number query this field alone (``{"number_keys": {"$in": ...}}``) and filter by
        customer in the service: the local database server leaves a selective index aside when a
        query combines it with the customer and other conditions.
        """
        await self._collection.create_index(NUMBER_KEYS)
        # Equal to null, not ``$exists: False``: the same records (a missing field is indexed as
        # null), read by the index instead of a scan of the whole collection at every start.
        missing = self._collection.find({NUMBER_KEYS: None}, {number_field: 1})
        async for document in missing:
            keys = list(number_keys(str(document.get(number_field) or document["_id"])))
            await self._collection.update_one({"_id": document["_id"]}, {"$set": {NUMBER_KEYS: keys}})

    async def find_by_numbers(
        self, numbers: Iterable[str], *, session: AsyncClientSession | None
    ) -> dict[str, list[Document]]:
        """Every stored record whose normalised number matches each of ``numbers`` (any customer)."""
        keys_of = {number: set(number_keys(number)) for number in dict.fromkeys(numbers)}
        wanted = sorted(set().union(*keys_of.values())) if keys_of else []
        by_key = await batch_documents(session).fetch_by(self._collection, NUMBER_KEYS, wanted)
        found: dict[str, list[Document]] = {}
        for number, keys in keys_of.items():
            matches = {document["_id"]: document for key in sorted(keys) for document in by_key[key]}
            found[number] = list(matches.values())
        return found


def subscribe_reference_view(
    runtime: ServiceRuntime,
    *,
    topic: str,
    model: type[RecordT],
    view: ReferenceView,
    key_of: Callable[[RecordT], str],
    document_of: Callable[[RecordT], dict[str, Any]] = _as_published,
) -> None:
    """Keep ``view`` up to date from ``topic``: latest ``updated_at`` wins, redelivery is a no-op."""

    async def apply(record: RecordT, tx: LedgerTransaction, _: MessageOrigin) -> None:
        await view.upsert_if_newer(key_of(record), document_of(record), record.updated_at, session=tx.session)

    def idempotency_key(record: RecordT, _: MessageOrigin) -> str:
        return f"{topic}:{key_of(record)}:{record.updated_at.isoformat()}"

    runtime.subscribe(topic, model, apply, key=idempotency_key)


class ReferenceViews(Protocol):
    """A service's views of the four reference topics."""

    customers: ReferenceView
    invoices: ReferenceView
    payments: ReferenceView
    contracts: ReferenceView


def subscribe_reference_views(
    runtime: ServiceRuntime,
    views: ReferenceViews,
    *,
    customer_document: Callable[[Customer], dict[str, Any]] = lambda customer: customer.model_dump(
        mode="json"
    ),
) -> None:
    """Keep all four reference views up to date, each from its topic (latest ``updated_at`` wins)."""
    subscribe_reference_view(
        runtime,
        topic=CUSTOMERS,
        model=Customer,
        view=views.customers,
        key_of=lambda customer: customer.customer_id,
        document_of=_as_published if customer_document is None else customer_document,
    )
    subscribe_reference_view(
        runtime,
        topic=INVOICES,
        model=Invoice,
        view=views.invoices,
        key_of=lambda invoice: invoice.invoice_id,
        document_of=_numbered(lambda invoice: invoice.invoice_id),
    )
    subscribe_reference_view(
        runtime,
        topic=PAYMENTS,
        model=Payment,
        view=views.payments,
        key_of=lambda payment: payment.payment_id,
        document_of=_numbered(lambda payment: payment.payment_id),
    )
    subscribe_reference_view(
        runtime,
        topic=CONTRACTS,
        model=CustomerContract,
        view=views.contracts,
        key_of=lambda contract: contract.contract_id,
    )
