"""The project's AsyncAPI document, generated from the message models so it cannot drift.

`crs asyncapi` writes it to ``docs/asyncapi.json``; a unit test fails when the committed file is
not what the models generate. The handlers take raw Kafka records (they parse and dead-letter
themselves), so FastStream's own generator would see no payloads; this one reads the models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import topics
from shared.actions import WorkspaceActionMessage
from shared.contract import (
    ApprovalDecision,
    CrmRequest,
    Customer,
    CustomerContract,
    EmailRequest,
    ErpAck,
    ErpResolution,
    Invoice,
    Payment,
    RequestStatusChanged,
)
from shared.events import EmailReplyAdded, RequestCaptured, RequestRouted, RequestSetAside, RequestValidated
from shared.settings import LOCAL_KAFKA


@dataclass(frozen=True)
class Channel:
    topic: str
    key: str
    model: type[BaseModel]
    action: str  # what the system does: "receive" or "send"
    description: str


CHANNELS = (
    Channel(
        topics.CRM_REQUESTS, "case_id", CrmRequest, "receive", "Requests from the CRM gateway and the portal."
    ),
    Channel(
        topics.EMAIL_REQUESTS, "message_id", EmailRequest, "receive", "One message per email, MIME decoded."
    ),
    Channel(
        topics.CUSTOMERS, "customer_id", Customer, "receive", "Customer master; latest per key is current."
    ),
    Channel(topics.INVOICES, "invoice_id", Invoice, "receive", "ERP invoices."),
    Channel(topics.PAYMENTS, "payment_id", Payment, "receive", "ERP payments."),
    Channel(topics.CONTRACTS, "contract_id", CustomerContract, "receive", "Customer contracts with prices."),
    Channel(topics.APPROVALS, "request_id", ApprovalDecision, "receive", "Approval decisions."),
    Channel(topics.ERP_ACKS, "request_id", ErpAck, "receive", "The ERP's answer to a resolution."),
    Channel(topics.ERP_RESOLUTIONS, "request_id", ErpResolution, "send", "What the ERP must post."),
    Channel(topics.REQUEST_STATUS, "request_id", RequestStatusChanged, "send", "Every status change."),
    Channel(
        topics.REQUEST_CAPTURED, "request_id", RequestCaptured, "send", "Internal: intake to validation."
    ),
    Channel(
        topics.REQUEST_VALIDATED, "request_id", RequestValidated, "send", "Internal: validation to routing."
    ),
    Channel(
        topics.REQUEST_SET_ASIDE,
        "request_id",
        RequestSetAside,
        "send",
        "Internal: validation's holds, rejections and duplicates, with their checks (audit reads it).",
    ),
    Channel(topics.REQUEST_ROUTED, "request_id", RequestRouted, "send", "Internal: routing to resolution."),
    Channel(
        topics.REQUEST_UPDATED,
        "request_id",
        EmailReplyAdded,
        "send",
        "Internal: an email reply intake added to an existing request (audit reads it).",
    ),
    Channel(
        topics.REQUEST_ACTIONS,
        "request_id",
        WorkspaceActionMessage,
        "send",
        "Internal: what people did in the workspace (assignments, notes, and decisions the owning "
        "service carries out), under their directory id and role.",
    ),
)

DEAD_LETTER_HEADERS = {
    "type": "object",
    "properties": {
        name: {"type": "string", "description": meaning}
        for name, meaning in (
            (
                "x-error-reason",
                "machine reason: malformed_json, not_an_object, invalid_message, "
                "message_too_large, handler_failed, or a handler's own (unknown_resolution, "
                "unknown_request, not_awaiting_approval)",
            ),
            ("x-error", "what was wrong, readable"),
            ("x-original-topic", "the topic the message was consumed from"),
            ("x-original-partition", "its partition"),
            ("x-original-offset", "its offset"),
            ("x-original-key", "its key"),
            ("x-failed-service", "the service that gave up on it"),
            ("x-failed-at", "when, RFC 3339"),
        )
    },
}


def _channel_id(topic: str) -> str:
    return topic.replace(".", "_")


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic the system reads or writes."""
    _, schemas = models_json_schema(
        [(channel.model, "serialization") for channel in CHANNELS],
        ref_template="#/components/schemas/{model}",
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel in CHANNELS:
        name = channel.model.__name__
        channel_id = _channel_id(channel.topic)
        messages[name] = {
            "name": name,
            "contentType": "application/json",
            "summary": (channel.model.__doc__ or "").strip().splitlines()[0],
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": channel.key}}},
        }
        channels[channel_id] = {
            "address": channel.topic,
            "description": channel.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"{channel.action}_{channel_id}"] = {
            "action": channel.action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
        dead_letters = _channel_id(topics.dead_letter_topic(channel.topic))
        if channel.topic in topics.CONSUMED_TOPICS:
            channels[dead_letters] = {
                "address": topics.dead_letter_topic(channel.topic),
                "description": f"Messages of {channel.topic} that could not be processed, as received.",
                "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
            }
            operations[f"send_{dead_letters}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{dead_letters}"},
            }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "summary": "The original bytes of a message that could not be processed, with why and from where.",
        "payload": {"description": "the original value, unchanged"},
        "headers": DEAD_LETTER_HEADERS,
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Customer Request System",
            "version": "1.0.0",
            "description": "Every topic of the system; the external ones follow ../shared/CONTRACT.md.",
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": LOCAL_KAFKA, "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas.get("$defs", {})},
    }


def render() -> str:
    """The document as it is committed: stable key order, two-space indentation."""
    return json.dumps(build_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
