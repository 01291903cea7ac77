"""Validation's own views: the four reference topics, held requests, open requests, outcomes.

A request's lifecycle (:class:`services.validation.lifecycle.RequestValidation`) is kept in three
collections, as it always was: ``validations`` (its last outcome, with every check), ``holds``
(while it is held: what for, until when, and the request as captured) and ``open_requests`` (once
passed on: since when, its duplicate claims, whether still open). The store loads it from them and
saves what changed; documents of earlier versions load too (:func:`_lifecycle_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from weakref import WeakKeyDictionary

import structlog
from pydantic import BaseModel
from pymongo import ASCENDING, DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.validation.domain import DuplicateCriterion, References, split_awaited
from services.validation.duplicates import Claim, claim_keys, claim_keys_of, rule_name
from services.validation.lifecycle import (
    Facts,
    Hold,
    Lookup,
    OpenRequest,
    Outcome,
    RequestValidation,
    ValidationState,
    finishing,
)
from shared.contract import (
    Customer,
    CustomerContract,
    Invoice,
    Payment,
    RequestStatus,
    RequestStatusChanged,
    RequestType,
)
from shared.delivery import LedgerTransaction
from shared.events import CheckResult, RequestCaptured, RequestDetails
from shared.mongo import BatchDocuments, Document, batch_documents, open_batch_documents
from shared.reference_views import ReferenceView

log = structlog.get_logger(__name__)

HOLDS_PER_RECHECK = 500
"""Most holds one re-check looks at: it reads a bounded, indexed slice, going on from where the
last one stopped, so a re-check costs the same however many requests are held."""
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

RecordT = TypeVar("RecordT", bound=BaseModel)


class ValidationStore:
    """Reference views (latest version wins), holds, open requests and outcomes."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        # Each request as loaded (or last saved), so that save writes only what changed.
        self._as_loaded: WeakKeyDictionary[RequestValidation, _Saved] = WeakKeyDictionary()
        self.customers = ReferenceView(database, "customers")
        self.invoices = ReferenceView(database, "invoices")
        self.payments = ReferenceView(database, "payments")
        self.contracts = ReferenceView(database, "contracts")
        # The same collections as read in a batch (see prefetch_captured).
        self._customers = database.customers
        self._invoices = database.invoices
        self._payments = database.payments
        self._contracts = database.contracts
        self._outcomes = database.validations
        self._holds = database.holds
        self._open = database.open_requests
        # One document per duplicate claim, its key as _id (see services.validation.duplicates).
        self._claims = database.duplicate_claims
        # Where the next re-check of holds goes on (held_at of the last hold the previous one read).
        self._holds_from = _EARLIEST
        # The duplicate rule's criteria, as the last request opened was claimed under: what a
        # batch's prefetch reads the likely claims by (None: no request opened yet).
        self._claim_criteria: tuple[DuplicateCriterion, ...] | None = None

    async def ensure_indexes(self) -> None:
        await self.customers.create_index("contact_emails")
        await self.invoices.create_index("customer_id")
        await self.invoices.ensure_number_keys("invoice_id")
        await self.payments.ensure_number_keys("payment_id")
        # Open requests are read by _id only (duplicates are found through their claims); the
        # index on open flag and opening time serves operators and the claims' backfill.
        await self._open.create_index([("open", ASCENDING), ("opened_at", ASCENDING)])
        # The re-check reads holds in the order they were held, a slice at a time.
        await self._holds.create_index([("held_at", ASCENDING)])

    async def customers_for(
        self, *, customer_id: str | None, sender_email: str | None, session: AsyncClientSession | None
    ) -> list[Customer]:
        """The customer with this id, or every customer with this contact address."""
        documents_read = batch_documents(session)
        if customer_id is not None:
            found = await documents_read.fetch_one(self._customers, customer_id)
            documents = [] if found is None else [found]
        elif sender_email:
            email = sender_email.lower()
            documents = (await documents_read.fetch_by(self._customers, "contact_emails", [email]))[email]
        else:
            documents = []
        return [Customer.model_validate(document) for document in documents]

    async def customers_by_id(
        self, customer_ids: Iterable[str], *, session: AsyncClientSession | None
    ) -> dict[str, Customer]:
        found = await _by_id(batch_documents(session), self._customers, customer_ids, Customer)
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
        read = batch_documents(session)
        invoice_keys = list(dict.fromkeys([*invoice_ids, *invoice_numbers]))
        payment_keys = list(dict.fromkeys([*payment_ids, *payment_numbers]))
        invoices = await _by_id(read, self._invoices, invoice_keys, Invoice)
        payments = await _by_id(read, self._payments, payment_keys, Payment)
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
        contracts = await _by_id(read, self._contracts, contract_keys, CustomerContract)
        return References(
            invoices=invoices,
            payments=payments,
            contracts=contracts,
            invoices_by_number=invoices_by_number,
            payments_by_number=payments_by_number,
        )

    async def facts(self, lookup: Lookup, *, session: AsyncClientSession | None) -> Facts:
        """What the views know of the customer and the documents a request names."""
        customers = await self.customers_for(
            customer_id=lookup.customer_id, sender_email=lookup.sender_email, session=session
        )
        references = await self.references(
            invoice_ids=lookup.invoice_ids,
            payment_ids=lookup.payment_ids,
            contract_ids=lookup.contract_ids,
            invoice_numbers=lookup.invoice_numbers,
            payment_numbers=lookup.payment_numbers,
            session=session,
        )
        return Facts(customers, references)

    # A batch's reads at once ------------------------------------------------------------

    async def prefetch_captured(self, events: Sequence[RequestCaptured], tx: LedgerTransaction) -> None:
        """Read what a batch of captured requests needs, one ``$in`` per collection and kind, and
        keep the batch's writes until its commit (:class:`shared.mongo.BatchDocuments`)."""
        read = open_batch_documents(tx.session, tx.before_commit)
        await self._prefetch_requests(read, [event.request_id for event in events])
        details = [event.details for event in events]
        customer_ids = [one.customer_id for one in details if one.customer_id]
        emails = [one.sender_email.lower() for one in details if not one.customer_id and one.sender_email]
        await read.fetch(self._customers, customer_ids)
        if emails:
            await read.fetch_by(self._customers, "contact_emails", emails)
        invoice_keys = [
            key
            for one in details
            for key in (*one.invoice_ids, *one.invoice_candidates, *one.loose_candidates)
        ]
        payment_keys = [key for one in details for key in (*one.payment_ids, *one.payment_candidates)]
        # By number first: a document found so under the very number written is then known by
        # its id, and the exact lookups below read only what the numbers did not find.
        by_number = await self.invoices.find_by_numbers(invoice_keys, session=tx.session)
        await self.payments.find_by_numbers(payment_keys, session=tx.session)
        invoices = await read.fetch(self._invoices, invoice_keys)
        await read.fetch(self._payments, payment_keys)
        named = [document for document in invoices.values() if document is not None]
        named += [document for documents in by_number.values() for document in documents]
        contract_keys = [one.contract_id for one in details if one.contract_id]
        contract_keys += [document["contract_id"] for document in named if document.get("contract_id")]
        await read.fetch(self._contracts, contract_keys)
        if self._claim_criteria is not None:
            # The claims a request would make as captured, for its own customer: the claims a
            # verdict names are read here; any other (a customer found by address, documents
            # found by number) is read when asked for.
            criteria = self._claim_criteria
            claims = [
                key
                for one in details
                if one.customer_id
                for key in claim_keys_of(one.customer_id, one, criteria)
            ]
            await read.fetch(self._claims, claims)

    async def prefetch_status(self, changes: Sequence[RequestStatusChanged], tx: LedgerTransaction) -> None:
        """Read the requests a batch of status changes may close, with the claims they hold."""
        read = open_batch_documents(tx.session, tx.before_commit)
        ids = [change.request_id for change in changes if finishing(change.status)]
        opened = await self._prefetch_requests(read, ids)
        await read.fetch(self._claims, [key for document in opened for key in document.get("claims", ())])

    async def _prefetch_requests(self, read: BatchDocuments, request_ids: Sequence[str]) -> list[Document]:
        if not request_ids:
            return []
        decided = [found for found in (await read.fetch(self._outcomes, request_ids)).values() if found]
        held = [str(found["_id"]) for found in decided if found.get("outcome") == RequestStatus.ON_HOLD.value]
        await read.fetch(self._holds, held)
        passed_on = [str(found["_id"]) for found in decided if found.get("passed_on", True)]
        return [found for found in (await read.fetch(self._open, passed_on)).values() if found]

    # The lifecycle of each request ------------------------------------------------------

    async def load(self, request_id: str, *, session: AsyncClientSession | None) -> RequestValidation | None:
        """The request as last saved (None: validation never decided it)."""
        read = batch_documents(session)
        decided = await read.fetch_one(self._outcomes, request_id)
        if decided is None:
            return None
        held = None
        if decided.get("outcome") == RequestStatus.ON_HOLD.value:
            held = await read.fetch_one(self._holds, request_id)
        opened = None
        if decided.get("passed_on", True):  # not recorded before the lifecycle was: look
            opened = await read.fetch_one(self._open, request_id)
        request = _lifecycle_of(decided, held, opened)
        self._as_loaded[request] = _Saved.of(request)
        return request

    async def save(self, request: RequestValidation, *, session: AsyncClientSession) -> None:
        """Write what changed since the request was loaded (a new request: all of it).

        Its hold is kept, changed or let go; passed on (again), it is opened with its claims in
        this transaction (:meth:`open_request`); closed downstream, its claims are released; a
        duplicate is linked to the request it repeats; its outcome is recorded.
        """
        saved = self._as_loaded.get(request) or _Saved.of(RequestValidation(request.request_id))
        now_saved = _Saved.of(request)
        # A held request keeps the request as captured with its hold: captured again, it is updated.
        hold_changed = request.hold != saved.hold
        if hold_changed or (request.hold is not None and request.captured != saved.captured):
            await self._save_hold(request, session=session)
        if request.opened is not None and request.opened != saved.opened:
            await self.open_request(
                request.opened,
                claims=request.claims,
                criteria=request.claim_criteria,
                session=session,
                claimed_before=saved.claims,  # as loaded: it is not read again
            )
        elif saved.open and not request.open:
            await batch_documents(session).stage(
                self._open,
                UpdateOne(
                    {"_id": request.request_id}, {"$set": {"open": False, "closed_at": request.closed_at}}
                ),
                one=request.request_id,
            )
            await self._release(request.request_id, request.claims, session=session)
        if request.duplicate_of is not None and request.duplicate_of != saved.duplicate_of:
            await self.link_duplicate(request.duplicate_of, request.request_id, session=session)
        if now_saved.outcome is not None and now_saved.outcome != saved.outcome:
            await batch_documents(session).stage(
                self._outcomes,
                ReplaceOne({"_id": request.request_id}, now_saved.outcome, upsert=True),
                one=request.request_id,
                becomes=now_saved.outcome,
            )
        self._as_loaded[request] = now_saved

    async def _save_hold(self, request: RequestValidation, *, session: AsyncClientSession) -> None:
        hold = request.hold
        written = batch_documents(session)
        if hold is None:
            await written.stage(
                self._holds, DeleteOne({"_id": request.request_id}), one=request.request_id, becomes=None
            )
            return
        document = {
            "_id": request.request_id,
            "customer_id": hold.customer_id,
            "reason": hold.reason,
            "waiting_for": list(hold.waiting_for),
            "event": request.captured.model_dump(mode="json") if request.captured else None,
            "held_at": hold.held_at,
            "reject_after": hold.reject_after,
            "reminded_at": hold.reminded_at,
        }
        await written.stage(
            self._holds,
            ReplaceOne({"_id": request.request_id}, document, upsert=True),
            one=request.request_id,
            becomes=document,
        )

    async def all_holds(self) -> list[Hold]:
        """The requests on hold this re-check looks at, the longest held first (read outside any
        transaction: a hint).

        At most :data:`HOLDS_PER_RECHECK`, read by the ``held_at`` index from where the last
        re-check stopped, starting over once the slice comes back short: every hold is looked at
        within ``holds / HOLDS_PER_RECHECK`` re-checks, and a hold's time limit is checked again
        when its request is (:meth:`RequestValidation.check`).
        """
        cursor = self._holds.find({"held_at": {"$gte": self._holds_from}}).sort("held_at", ASCENDING)
        found = [held async for held in cursor.limit(HOLDS_PER_RECHECK)]
        last = found[-1]["held_at"] if found else _EARLIEST
        if len(found) < HOLDS_PER_RECHECK:
            self._holds_from = _EARLIEST
        elif last == self._holds_from:  # a whole slice held at one instant: step past it
            self._holds_from = last + timedelta(microseconds=1)
        else:
            self._holds_from = last
        return [_hold_of(held) for held in found]

    async def awaited_by(self, holds: Sequence[Hold]) -> tuple[dict[str, Customer], References]:
        """What the holds wait for, as the views know it now: their customers and the documents."""
        waited: dict[str, set[str]] = {
            kind: set() for kind in ("invoice", "payment", "contract", "invoice_number", "payment_number")
        }
        for hold in holds:
            for item in hold.waiting_for:
                kind, key = split_awaited(item)
                waited.setdefault(kind, set()).add(key)
        customers = await self.customers_by_id({hold.customer_id for hold in holds}, session=None)
        known = await self.references(
            invoice_ids=waited["invoice"],
            payment_ids=waited["payment"],
            contract_ids=waited["contract"],
            invoice_numbers=waited["invoice_number"],
            payment_numbers=waited["payment_number"],
            session=None,
        )
        return customers, known

    # Open requests and their duplicate claims -----------------------------------------------

    async def claims_held(self, keys: Sequence[str], *, session: AsyncClientSession) -> list[Claim]:
        """The claims among ``keys`` that some request holds (one ``$in`` on the unique key)."""
        if not keys:
            return []
        held = await batch_documents(session).fetch(self._claims, keys)
        return [
            Claim(str(found["_id"]), found["request_id"], found["opened_at"])
            for found in held.values()
            if found is not None
        ]

    async def open_request(
        self,
        request: OpenRequest,
        *,
        claims: Sequence[str],
        criteria: Sequence[DuplicateCriterion],
        session: AsyncClientSession,
        claimed_before: Sequence[str] | None = None,
    ) -> None:
        """Open the request and take its claims, in the caller's transaction.

        Every claim is written whoever held it before (the caller found none held by another open
        request within the window). A claim another transaction writes at the same time makes one
        of the two fail (write conflict or unique key) before it commits; its retry sees the claim.
        Written straight away, not batched: a repeat later in the same batch must find it. A
        request opened again (validated anew after an update) gives up the claims it no longer
        makes: ``claimed_before``, or (None: not known) those its open request has now.
        """
        self._claim_criteria = tuple(criteria)
        written = batch_documents(session)
        if claimed_before is None:
            before = await written.fetch_one(self._open, request.request_id)
            claimed_before = (before or {}).get("claims", [])
        dropped = [key for key in claimed_before if key not in set(claims)]
        if dropped:
            await self._release(request.request_id, dropped, session=session)
        for key in claims:
            claim = {"_id": key, "request_id": request.request_id, "opened_at": request.opened_at}
            await written.stage(
                self._claims, ReplaceOne({"_id": key}, claim, upsert=True), one=key, becomes=claim
            )
        opened = {
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
        }
        await written.stage(
            self._open,
            ReplaceOne({"_id": request.request_id}, opened, upsert=True),
            one=request.request_id,
            becomes=opened,
        )

    async def link_duplicate(self, earlier_id: str, request_id: str, *, session: AsyncClientSession) -> None:
        await batch_documents(session).stage(
            self._open,
            UpdateOne({"_id": earlier_id}, {"$addToSet": {"duplicates": request_id}}),
            one=earlier_id,
        )

    async def _release(self, request_id: str, keys: Sequence[str], *, session: AsyncClientSession) -> None:
        """Delete those of ``keys`` that ``request_id`` still holds (another may have taken one over)."""
        ours = [
            claim.key
            for claim in await self.claims_held(keys, session=session)
            if claim.request_id == request_id
        ]
        written = batch_documents(session)
        if ours and not written.batched:
            await self._claims.delete_many({"_id": {"$in": ours}}, session=session)
            return
        for key in ours:
            await written.stage(self._claims, DeleteOne({"_id": key}), one=key, becomes=None)

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
    read: BatchDocuments, collection: AsyncCollection[Document], keys: Iterable[str], model: type[RecordT]
) -> dict[str, RecordT | None]:
    found = await read.fetch(collection, keys)
    return {
        str(key): model.model_validate(document) if document is not None else None
        for key, document in found.items()
    }


