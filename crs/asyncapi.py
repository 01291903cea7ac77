"""The project's AsyncAPI document, generated from the message models so it cannot drift.

The channels are the topics of :mod:`shared.registry`. `crs asyncapi` writes it to
``docs/asyncapi.json``; a unit test fails when the committed file is not what the models generate.
The handlers take raw Kafka records (they parse and dead-letter themselves), so FastStream's own
generator would see no payloads; this one reads the models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import registry, topics
from shared.settings import LOCAL_KAFKA


@dataclass(frozen=True)
class Channel:
    topic: str
    key: str
    model: type[BaseModel]
    action: str  # what the system does: "receive" or "send"
    description: str


def _published_by_us(topic: registry.Topic) -> bool:
    return any(topic.name in service.publishes for service in registry.SERVICES)


CHANNELS = tuple(
    Channel(
        topic.name,
        topic.key,
        topic.model,
        "send" if _published_by_us(topic) else "receive",
        topic.description,
    )
    for topic in registry.TOPICS
)
"""One channel per topic of the registry: what we publish is "send", what others publish "receive"."""

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


REPLAY_HEADERS = {
    "type": "object",
    "properties": {
        name: {"type": "string", "description": meaning}
        for name, meaning in (
            (topics.REPLAY_FOR, "the service the replay is for"),
            ("x-replayed-from", "the dead letter, <dlq topic>:<partition>:<offset>"),
            (topics.REPLAY_ORIGINAL_TOPIC, "the topic the original message was consumed from"),
            (topics.REPLAY_ORIGINAL_PARTITION, "its partition"),
            (topics.REPLAY_ORIGINAL_OFFSET, "its offset"),
            (topics.REPLAY_ORIGINAL_KEY, "its key"),
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
        if registry.topic(channel.topic).dead_letter:
            channels[dead_letters] = {
                "address": topics.dead_letter_topic(channel.topic),
                "description": f"Messages of {channel.topic} that could not be processed, as received.",
                "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
            }
            operations[f"send_{dead_letters}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{dead_letters}"},
            }
    for service in topics.REPLAYED_SERVICES:
        replays = _channel_id(topics.replay_topic(service))
        channels[replays] = {
            "address": topics.replay_topic(service),
            "description": f"Dead letters {service} failed on, sent back to it alone by `crs dlq replay`.",
            "messages": {"Replay": {"$ref": "#/components/messages/Replay"}},
        }
        operations[f"receive_{replays}"] = {"action": "receive", "channel": {"$ref": f"#/channels/{replays}"}}
    messages["Replay"] = {
        "name": "Replay",
        "summary": "A dead letter's original bytes and key, handled as if read from its original place.",
        "payload": {"description": "the original value, unchanged"},
        "headers": REPLAY_HEADERS,
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
