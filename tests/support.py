"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.asgi import AsgiFastStream
from pymongo import AsyncMongoClient

from crs.io import TopicRecord, producer, publish_json, tail
from crs.stack import StackConfig
from shared.settings import InfrastructureSettings, ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(frozen=True)
class Servers:
    """Addresses of the real servers under test; ``local_stack`` when we started them ourselves."""

    bootstrap_servers: str
    mongodb_uri: str
    local_stack: StackConfig | None

    def infrastructure(self) -> InfrastructureSettings:
        return InfrastructureSettings(
            kafka_bootstrap_servers=self.bootstrap_servers, mongodb_uri=self.mongodb_uri, log_format="console"
        )


class BuildApp(Protocol[SettingsT]):
    def __call__(
        self, settings: SettingsT | None = ..., infrastructure: InfrastructureSettings | None = ...
    ) -> tuple[AsgiFastStream, SettingsT]: ...


@dataclass
class MovableClock:
    """A service's clock in a test: now, plus however far the test has moved it."""

    ahead: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


async def publish(servers: Servers, *records: tuple[str, str, Any]) -> None:
    """Publish ``(topic, key, value)`` records as JSON, in order."""
    async with producer(servers.bootstrap_servers) as client:
        for topic, key, value in records:
            await publish_json(client, topic, key, value)


def unique(prefix: str) -> str:
    """An id no other test uses: tests share one broker, so they never share ids."""
    return f"{prefix}-{uuid.uuid4().hex[:10].upper()}"


def isolated_settings(settings_type: type[SettingsT], **overrides: Any) -> SettingsT:
    """Settings with a database and consumer groups of the test's own, and a short session timeout."""
    name = unique("test")
    values: dict[str, Any] = {
        "database": f"{name.lower().replace('-', '_')}_{settings_type.service_name}",
        "consumer_group": f"{name}-{settings_type.service_name}",
        "session_timeout_ms": 2_000,
        "health_port": 0,
        "retry_backoff_seconds": 0.05,
        **overrides,
    }
    return settings_type(**values)


@asynccontextmanager
async def running_service(
    build_app: BuildApp[SettingsT], settings: SettingsT, servers: Servers
) -> AsyncIterator[SettingsT]:
    """Run a service in this process against the real servers for the length of the block."""
    app, _ = build_app(settings, servers.infrastructure())
    started, stop = asyncio.Event(), asyncio.Event()

    # The app's lifespan opens an anyio task group, which must be left in the task that entered
    # it; an async fixture's teardown runs in another task, so the app lives in a task of its own.
    async def run() -> None:
        async with app.start_lifespan_context():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    # FastStream's lifespan context is entered before the broker starts its subscribers; a test
    # that went on (and stopped the service) then would stop it half started. Wait until the
    # service says it is ready, as `crs stack` and Kubernetes do.
    await _ready(app, task)
    try:
        yield settings
    finally:
        stop.set()
        await task


async def _ready(app: AsgiFastStream, task: asyncio.Task[None], *, timeout: float = 120.0) -> None:
    """Wait until ``GET /health`` on the app answers 204 (the app's own ASGI route, no server)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await _health_status(app) != 204:
        if task.done():
            task.result()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the service was not ready within {timeout}s")
        await asyncio.sleep(0.1)


async def _health_status(app: AsgiFastStream) -> int:
    answered: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answered.append(int(message["status"]))

    scope = {"type": "http", "method": "GET", "path": "/health", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    return answered[0] if answered else 0


async def wait_for_records(
    servers: Servers,
    topics: list[str],
    predicate: Callable[[TopicRecord], bool],
    *,
    count: int = 1,
    timeout: float = 45.0,
) -> list[TopicRecord]:
    """The first ``count`` records of ``topics`` that match, or a timeout naming what was missing."""
    found: list[TopicRecord] = []

    async def collect() -> None:
        async with contextlib.aclosing(tail(servers.bootstrap_servers, topics)) as records:
            async for record in records:
                if predicate(record):
                    found.append(record)
                    if len(found) >= count:
                        return

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError as error:
        raise AssertionError(f"only {len(found)} of {count} records arrived on {topics}: {found}") from error
    return found


async def records_now(
    servers: Servers, topics: list[str], predicate: Callable[[TopicRecord], bool], *, settle: float = 2.0
) -> list[TopicRecord]:
    """Every matching record on ``topics`` once nothing new has arrived for ``settle`` seconds."""
    return [
        record
        async for record in tail(servers.bootstrap_servers, topics, idle_timeout=settle)
        if predicate(record)
    ]


async def wait_until(check: Callable[[], Any], *, timeout: float = 45.0, interval: float = 0.2) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def wait_consumed(
    servers: Servers, settings: ServiceSettings, topic: str, *, timeout: float = 45.0
) -> None:
    """Wait until ``settings``' service has handled every record ``topic`` holds now.

    Its subscriber of ``topic`` (consumer group ``<consumer_group>.<topic>``) commits a batch's
    offsets once the batch is handled: for a consumer that records no processed keys (one whose
    effect holds a message's identity, such as the status followers), this is how a test learns
    that a message which changed nothing was read.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers.bootstrap_servers,
        group_id=f"{settings.consumer_group}.{topic}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)

        async def handled() -> bool:
            for partition in partitions:
                if ends[partition] and (await consumer.committed(partition) or 0) < ends[partition]:
                    return False
            return True

        await wait_until(handled, timeout=timeout)
    finally:
        await consumer.stop()


def mongo(servers: Servers) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(servers.mongodb_uri, tz_aware=True)
