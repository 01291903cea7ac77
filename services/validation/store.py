"""Validation's own views: the four reference topics, held requests, open requests, outcomes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.validation.domain import DuplicateCriterion, OpenRequest, References
from services.validation.duplicates import Claim, claim_keys, rule_name
from shared.contract import Customer, CustomerContract, Invoice, Payment
from shared.events import RequestCaptured
from shared.mongo import Document
from shared.reference_views import ReferenceView
from shared.status_order import StatusPosition

log = structlog.get_logger(__name__)

RecordT = TypeVar("RecordT", bound=BaseModel)


class ValidationStore:
    """Reference views (latest version wins), holds, open requests and outcomes."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.customers = ReferenceView(database, "customers")
        self.invoices = ReferenceView(database, "invoices")
        self.payments = ReferenceView(database, "payments")
        self.contracts = ReferenceView(database, "contracts")
        self._outcomes = database.validations
        self._holds = database.holds
        self._open = database.open_requests
        # One document per duplicate claim, its key as _id (see services.validation.duplicates).
        self._claims = database.duplicate_claims

    async def ensure_indexes(self) -> None:
        await self.customers.create_index("contact_emails")
        await self.invoices.create_index("customer_id")
        await self.invoices.ensure_number_keys("invoice_id")
        await self.payments.ensure_number_keys("payment_id")
        # Open requests are read by _id only (duplicates are found through their claims); the
        # index on open flag and opening time serves operators and the claims' backfill.
        await self._open.create_index([("open", ASCENDING), ("opened_at", ASCENDING)])

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

    async def customers_by_id(
        self, customer_ids: Iterable[str], *, session: AsyncClientSession | None
    ) -> dict[str, Customer]:
        found = await _by_id(self.customers, customer_ids, Customer, session)
        return {key: customer for key, customer in found.items() if customer is not None}

    async def references(
        self,
        *,
        invoice_ids: Iterable[str],
        payment_ids: Iterable[str],
        contract_ids: Iterable[str],
        invoice_numbers: Iterable[str] = (),
        payment_numbers: Iterable[str] = (),
        session: AsyncClientSession | None,
    ) -> References:
        """The documents named (None: not known yet), and those whose normalised numbers match.

        Ids and numbers are each looked up exactly (by ``_id``) and by their normalised number
        (``number_keys`` alone: the customer is filtered in the service, see
        :meth:`ReferenceView.find_by_numbers`), one query per kind and way. Contracts named by the
        invoices found are fetched too, in a second round, since which contract an invoice falls
        under is only known once the invoice is.
        """
        invoice_keys = list(dict.fromkeys([*invoice_ids, *invoice_numbers]))
        payment_keys = list(dict.fromkeys([*payment_ids, *payment_numbers]))
        invoices = await _by_id(self.invoices, invoice_keys, Invoice, session)
        payments = await _by_id(self.payments, payment_keys, Payment, session)
        invoices_by_number = _parsed(
            await self.invoices.find_by_numbers(invoice_keys, session=session), Invoice
        )
        payments_by_number = _parsed(
            await self.payments.find_by_numbers(payment_keys, session=session), Payment
        )
        found_invoices = [
            *(invoice for invoice in invoices.values() if invoice),
            *(invoice for matches in invoices_by_number.values() for invoice in matches),
        ]
        contract_keys = {*contract_ids, *(i.contract_id for i in found_invoices if i.contract_id)}
        contracts = await _by_id(self.contracts, contract_keys, CustomerContract, session)
        return References(
            invoices=invoices,
            payments=payments,
            contracts=contracts,
            invoices_by_number=invoices_by_number,
            payments_by_number=payments_by_number,
        )

    async def record_outcome(
        self, request_id: str, outcome: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        await self._outcomes.replace_one(
            {"_id": request_id}, {**outcome, "_id": request_id}, upsert=True, session=session
        )

    # Holds ------------------------------------------------------------------------------

    async def hold(
        self,
        event: RequestCaptured,
        *,
        customer_id: str,
        reason: str,
        waiting_for: tuple[str, ...],
        held_at: datetime,
        reject_after: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Keep the request to decide again; ``held_at`` and ``reject_after`` of a first hold stay."""
        await self._holds.update_one(
            {"_id": event.request_id},
            {
                "$set": {"customer_id": customer_id, "reason": reason, "waiting_for": list(waiting_for)},
                "$setOnInsert": {
                    "event": event.model_dump(mode="json"),
                    "held_at": held_at,
                    "reject_after": reject_after,
                },
            },
            upsert=True,
            session=session,
        )

    async def held(self, request_id: str, *, session: AsyncClientSession) -> Document | None:
        return await self._holds.find_one({"_id": request_id}, session=session)

    async def all_holds(self, *, session: AsyncClientSession | None) -> list[Document]:
        return [hold async for hold in self._holds.find({}, session=session).sort("held_at", ASCENDING)]

    async def release(self, request_id: str, *, session: AsyncClientSession) -> None:
        await self._holds.delete_one({"_id": request_id}, session=session)

    # Open requests and their duplicate claims -----------------------------------------------

    async def claims_held(self, keys: Sequence[str], *, session: AsyncClientSession) -> list[Claim]:
        """The claims among ``keys`` that some request holds (one ``$in`` on the unique key)."""
        if not keys:
            return []
        return [
            Claim(str(found["_id"]), found["request_id"], found["opened_at"])
            async for found in self._claims.find({"_id": {"$in": list(keys)}}, session=session)
        ]

    async def open_request(
        self,
        request: OpenRequest,
        *,
        claims: Sequence[str],
        criteria: Sequence[DuplicateCriterion],
        session: AsyncClientSession,
    ) -> None:
        """Open the request and take its claims, in the caller's transaction.

        Every claim is written whoever held it before (the caller found none held by another open
        request within the window). A claim another transaction writes at the same time makes one
        of the two fail (write conflict or unique key) before it commits; its retry sees the claim.
        Written straight away, not batched: a repeat later in the same batch must find it. A
        request opened again (validated anew after an update) gives up the claims it no longer makes.
        """
        before = await self._open.find_one({"_id": request.request_id}, {"claims": 1}, session=session)
        dropped = [key for key in (before or {}).get("claims", []) if key not in set(claims)]
        if dropped:
            await self._release(request.request_id, dropped, session=session)
        if claims:
            await self._claims.bulk_write(
                [
                    ReplaceOne(
                        {"_id": key},
                        {"_id": key, "request_id": request.request_id, "opened_at": request.opened_at},
                        upsert=True,
                    )
                    for key in claims
                ],
                ordered=True,
                session=session,
            )
        await self._open.replace_one(
            {"_id": request.request_id},
            {
                "_id": request.request_id,
                "customer_id": request.customer_id,
                "request_type": request.request_type.value if request.request_type else None,
                "invoice_ids": list(request.invoice_ids),
                "payment_ids": list(request.payment_ids),
                "opened_at": request.opened_at,
                "open": True,
                "duplicates": [],
                "claims": list(claims),
                "claim_rule": rule_name(criteria),
            },
            upsert=True,
            session=session,
        )

    async def link_duplicate(self, earlier_id: str, request_id: str, *, session: AsyncClientSession) -> None:
        await self._open.update_one(
            {"_id": earlier_id}, {"$addToSet": {"duplicates": request_id}}, session=session
        )

    async def close_request(
        self, request_id: str, *, closing: StatusPosition, opening_rank: int, session: AsyncClientSession
    ) -> bool:
        """Closed or rejected downstream: no longer open, its claims released. Returns whether it was.

        A closing status older than the request's opening (``opened_at`` with ``opening_rank``)
        belongs to an earlier life of the request (rejected, then corrected and validated): it
        closes nothing. A request closes once: nothing reopens it here.
        """
        found = await self._open.find_one({"_id": request_id}, session=session)
        if found is None or not found.get("open"):
            return False
        if closing <= StatusPosition(found["opened_at"], opening_rank):
            log.info("status.older_than_opening_ignored", request_id=request_id, closing_at=closing.at)
            return False
        await self._open.update_one(
            {"_id": request_id}, {"$set": {"open": False, "closed_at": closing.at}}, session=session
        )
        await self._release(request_id, found.get("claims", []), session=session)
        return True

    async def _release(self, request_id: str, keys: Sequence[str], *, session: AsyncClientSession) -> None:
        """Delete those of ``keys`` that ``request_id`` still holds (another may have taken one over)."""
        ours = [
            claim.key
            for claim in await self.claims_held(keys, session=session)
            if claim.request_id == request_id
        ]
        if ours:
            await self._claims.delete_many({"_id": {"$in": ours}}, session=session)

    async def claim_for_open_requests(self, criteria: Sequence[DuplicateCriterion]) -> None:
        """Give the open requests opened before claims existed, or under another rule, their claims.

        Run at start. A claim someone already holds stays theirs (the earlier holder wins).
        """
        rule = rule_name(criteria)
        updated = 0
        cursor = self._open.find({"open": True}, {"duplicates": 0}).sort("opened_at", ASCENDING)
        async for found in cursor:
            if found.get("claim_rule") == rule:
                continue
            keys = claim_keys(
                found["customer_id"],
                request_type=found.get("request_type"),
                invoice_ids=found.get("invoice_ids", ()),
                payment_ids=found.get("payment_ids", ()),
                criteria=criteria,
            )
            if keys:
                await self._claims.bulk_write(
                    [
                        UpdateOne(
                            {"_id": key},
                            {"$setOnInsert": {"request_id": found["_id"], "opened_at": found["opened_at"]}},
                            upsert=True,
                        )
                        for key in keys
                    ]
                )
            await self._open.update_one(
                {"_id": found["_id"]},
                {"$set": {"claim_rule": rule}, "$addToSet": {"claims": {"$each": list(keys)}}},
            )
            updated += 1
        if updated:
            log.info("duplicate_claims.backfilled", requests=updated, rule=rule)


def _parsed(found: dict[str, list[Document]], model: type[RecordT]) -> dict[str, list[RecordT]]:
    return {
        number: [model.model_validate(document) for document in documents]
        for number, documents in found.items()
    }


async def _by_id(
    view: ReferenceView, keys: Iterable[str], model: type[RecordT], session: AsyncClientSession | None
) -> dict[str, RecordT | None]:
    wanted = list(dict.fromkeys(keys))
    found: dict[str, RecordT | None] = dict.fromkeys(wanted)
    if wanted:
        for document in await view.find({"_id": {"$in": wanted}}, session=session):
            found[str(document["_id"])] = model.model_validate(document)
    return found
