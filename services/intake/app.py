"""Composition root of the intake service: wiring only, handlers translate transport to calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaMessage
from pydantic import ValidationError

from services.intake import domain
from services.intake.settings import IntakeSettings
from services.intake.store import IntakeStore
from shared.contract import Channel, CrmRequest, EmailRequest, RequestStatus
from shared.delivery import LedgerTransaction, MessageOrigin, OutgoingMessage, describe_validation_error
from shared.messages import outgoing_event, outgoing_status, status_changed
from shared.runtime import build_runtime, inbound_batch
from shared.settings import InfrastructureSettings
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS, REQUEST_CAPTURED


class IntakeHandlers:
    """What intake does with each inbound message, given its store."""

    def __init__(self, store: IntakeStore) -> None:
        self._store = store

    async def capture_crm_request(self, case: CrmRequest, tx: LedgerTransaction, _: MessageOrigin) -> None:
        capture = domain.capture_crm_request(case, now=datetime.now(UTC))
        await self._save(capture, tx, email_message_ids=[])

    async def capture_email(self, email: EmailRequest, tx: LedgerTransaction, _: MessageOrigin) -> None:
        now = datetime.now(UTC)
        message_id = domain.normalize_message_id(email.message_id)
        thread = domain.thread_message_ids(email)
        earlier = await self._store.request_for_email_thread(thread, session=tx.session)
        if earlier is not None:
            reply = {
                "message_id": message_id,
                "from": email.sender,
                "subject": email.subject,
                "body_text": email.body_text,
                "attachments": [a.model_dump(mode="json") for a in email.attachments],
            }
            await self._store.add_reply(earlier, message_id, reply, now, session=tx.session)
            return
        capture = domain.capture_email(email, now=now)
        await self._save(capture, tx, email_message_ids=[message_id])

    async def _save(
        self, capture: domain.Capture, tx: LedgerTransaction, *, email_message_ids: list[str]
    ) -> None:
        record = {
            **capture.captured.details.model_dump(mode="json"),
            "status": capture.received.status.value,
            "captured_at": capture.captured.occurred_at,
            "email_message_ids": email_message_ids,
            "replies": [],
        }
        await self._store.save_new_request(capture.request_id, record, session=tx.session)
        tx.emit(outgoing_event(REQUEST_CAPTURED, capture.captured))
        tx.emit(outgoing_status(capture.received))


def reject_unreadable_case(
    payload: dict[str, Any], error: ValidationError, _: MessageOrigin
) -> Sequence[OutgoingMessage]:
    """A CRM case we cannot read is rejected on the status stream when its case id is there."""
    case_id = payload.get("case_id")
    if not isinstance(case_id, str) or not case_id.strip():
        return ()
    channel = Channel.PORTAL if payload.get("channel") == "portal" else Channel.CRM
    customer_id = payload.get("customer_id") if isinstance(payload.get("customer_id"), str) else None
    change = status_changed(
        request_id=domain.crm_request_id(case_id.strip()),
        channel=channel,
        source_id=case_id.strip(),
        customer_id=customer_id,
        status=RequestStatus.REJECTED,
        reason="invalid_request",
        message=f"We could not read this request: {describe_validation_error(error)}.",
        at=datetime.now(UTC),
    )
    return (outgoing_status(change),)


def reject_unreadable_email(
    payload: dict[str, Any], error: ValidationError, _: MessageOrigin
) -> Sequence[OutgoingMessage]:
    """An email we cannot read is rejected on the status stream when its Message-ID is there."""
    message_id = payload.get("message_id")
    if not isinstance(message_id, str) or not message_id.strip():
        return ()
    change = status_changed(
        request_id=domain.email_request_id(message_id.strip()),
        channel=Channel.EMAIL,
        source_id=message_id.strip(),
        customer_id=None,
        status=RequestStatus.REJECTED,
        reason="invalid_request",
        message=f"We could not read this email: {describe_validation_error(error)}.",
        at=datetime.now(UTC),
    )
    return (outgoing_status(change),)


def build_app(
    settings: IntakeSettings | None = None, infrastructure: InfrastructureSettings | None = None
) -> tuple[AsgiFastStream, IntakeSettings]:
    """Build the intake service."""
    settings = settings or IntakeSettings()
    runtime = build_runtime(settings, infrastructure)
    store = IntakeStore(runtime.database)
    handlers = IntakeHandlers(store)
    runtime.startup_hooks.append(store.ensure_indexes)
    consumer = runtime.consumer

    @runtime.subscriber(CRM_REQUESTS)
    async def on_crm_request(message: KafkaMessage) -> None:
        await consumer.consume_batch(
            inbound_batch(message),
            model=CrmRequest,
            idempotency_key=lambda case, _: f"crm:{case.case_id}",
            apply=handlers.capture_crm_request,
            log_ids=lambda case: (domain.crm_request_id(case.case_id), case.case_id),
            on_invalid=reject_unreadable_case,
        )

    @runtime.subscriber(EMAIL_REQUESTS)
    async def on_email(message: KafkaMessage) -> None:
        await consumer.consume_batch(
            inbound_batch(message),
            model=EmailRequest,
            idempotency_key=lambda email, _: f"email:{domain.normalize_message_id(email.message_id)}",
            apply=handlers.capture_email,
            log_ids=lambda email: (domain.email_request_id(email.message_id), email.message_id),
            on_invalid=reject_unreadable_email,
        )

    return runtime.asgi_app(), settings
