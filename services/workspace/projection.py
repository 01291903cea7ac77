"""What each topic's message adds to the workspace's view. Pure: models in, entries out.

Every topic the view reads has a model; a message that does not match it is refused (the
consumer dead-letters it) with the model's own description of what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.actions import ACTION_ADAPTER
from shared.contract import ApprovalDecision, EmailRequest, ErpAck, ErpResolution, RequestStatusChanged
from shared.delivery import describe_validation_error
from shared.events import (
    CaseUpdated,
    RequestCaptured,
    RequestRouted,
    RequestSetAside,
    RequestUpdateMessage,
    RequestValidated,
)
from shared.identity import normalize_message_id
from shared.resolution_events import ResolutionEventMessage
from shared.topics import (
    APPROVALS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    REQUEST_ACTIONS,
    REQUEST_CAPTURED,
    REQUEST_RESOLUTION,
    REQUEST_ROUTED,
    REQUEST_SET_ASIDE,
    REQUEST_STATUS,
    REQUEST_UPDATED,
    REQUEST_VALIDATED,
)

ModelT = TypeVar("ModelT", bound=BaseModel)

VIEW_TOPICS = (
    REQUEST_CAPTURED,
    REQUEST_VALIDATED,
    REQUEST_SET_ASIDE,
    REQUEST_ROUTED,
    REQUEST_UPDATED,
    REQUEST_STATUS,
    ERP_RESOLUTIONS,
    ERP_ACKS,
    APPROVALS,
    REQUEST_ACTIONS,
    REQUEST_RESOLUTION,
    EMAIL_REQUESTS,
)
"""Every topic the workspace's view is built from."""


class InvalidRecord(ValueError):
    """A message that does not match its topic's model."""


@dataclass(frozen=True)
class Change:
    """What one message adds: an entry of a request's list, its captured details, or an email."""

    key: str  # the message's identity: its idempotency key too
    request_id: str | None = None
    field: str | None = None  # a list of the request's document, or "captured"
    entry: dict[str, Any] = dataclass_field(default_factory=dict)
    sort_by: str = "at"
    email: dict[str, Any] | None = None


def _read(model: type[ModelT], payload: Mapping[str, Any]) -> ModelT:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise InvalidRecord(describe_validation_error(error)) from error


def identity_of(topic: str, payload: Mapping[str, Any]) -> str:
    """The idempotency key of a message of ``topic`` (raises if it has none)."""
    if topic == REQUEST_STATUS:
        return f"status:{payload['event_id']}"
    if topic == ERP_RESOLUTIONS:
        return f"resolution:{payload['resolution_id']}"
    if topic == ERP_ACKS:
        return f"ack:{payload['resolution_id']}:{payload['status']}:{payload.get('posted_at')}"
    if topic == APPROVALS:
        parts = (payload["request_id"], payload["approver"], payload["decision"], payload["decided_at"])
        return "approval:" + ":".join(str(part) for part in parts)
    if topic == EMAIL_REQUESTS:
        return f"email:{normalize_message_id(str(payload['message_id']))}"
    return f"event:{payload['event_id']}"


def change_of(topic: str, payload: Mapping[str, Any]) -> Change:
    """What a message of ``topic`` adds to the view; :class:`InvalidRecord` if it does not read."""
    key = identity_of(topic, payload)
    if topic == REQUEST_CAPTURED:
        captured = _read(RequestCaptured, payload)
        return Change(key, captured.request_id, "captured", _dump(captured, key), "occurred_at")
    if topic in (REQUEST_VALIDATED, REQUEST_SET_ASIDE):
        verdict: RequestValidated | RequestSetAside = (
            _read(RequestValidated, payload)
            if topic == REQUEST_VALIDATED
            else _read(RequestSetAside, payload)
        )
        entry = _dump(verdict, key)
        entry.pop("details", None)
        entry["verdict"] = "validated" if topic == REQUEST_VALIDATED else entry.get("verdict")
        return Change(key, verdict.request_id, "validations", entry, "occurred_at")
    if topic == REQUEST_ROUTED:
        routed = _read(RequestRouted, payload)
        entry = _dump(routed, key)
        entry.pop("details", None)
        return Change(key, routed.request_id, "routings", entry, "occurred_at")
    if topic == REQUEST_STATUS:
        status = _read(RequestStatusChanged, payload)
        return Change(key, status.request_id, "statuses", _dump(status, key), "at")
    if topic == REQUEST_UPDATED:
        return _update_change(key, payload)
    if topic == ERP_RESOLUTIONS:
        resolution = _read(ErpResolution, payload)
        return Change(key, resolution.request_id, "resolutions", _dump(resolution, key), "created_at")
    if topic == ERP_ACKS:
        ack = _read(ErpAck, payload)
        return Change(key, ack.request_id, "acks", _dump(ack, key), "posted_at")
    if topic == APPROVALS:
        decision = _read(ApprovalDecision, payload)
        return Change(key, decision.request_id, "decisions", _dump(decision, key), "decided_at")
    if topic == REQUEST_ACTIONS:
        try:
            action = ACTION_ADAPTER.validate_python(payload)
        except ValidationError as error:
            raise InvalidRecord(describe_validation_error(error)) from error
        return Change(key, action.request_id, "actions", _dump(action, key), "occurred_at")
    if topic == REQUEST_RESOLUTION:
        told = _read(ResolutionEventMessage, payload).root
        return Change(key, told.request_id, "resolution_steps", _dump(told, key), "occurred_at")
    if topic == EMAIL_REQUESTS:
        email = _read(EmailRequest, payload)
        message_key = normalize_message_id(email.message_id)
        document = {**email.model_dump(mode="json", by_alias=True), "_id": message_key}
        return Change(key, email=document)
    raise InvalidRecord(f"the workspace does not read {topic}")


def _update_change(key: str, payload: Mapping[str, Any]) -> Change:
    """A changed CRM case (which fields, or withdrawn) or an email reply added to its request."""
    update = _read(RequestUpdateMessage, payload).root
    if isinstance(update, CaseUpdated):
        entry = _dump(update, key)
        entry.pop("details", None)
        return Change(key, update.request_id, "updates", entry, "occurred_at")
    entry = _dump(update, key)
    entry.pop("understood", None)
    entry["message_key"] = normalize_message_id(update.message_id)
    return Change(key, update.request_id, "replies", entry, "received_at")


def _dump(model: BaseModel, key: str) -> dict[str, Any]:
    return {**model.model_dump(mode="json", by_alias=True), "key": key}