@dataclass(frozen=True)
class _Saved:
    """What of a request the database holds (as loaded or last saved): what save compares with."""

    hold: Hold | None
    captured: RequestCaptured | None
    opened: OpenRequest | None
    claims: tuple[str, ...]
    open: bool
    duplicate_of: str | None
    outcome: Document | None

    @classmethod
    def of(cls, request: RequestValidation) -> _Saved:
        return cls(
            hold=request.hold,
            captured=request.captured,
            opened=request.opened,
            claims=request.claims,
            open=request.open,
            duplicate_of=request.duplicate_of,
            outcome=_outcome_document(request),
        )


def _outcome_document(request: RequestValidation) -> Document | None:
    """The request's document in ``validations``: its last outcome, with every check that ran.

    Written at each decision, never when the request is closed downstream (``open_requests`` says
    that): ``passed_on`` says whether it has an open request to look at, ``duplicate_of`` which
    request it repeats.
    """
    outcome = request.outcome
    if outcome is None:
        return None
    return {
        "_id": request.request_id,
        "outcome": outcome.outcome.value,
        "reason": outcome.reason,
        "customer_id": outcome.customer_id,
        "waiting_for": list(outcome.waiting_for),
        "checks": [check.model_dump() for check in outcome.checks],
        "decided_at": outcome.decided_at,
        "passed_on": request.opened is not None,
        "duplicate_of": request.duplicate_of,
        # The request as captured (and as answers and updates changed it): an answer, an update or
        # a reply that reopens it is decided on it, whatever state it is in.
        "event": request.captured.model_dump(mode="json") if request.captured else None,
        "round": request.round,
        "reply_while_open": (
            request.reply_while_open.model_dump(mode="json") if request.reply_while_open else None
        ),
        "reply_while_open_at": request.reply_while_open_at,
    }


