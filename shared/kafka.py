"""Broker factory and topic administration shared by every service and by the `crs` tool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from io import BytesIO
from typing import Any, ClassVar

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Boolean, CompactArray, CompactString, Int16, Int32, Schema, TaggedFields
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.settings import InfrastructureSettings

log = structlog.get_logger(__name__)


def kafka_security(infrastructure: InfrastructureSettings) -> BaseSecurity | None:
    """FastStream's security object for the settings' protocol: TLS, SASL (SCRAM or PLAIN), both.

    None for PLAINTEXT (the local broker). With TLS the broker's certificate is checked against
    ``KAFKA_SSL_CAFILE`` (else the system's CAs) and its host name verified.
    """
    protocol = infrastructure.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    use_ssl = protocol in ("SSL", "SASL_SSL")
    ssl_context = _ssl_context(infrastructure) if use_ssl else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=ssl_context, use_ssl=True)
    username = infrastructure.kafka_sasl_username or ""
    password = (
        infrastructure.kafka_sasl_password.get_secret_value() if infrastructure.kafka_sasl_password else ""
    )
    sasl = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}
    return sasl[infrastructure.kafka_sasl_mechanism](
        username, password, ssl_context=ssl_context, use_ssl=use_ssl
    )


def _ssl_context(infrastructure: InfrastructureSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(infrastructure.kafka_ssl_cafile) if infrastructure.kafka_ssl_cafile else None
    )
    if infrastructure.kafka_ssl_certfile is not None and infrastructure.kafka_ssl_keyfile is not None:
        key_password = infrastructure.kafka_ssl_key_password
        context.load_cert_chain(
            str(infrastructure.kafka_ssl_certfile),
            str(infrastructure.kafka_ssl_keyfile),
            password=key_password.get_secret_value() if key_password else None,
        )
    return context


def kafka_client_options(infrastructure: InfrastructureSettings | None = None) -> dict[str, Any]:
    """The same security as keyword arguments of a plain aiokafka client (admin, producer, consumer).

    For the `crs` tool and the admin clients; without settings, those of the environment.
    """
    options: dict[str, Any] = parse_security(kafka_security(infrastructure or InfrastructureSettings()))
    return options


def build_broker(
    bootstrap_servers: str, *, client_id: str, infrastructure: InfrastructureSettings | None = None
) -> KafkaBroker:
    """A FastStream Kafka broker with the delivery settings every service relies on.

    ``acks="all"`` so a published event survives the loss of the leader; idempotent producers
    are off because the local broker (tansu) cannot grant producer ids: consumers are
    idempotent instead, which also covers redelivery. Security (TLS, SASL) comes from
    ``infrastructure``, else from the environment's settings.
    """
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        security=kafka_security(infrastructure or InfrastructureSettings()),
        logger=structlog.get_logger("faststream"),
        # FastStream's "Received"/"Processed" lines are per consumed batch (many requests), so
        # they cannot carry one request's ids: DEBUG. The delivery layer logs per message, bound.
        log_level=logging.DEBUG,
    )


def build_admin_client(infrastructure: InfrastructureSettings, *, client_id: str) -> AIOKafkaAdminClient:
    """An admin client (not started) for the broker of ``infrastructure``, with its security."""
    return AIOKafkaAdminClient(
        bootstrap_servers=infrastructure.kafka_bootstrap_servers,
        client_id=client_id,
        **kafka_client_options(infrastructure),
    )


class BrokerPublisher:
    """Publishes raw bytes with a string key through a FastStream broker (the delivery Publisher)."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        # no_confirm: hand the record to the producer and return its delivery future, so that a
        # batch of events is in flight together instead of one broker round trip each.
        delivery: Awaitable[object] | None = await self._broker.publish(
            value,
            topic=topic,
            key=key.encode() if key is not None else None,
            headers=headers,
            no_confirm=True,
        )
        if delivery is None:  # FastStream's in-memory test broker delivers at once, returns nothing
            delivery = asyncio.sleep(0)
        return delivery


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    attempts: int = 20,
    infrastructure: InfrastructureSettings | None = None,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    Retries the connection for a while because at start the broker may still be coming up.
    """
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="crs-admin", **kafka_client_options(infrastructure)
    )
    for attempt in range(1, attempts + 1):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == attempts:
                raise
            await asyncio.sleep(min(0.2 * attempt, 2.0))
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic not in existing]
        if not missing:
            return
        # Another service may create some of them between our listing and our request.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [
                    NewTopic(name=topic, num_partitions=partitions, replication_factor=replication_factor)
                    for topic in missing
                ]
            )
        log.info("topics.created", topics=missing, partitions=partitions)
    finally:
        await admin.close()


# --- Topic ids: which incarnation of a topic this is ---------------------------------------------
#
# A topic deleted and created again under the same name is another topic with another id (Kafka
# 2.8 and later; tansu too), and numbers its records from 0 again. aiokafka 0.14 speaks Metadata
# only up to v5, which has no topic ids, so the one request that carries them (Metadata v10,
# KIP-516) is declared here with aiokafka's own protocol types.


class _Uuid(AbstractType[bytes]):  # type: ignore[misc]
    """Kafka's UUID: 16 bytes as they are."""

    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        return data.read(16)


_TAGS = ("tags", TaggedFields)
_NO_TOPIC_ID = bytes(16)


class _MetadataResponseV10(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 10
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                _TAGS,
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", _Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        _TAGS,
                    ),
                ),
                ("topic_authorized_operations", Int32),
                _TAGS,
            ),
        ),
        ("cluster_authorized_operations", Int32),
        _TAGS,
    )


class _MetadataRequestV10(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 10
    RESPONSE_TYPE = _MetadataResponseV10
    SCHEMA = Schema(
        ("topics", CompactArray(("topic_id", _Uuid), ("name", CompactString("utf-8")), _TAGS)),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
        _TAGS,
    )


class _TopicIdsRequest(Request[_MetadataRequestV10]):  # type: ignore[misc]
    API_KEY: ClassVar[int] = 3

    def __init__(self, topics: Sequence[str]) -> None:
        self._topics = list(topics)

    def build(self, request_struct_class: type[_MetadataRequestV10]) -> _MetadataRequestV10:
        return request_struct_class(
            [(bytes(16), topic, {}) for topic in self._topics], False, False, False, {}
        )


async def topic_ids(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> dict[str, str] | None:
    """The id of each of ``topics`` that exists now (absent: it does not), or None if the broker
    cannot say (older than Kafka 2.8: no Metadata v10)."""
    try:
        # aiokafka has no public call for a request it does not know; _send_request is the one
        # its own admin methods use.
        response: Any = await admin._send_request(_TopicIdsRequest(topics))
    except NotImplementedError:  # the broker offers no version of Metadata this request has
        return None
    found: dict[str, str] = {}
    for error_code, name, topic_id, *_ in response.topics:
        if error_code == 0 and topic_id != _NO_TOPIC_ID:
            found[name] = str(uuid.UUID(bytes=topic_id))
    return found
