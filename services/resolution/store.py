"""Resolution's own view: routed requests, their approvals, the resolutions issued, and its own
copies of the reference data (customers, invoices, payments, contracts) the strategies read.

A request's lifecycle (:class:`services.resolution.lifecycle.RequestResolution`) is loaded from its
document in ``requests`` and its postings in ``resolutions`` (one document per posting, what the
ERP answered on it included), and saved back to them: the shapes they always had, so documents of
earlier versions load too (:func:`request_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from pymongo import ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.resolution import strategies
from services.resolution.approvals import RecordedApproval
from services.resolution.lifecycle import (
    AboutRequest,
    IssuedPosting,
    PendingPostings,
    PostingStatus,
    Refusal,
    RequestResolution,
    ResolutionState,
)
from services.resolution.strategies import Facts
from shared.contract import (
    Channel,
    Customer,
    CustomerContract,
    ErpAck,
    ErpResolution,
    Invoice,
    Payment,
    Priority,
)
from shared.delivery import LedgerTransaction
from shared.document_numbers import reference_numbers
from shared.events import RequestRouted
from shared.mongo import Document, batch_documents, open_batch_documents
from shared.reference_views import ReferenceView


class ResolutionStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        # Each request as loaded (or last saved), so that save writes only what changed.
        self._as_loaded: WeakKeyDictionary[RequestResolution, _Saved] = WeakKeyDictionary()
        self._requests = database.requests
        self._resolutions = database.resolutions
        self.customers = ReferenceView(database, "customers")
        self.invoices = ReferenceView(database, "invoices")
        self.payments = ReferenceView(database, "payments")
        self.contracts = ReferenceView(database, "contracts")
        self._payments = database.payments
        self._invoices = database.invoices
        self._contracts = database.contracts

    async def ensure_indexes(self) -> None:
        await self._resolutions.create_index("request_id")
        await self._resolutions.create_index([("status", 1), ("ack_due_at", 1)])
        await self._payments.create_index("customer_id")
        await self._requests.create_index("state")
        await self.invoices.ensure_number_keys("invoice_id")
        await self.payments.ensure_number_keys("payment_id")

    async def facts(self, event: RequestRouted, *, session: AsyncClientSession) -> Facts:
        """What the views know about the request's customer and documents (four reads)."""
        details = event.details
        read = batch_documents(session)
        customer = await self.customers.get(event.customer_id, session=session)
        invoices = {
            document["invoice_id"]: Invoice.model_validate(document)
            for document in (await read.fetch(self._invoices, details.invoice_ids)).values()
            if document is not None
        }
        contract_ids = {invoice.contract_id for invoice in invoices.values() if invoice.contract_id}
        if details.contract_id:
            contract_ids.add(details.contract_id)
        contracts = {
            document["contract_id"]: CustomerContract.model_validate(document)
            for document in (await read.fetch(self._contracts, sorted(contract_ids))).values()
            if document is not None
        }
        payments = {
            document["payment_id"]: Payment.model_validate(document)
            for document in (await read.fetch(self._payments, details.payment_ids)).values()
            if document is not None
        }
        # The customer's payments by customer alone (its index), the open ones picked here: with
        # the status in the query too the local database server leaves the index aside.
        by_customer = await read.fetch_by(self._payments, "customer_id", [event.customer_id])
        for document in by_customer[event.customer_id]:
            payment = Payment.model_validate(document)
            if strategies.remaining_of(payment) > 0:
                payments.setdefault(payment.payment_id, payment)
        numbers = {
            number
            for payment in payments.values()
            if payment.customer_id == event.customer_id
            for number in reference_numbers(payment.reference or "")
        }
        found = await self.invoices.find_by_numbers(numbers, session=session)
        invoices_by_number = {
            number: [
                Invoice.model_validate(document)
                for document in documents
                if document["customer_id"] == event.customer_id
            ]
            for number, documents in found.items()
        }
        return Facts(
            customer=Customer.model_validate(customer) if customer is not None else None,
            invoices=invoices,
            contracts=contracts,
            payments=payments,
            invoices_by_number=invoices_by_number,
        )

    async def documents(
        self,
        *,
        customer_id: str,
        invoice_ids: Iterable[str],
        payment_ids: Iterable[str],
        session: AsyncClientSession,
    ) -> Facts:
        """The customer and the documents a person's decision names, by id (each read by ``_id``).

        What a decision is checked against: whoever they belong to (the check says whose they are).
        """
        customer = await self.customers.get(customer_id, session=session)
        invoices = {
            document["invoice_id"]: Invoice.model_validate(document)
            async for document in self._invoices.find(
                {"_id": {"$in": sorted(set(invoice_ids))}}, session=session
            )
        }
        payments = {
            document["payment_id"]: Payment.model_validate(document)
            async for document in self._payments.find(
                {"_id": {"$in": sorted(set(payment_ids))}}, session=session
            )
        }
        return Facts(
            customer=Customer.model_validate(customer) if customer is not None else None,
            invoices=invoices,
            contracts={},
            payments=payments,
        )

    # A batch's reads at once ------------------------------------------------------------

    async def prefetch_routed(self, events: Sequence[RequestRouted], tx: LedgerTransaction) -> None:
        """Read what a batch of routed requests needs, one ``$in`` per collection and kind, and keep
        the batch's writes until its commit (:class:`shared.mongo.BatchDocuments`)."""
        read = open_batch_documents(tx.session, tx.before_commit)
        await read.fetch(self._requests, [event.request_id for event in events])
        await read.fetch(self.customers.collection, [event.customer_id for event in events])
        invoices = await read.fetch(self._invoices, [key for e in events for key in e.details.invoice_ids])
        contracts = [event.details.contract_id for event in events if event.details.contract_id]
        contracts += [
            found["contract_id"] for found in invoices.values() if found and found.get("contract_id")
        ]
        await read.fetch(self._contracts, contracts)
        await read.fetch(self._payments, [key for e in events for key in e.details.payment_ids])
        by_customer = await read.fetch_by(self._payments, "customer_id", [e.customer_id for e in events])
        numbers = [
            number
            for documents in by_customer.values()
            for document in documents
            for number in reference_numbers(Payment.model_validate(document).reference or "")
        ]
        await self.invoices.find_by_numbers(numbers, session=tx.session)

    async def prefetch_acks(self, acks: Sequence[ErpAck], tx: LedgerTransaction) -> None:
        """Read the requests a batch of ERP answers is about (their postings are read by request)."""
        read = open_batch_documents(tx.session, tx.before_commit)
        await read.fetch(self._requests, [ack.request_id for ack in acks])

    # The lifecycle of each request: its document in ``requests``, its postings in ``resolutions``.

    async def load(self, request_id: str, *, session: AsyncClientSession | None) -> RequestResolution | None:
        """The request as last saved, with its postings (None: resolution never saw it)."""
        read = batch_documents(session)
        document = await read.fetch_one(self._requests, request_id)
        if document is None:
            return None
        postings: list[Document] = []
        if document.get("resolution_ids") or document.get("resolution_id"):
            await read.flush(self._resolutions)  # postings this batch wrote are read below
            cursor = self._resolutions.find({"request_id": request_id}, session=session)
            postings = [posting async for posting in cursor]
        request = request_of(document, postings)
        self._as_loaded[request] = _Saved(request_document(request), dict(request.postings))
        return request

    async def save(self, request: RequestResolution, *, session: AsyncClientSession) -> None:
        """Write what changed since the request was loaded (a new request: all of it).

        A posting is inserted only if no posting of its id exists: a resolution id is sent once,
        ever. A request or posting that did not change is not written.
        """
        saved = self._as_loaded.get(request) or _Saved(None, {})
        document = request_document(request)
        written = batch_documents(session)
        if document != saved.document:
            await written.stage(
                self._requests,
                ReplaceOne({"_id": request.request_id}, document, upsert=True),
                one=request.request_id,
                becomes=document,
            )
        for resolution_id, posting in request.postings.items():
            before = saved.postings.get(resolution_id)
            if before is None:
                await written.stage(
                    self._resolutions,
                    UpdateOne(
                        {"_id": resolution_id}, {"$setOnInsert": posting_document(posting)}, upsert=True
                    ),
                    one=resolution_id,
                )
            elif posting != before:
                await written.stage(
                    self._resolutions,
                    ReplaceOne({"_id": resolution_id}, posting_document(posting)),
                    one=resolution_id,
                )
        self._as_loaded[request] = _Saved(document, dict(request.postings))

    async def waiting_for_reference_data(self) -> list[str]:
        """Ids of the requests whose strategy waits for reference data to arrive."""
        cursor = self._requests.find({"state": ResolutionState.AWAITING_REFERENCE_DATA.value}, {"_id": 1})
        return [str(document["_id"]) async for document in cursor]

    async def with_overdue_postings(self, now: datetime) -> list[str]:
        """Ids of the requests with a posting sent, not acknowledged in time and not escalated yet.

        ``escalated_at`` is checked here, not in the query: with it in the query the local
        database server leaves the (status, ack_due_at) index aside (37 ms instead of 1 at 800
        resolutions, growing with them, every few seconds, and holding other statements up).
        """
        cursor = self._resolutions.find(
            {"status": PostingStatus.ISSUED.value, "ack_due_at": {"$lt": now}},
            {"_id": 1, "request_id": 1, "escalated_at": 1},
        )
        found = [document async for document in cursor if document.get("escalated_at") is None]
        return list(dict.fromkeys(str(document["request_id"]) for document in found))