def _lifecycle_of(decided: Document, held: Document | None, opened: Document | None) -> RequestValidation:
    """A request as its lifecycle, from its documents (those of earlier versions included).

    Its state is its last outcome, or ``closed`` if it was passed on as validated and its open
    request has been closed since; whether it is open is what ``open_requests`` says. Documents
    stored before the lifecycle have no ``passed_on`` (``open_requests`` is looked at) nor
    ``duplicate_of``.
    """
    outcome = RequestStatus(decided["outcome"])
    is_open = bool(opened and opened.get("open"))
    closed = outcome is RequestStatus.VALIDATED and opened is not None and not is_open
    hold = _hold_of(held) if held is not None else None
    event = (held.get("event") if held is not None else None) or decided.get("event")
    return RequestValidation(
        request_id=str(decided["_id"]),
        captured=RequestCaptured.model_validate(event) if event else None,
        state=ValidationState.CLOSED if closed else ValidationState(outcome.value),
        hold=hold,
        opened=_opened_of(opened) if opened is not None else None,
        claims=tuple(opened.get("claims", ())) if opened is not None else (),
        claim_criteria=_criteria_of(opened.get("claim_rule")) if opened is not None else (),
        open=is_open,
        closed_at=opened.get("closed_at") if opened is not None else None,
        duplicate_of=decided.get("duplicate_of"),
        outcome=Outcome(
            outcome=outcome,
            reason=decided.get("reason"),
            customer_id=decided.get("customer_id"),
            waiting_for=tuple(decided.get("waiting_for", ())),
            checks=tuple(CheckResult.model_validate(check) for check in decided.get("checks", ())),
            decided_at=decided["decided_at"],
        ),
        round=int(decided.get("round", 0)),
        reply_while_open=(
            RequestDetails.model_validate(decided["reply_while_open"])
            if decided.get("reply_while_open")
            else None
        ),
        reply_while_open_at=decided.get("reply_while_open_at"),
    )


def _hold_of(held: Document) -> Hold:
    return Hold(
        request_id=str(held["_id"]),
        customer_id=held["customer_id"],
        reason=held["reason"],
        waiting_for=tuple(held["waiting_for"]),
        held_at=held["held_at"],
        reject_after=held["reject_after"],
        reminded_at=held.get("reminded_at"),
    )


def _opened_of(opened: Document) -> OpenRequest:
    request_type = opened.get("request_type")
    return OpenRequest(
        request_id=str(opened["_id"]),
        customer_id=opened["customer_id"],
        request_type=RequestType(request_type) if request_type else None,
        invoice_ids=tuple(opened.get("invoice_ids", ())),
        payment_ids=tuple(opened.get("payment_ids", ())),
        opened_at=opened["opened_at"],
    )


def _criteria_of(rule: str | None) -> tuple[DuplicateCriterion, ...]:
    """The criteria a stored ``claim_rule`` names (:func:`services.validation.duplicates.rule_name`)."""
    known: tuple[DuplicateCriterion, ...] = ("type", "invoice", "payment")
    named = (rule or "").split("+")
    return tuple(criterion for criterion in known if criterion in named)
