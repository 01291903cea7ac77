"""Composition root of the validation service: wiring only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faststream.asgi import AsgiFastStream

from services.validation import domain
from services.validation.settings import ValidationSettings
from services.validation.store import ValidationStore
from shared.contract import Customer, CustomerContract, Invoice, Payment, RequestStatus
from shared.delivery import LedgerTransaction, MessageOrigin
from shared.events import RequestCaptured, RequestValidated
from shared.identity import event_id_for
from shared.messages import outgoing_event, outgoing_status, status_changed
from shared.reference_views import subscribe_reference_view
from shared.runtime import build_runtime
from shared.settings import InfrastructureSettings
from shared.topics import CONTRACTS, CUSTOMERS, INVOICES, PAYMENTS, REQUEST_CAPTURED, REQUEST_VALIDATED


class ValidationHandlers:
    """What validation does with captured requests and reference data."""

    def __init__(self, store: ValidationStore) -> None:
        self._store = store

    async def validate(self, event: RequestCaptured, tx: LedgerTransaction, _: MessageOrigin) -> None:
        details = event.details
        now = datetime.now(UTC)
        candidates = await self._store.customers_for(
            customer_id=details.customer_id, sender_email=details.sender_email, session=tx.session
        )
        invoices = await self._store.invoices_by_id(details.invoice_ids, session=tx.session)
        verdict = domain.decide(details, candidates, invoices, today=now.date())
        customer_id = verdict.customer.customer_id if verdict.customer else details.customer_id
        await self._store.record_outcome(
            event.request_id,
            {
                "outcome": verdict.outcome,
                "reason": verdict.reason,
                "customer_id": customer_id,
                "checks": [check.model_dump() for check in verdict.checks],
                "decided_at": now,
            },
            session=tx.session,
        )
        if verdict.outcome is RequestStatus.VALIDATED and verdict.customer is not None:
            tx.emit(
                outgoing_event(
                    REQUEST_VALIDATED,
                    RequestValidated(
                        event_id=event_id_for(event.request_id, "RequestValidated"),
                        request_id=event.request_id,
                        correlation_id=event.correlation_id,
                        occurred_at=now,
                        details=details,
                        customer_id=verdict.customer.customer_id,
                        customer_tier=verdict.customer.tier,
                        invoices=verdict.invoices,
                        checks=verdict.checks,
                    ),
                )
            )
        tx.emit(
            outgoing_status(
                status_changed(
                    request_id=event.request_id,
                    channel=details.channel,
                    source_id=details.source_id,
                    customer_id=customer_id,
                    status=verdict.outcome,
                    reason=verdict.reason,
                    message=verdict.message,
                    at=now,
                )
            )
        )


def customer_document(customer: Customer) -> dict[str, Any]:
    """The stored customer, with its contacts' addresses lower-cased for sender lookup."""
    document = customer.model_dump(mode="json")
    document["contact_emails"] = sorted(
        {contact.email.strip().lower() for contact in customer.contacts if contact.email}
    )
    return document


def build_app(
    settings: ValidationSettings | None = None, infrastructure: InfrastructureSettings | None = None
) -> tuple[AsgiFastStream, ValidationSettings]:
    """Build the validation service."""
    settings = settings or ValidationSettings()
    runtime = build_runtime(settings, infrastructure)
    store = ValidationStore(runtime.database)
    handlers = ValidationHandlers(store)
    runtime.startup_hooks.append(store.ensure_indexes)

    runtime.subscribe_events(REQUEST_CAPTURED, RequestCaptured, handlers.validate)

    subscribe_reference_view(
        runtime,
        topic=CUSTOMERS,
        model=Customer,
        view=store.customers,
        key_of=lambda customer: customer.customer_id,
        document_of=customer_document,
    )
    subscribe_reference_view(
        runtime, topic=INVOICES, model=Invoice, view=store.invoices, key_of=lambda invoice: invoice.invoice_id
    )
    subscribe_reference_view(
        runtime, topic=PAYMENTS, model=Payment, view=store.payments, key_of=lambda payment: payment.payment_id
    )
    subscribe_reference_view(
        runtime,
        topic=CONTRACTS,
        model=CustomerContract,
        view=store.contracts,
        key_of=lambda contract: contract.contract_id,
    )

    return runtime.asgi_app(), settings