@dataclass(frozen=True)
class _Saved:
    """A request as it was loaded or last saved: what :meth:`ResolutionStore.save` compares with."""

    document: Document | None
    postings: dict[str, IssuedPosting]


def request_document(request: RequestResolution) -> Document:
    """The request as stored in ``requests`` (the shape it always had, with every field present)."""
    about, pending = request.about, request.pending
    return {
        "_id": request.request_id,
        "channel": about.channel.value,
        "source_id": about.source_id,
        "customer_id": about.customer_id,
        "request_type": about.request_type,
        "queue": about.queue,
        "priority": about.priority.value if about.priority else None,
        "sla_due_at": about.sla_due_at,
        "requesters": list(about.requesters),
        "state": request.state.value,
        "reason": request.reason,
        "resolution_id": request.resolution_ids[0] if request.resolution_ids else None,
        "resolution_ids": list(request.resolution_ids),
        "routed_at": request.routed_at,
        "event": request.routed.model_dump(mode="json") if request.routed else None,
        "wait_for_data_until": request.wait_for_data_until,
        "candidates": list(request.candidates),
        "pending": pending.resolutions[0].model_dump(mode="json") if pending else None,
        "pending_more": [resolution.model_dump(mode="json") for resolution in pending.resolutions[1:]]
        if pending
        else [],
        "explanation": pending.explanation if pending else None,
        "required_roles": list(pending.required_roles) if pending else [],
        "policy_version": pending.policy_version if pending else None,
        "approvals": [vars(approval) for approval in request.approvals],
        "refusals": [vars(refusal) for refusal in request.refusals],
        "rejected_by": request.rejected_by,
        "decided_by": list(request.decided_by),
    }


