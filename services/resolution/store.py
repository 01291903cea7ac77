"""Resolution's own view: routed requests, their approvals, the resolutions issued, and its own
copies of the reference data (customers, invoices, payments, contracts) the strategies read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.resolution import strategies
from services.resolution.strategies import Facts
from shared.contract import Customer, CustomerContract, ErpAck, Invoice, Payment
from shared.document_numbers import reference_numbers
from shared.events import RequestRouted
from shared.mongo import Document
from shared.reference_views import ReferenceView


class ResolutionStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
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
        customer = await self.customers.get(event.customer_id, session=session)
        invoices = {
            document["invoice_id"]: Invoice.model_validate(document)
            async for document in self._invoices.find(
                {"_id": {"$in": list(details.invoice_ids)}}, session=session
            )
        }
        contract_ids = {invoice.contract_id for invoice in invoices.values() if invoice.contract_id}
        if details.contract_id:
            contract_ids.add(details.contract_id)
        contracts = (
            {
                document["contract_id"]: CustomerContract.model_validate(document)
                async for document in self._contracts.find(
                    {"_id": {"$in": sorted(contract_ids)}}, session=session
                )
            }
            if contract_ids
            else {}
        )
        payments = {
            document["payment_id"]: Payment.model_validate(document)
            async for document in self._payments.find(
                {"_id": {"$in": list(details.payment_ids)}}, session=session
            )
        }
        # The customer's payments by customer alone (its index), the open ones picked here: with
        # the status in the query too the local database server leaves the index aside.
        async for document in self._payments.find({"customer_id": event.customer_id}, session=session):
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

    async def resolutions_of(self, request_id: str, *, session: AsyncClientSession) -> list[Document]:
        """Every resolution issued for the request (a request may have several postings)."""
        return [
            document async for document in self._resolutions.find({"request_id": request_id}, session=session)
        ]

    async def request(self, request_id: str, *, session: AsyncClientSession) -> Document | None:
        return await self._requests.find_one({"_id": request_id}, session=session)

    async def save_request(
        self, request_id: str, record: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        await self._requests.replace_one(
            {"_id": request_id}, {**record, "_id": request_id}, upsert=True, session=session
        )

    async def waiting_for_reference_data(self) -> list[str]:
        """Ids of the requests whose strategy waits for reference data to arrive."""
        cursor = self._requests.find({"state": "awaiting_reference_data"}, {"_id": 1})
        return [str(document["_id"]) async for document in cursor]

    async def resolution(self, resolution_id: str, *, session: AsyncClientSession | None) -> Document | None:
        return await self._resolutions.find_one({"_id": resolution_id}, session=session)

    async def record_resolution(
        self, resolution_id: str, record: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        await self._resolutions.insert_one({**record, "_id": resolution_id}, session=session)

    async def overdue_resolutions(self, now: datetime) -> list[str]:
        """Ids of resolutions issued but not acknowledged in time and not escalated yet.

        ``escalated_at`` is checked here, not in the query: with it in the query the local
        database server leaves the (status, ack_due_at) index aside (37 ms instead of 1 at 800
        resolutions, growing with them, every few seconds, and holding other statements up).
        """
        cursor = self._resolutions.find(
            {"status": "issued", "ack_due_at": {"$lt": now}}, {"_id": 1, "escalated_at": 1}
        )
        return [str(document["_id"]) async for document in cursor if document.get("escalated_at") is None]

    async def mark_escalated(self, resolution_id: str, at: datetime, *, session: AsyncClientSession) -> None:
        await self._resolutions.update_one(
            {"_id": resolution_id}, {"$set": {"escalated_at": at}}, session=session
        )

    async def record_ack(
        self,
        ack: ErpAck,
        *,
        request_state: str,
        at: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Keep the ERP's answer on the resolution, and the request's new state."""
        await self._resolutions.update_one(
            {"_id": ack.resolution_id},
            {
                "$set": {
                    "status": ack.status,
                    "erp_document_id": ack.erp_document_id,
                    "erp_error": ack.error,
                    "acknowledged_at": at,
                }
            },
            session=session,
        )
        await self._requests.update_one(
            {"_id": ack.request_id}, {"$set": {"state": request_state}}, session=session
        )
