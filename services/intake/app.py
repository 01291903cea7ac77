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
from shared.contract import CrmRequest, EmailRequest
from shared.delivery import (
    InvalidHook,
    LedgerTransaction,
    MessageOrigin,
    OutgoingMessage,
    describe_validation_error,
)
from shared.events import EmailReplyAdded
from shared.identity import event_id_for
from shared.messages import outgoing_event, outgoing_status
from shared.runtime import build_runtime, inbound_batch
from shared.settings import InfrastructureSettings
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS, REQUEST_CAPTURED, REQUEST_UPDATED


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
            request_id, source_id = earlier
            await self._store.add_reply(
                request_id, message_id, domain.reply_of(email), now, session=tx.session
            )
            tx.emit(
                outgoing_event(
                    REQUEST_UPDATED,
                    EmailReplyAdded(
                        event_id=event_id_for(request_id, "EmailReplyAdded", message_id),
                        request_id=request_id,
                        correlation_id=source_id,
                        occurred_at=now,
                        message_id=message_id,
                        sender=email.sender,
                        subject=email.subject,
                        received_at=email.received_at,
                        attachments=tuple(email.attachments),
                    ),
                )
            )
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


def reject_unreadable(channel_group: str) -> InvalidHook:
    """The dead-letter hook that also tells the sender, when it can be identified, what is wrong."""

    def hook(payload: dict[str, Any], error: ValidationError, _: MessageOrigin) -> Sequence[OutgoingMessage]:
        rejection = domain.reject_unreadable(
            channel_group, payload, describe_validation_error(error), now=datetime.now(UTC)
        )
        return () if rejection is None else (outgoing_status(rejection),)

    return hook


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
            on_invalid=reject_unreadable("crm"),
        )

    @runtime.subscriber(EMAIL_REQUESTS)
    async def on_email(message: KafkaMessage) -> None:
        await consumer.consume_batch(
            inbound_batch(message),
            model=EmailRequest,
            idempotency_key=lambda email, _: f"email:{domain.normalize_message_id(email.message_id)}",
            apply=handlers.capture_email,
            log_ids=lambda email: (domain.email_request_id(email.message_id), email.message_id),
            on_invalid=reject_unreadable("email"),
        )

    return runtime.asgi_app(), settings
