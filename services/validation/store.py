"""Validation's own views: the four reference topics, and what it decided about each request."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.contract import Customer, Invoice
from shared.mongo import Document
from shared.reference_views import ReferenceView


class ValidationStore:
    """Reference views (latest version wins) and validation outcomes, in validation's database."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.customers = ReferenceView(database, "customers")
        self.invoices = ReferenceView(database, "invoices")
        self.payments = ReferenceView(database, "payments")
        self.contracts = ReferenceView(database, "contracts")
        self._outcomes = database.validations

    async def ensure_indexes(self) -> None:
        await self.customers.create_index("contact_emails")
        await self.invoices.create_index("customer_id")

    async def customers_for(
        self, *, customer_id: str | None, sender_email: str | None, session: AsyncClientSession
    ) -> list[Customer]:
        """The customer with this id, or every customer with this contact address."""
        if customer_id is not None:
            found = await self.customers.get(customer_id, session=session)
            documents = [] if found is None else [found]
        elif sender_email:
            documents = await self.customers.find({"contact_emails": sender_email.lower()}, session=session)
        else:
            documents = []
        return [Customer.model_validate(document) for document in documents]

    async def invoices_by_id(
        self, invoice_ids: tuple[str, ...], *, session: AsyncClientSession
    ) -> dict[str, Invoice | None]:
        found: dict[str, Invoice | None] = {}
        for invoice_id in invoice_ids:
            document = await self.invoices.get(invoice_id, session=session)
            found[invoice_id] = None if document is None else Invoice.model_validate(document)
        return found

    async def record_outcome(
        self, request_id: str, outcome: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        await self._outcomes.replace_one(
            {"_id": request_id}, {**outcome, "_id": request_id}, upsert=True, session=session
        )