def request_of(document: Document, postings: Iterable[Document]) -> RequestResolution:
    """A stored request as its lifecycle, documents of every earlier version included.

    Fields a version did not store yet read as their absence: no routed event (before it was
    kept), no wait for data, no requesters, no second posting (``pending_more``), no refusals.
    """
    pending = [document["pending"], *document.get("pending_more", [])] if document.get("pending") else []
    priority = document.get("priority")
    event = document.get("event")
    ids = document.get("resolution_ids") or (
        [document["resolution_id"]] if document.get("resolution_id") else []
    )
    return RequestResolution(
        request_id=str(document["_id"]),
        about=AboutRequest(
            channel=Channel(document.get("channel", "crm")),
            source_id=document.get("source_id", ""),
            customer_id=document.get("customer_id"),
            request_type=document.get("request_type"),
            queue=document.get("queue"),
            priority=Priority(priority) if priority else None,
            sla_due_at=document.get("sla_due_at"),
            requesters=tuple(document.get("requesters", ())),
        ),
        routed=RequestRouted.model_validate(event) if event else None,
        state=ResolutionState(document["state"]),
        routed_at=document["routed_at"],
        wait_for_data_until=document.get("wait_for_data_until"),
        reason=document.get("reason"),
        candidates=tuple(document.get("candidates", ())),
        pending=PendingPostings(
            resolutions=tuple(ErpResolution.model_validate(one) for one in pending),
            explanation=document.get("explanation") or "",
            required_roles=tuple(document.get("required_roles", ())),
            policy_version=document.get("policy_version") or "",
        )
        if pending
        else None,
        approvals=tuple(RecordedApproval(**approval) for approval in document.get("approvals", ())),
        refusals=tuple(Refusal(**refusal) for refusal in document.get("refusals", ())),
        rejected_by=document.get("rejected_by"),
        resolution_ids=tuple(ids),
        postings={str(posting["_id"]): posting_of(posting) for posting in postings},
        decided_by=tuple(document.get("decided_by", ())),
    )


def posting_document(posting: IssuedPosting) -> Document:
    """A posting as stored in ``resolutions``: the resolution sent, and what became of it."""
    return {
        **posting.resolution.model_dump(mode="json"),
        "_id": posting.resolution_id,
        "status": posting.status.value,
        "issued_at": posting.issued_at,
        "ack_due_at": posting.ack_due_at,
        "escalated_at": posting.escalated_at,
        "erp_document_id": posting.erp_document_id,
        "erp_error": posting.erp_error,
        "acknowledged_at": posting.acknowledged_at,
    }


def posting_of(document: Document) -> IssuedPosting:
    return IssuedPosting(
        resolution=ErpResolution.model_validate(document),
        status=PostingStatus(document["status"]),
        issued_at=document["issued_at"],
        ack_due_at=document["ack_due_at"],
        escalated_at=document.get("escalated_at"),
        erp_document_id=document.get("erp_document_id"),
        erp_error=document.get("erp_error"),
        acknowledged_at=document.get("acknowledged_at"),
    )
