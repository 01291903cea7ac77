"""Prometheus metrics of one service, served on ``GET /metrics`` next to ``/health``.

Every service app owns one :class:`ServiceMetrics` with a registry of its own (not the process-wide
default), so several services in one process (the tests) never clash, and every series carries the
``service`` label. The delivery machinery reports to it through
:class:`shared.delivery.DeliveryObserver`, so neither the domain nor the unit-test fakes know about
Prometheus.

What is counted where:

- ``crs_messages_handled_total{topic, outcome}``: every inbound message once it ended:
  ``processed`` (applied and committed), ``repeated`` (its idempotency key was already recorded),
  ``dead_lettered`` (to ``<topic>.dlq``), ``failed`` (the database did not answer: left uncommitted,
  it comes back).
- ``crs_message_retries_total{topic}``: failed attempts that were retried.
- ``crs_dead_letters_total{topic, reason}``: dead letters published, by original topic and reason.
- ``crs_batch_duration_seconds{topic}``: how long a consumed batch took, parse to publish; a
  batch with records of several topics (audit's) is observed once for each of them.
- ``crs_events_published_total{topic}`` and ``crs_status_events_published_total{status}``: what
  left the outbox; SLA breaches are the status events with status ``sla_breached``. The outbox
  publishes at least once, so after a crash an event can be counted twice.
- ``crs_consumer_lag{topic, partition, group}``: the partition's end offset minus the group's
  committed offset, for the partitions assigned to this replica; and ``crs_outbox_unpublished``:
  outbox entries not published yet. Both are set when Prometheus scrapes
  (:meth:`shared.runtime.ServiceRuntime.refresh_gauges`), from what the replica already knows:
  the high watermark of its consumers' latest fetch and the offsets of the batches it committed
  (:mod:`shared.consumer_progress`), so a scrape asks the broker nothing per partition; the
  outbox size is one indexed count.
- ``crs_db_commands_total{command}``: every command the service's MongoDB client sent (``find``,
  ``insert``, ``update``, ``commitTransaction``, ...), counted by a PyMongo command listener
  (:attr:`ServiceMetrics.database_commands`). ``crs bench`` reads it before and after a run for
  the statements a request costs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pymongo import monitoring

from shared.delivery import OutgoingMessage
from shared.topics import REQUEST_STATUS

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

# Batches of up to a few hundred records in one transaction: from milliseconds to many seconds
# on the local database stand-in.
BATCH_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class PartitionLag:
    """How far one consumer group is behind on one partition."""

    group: str
    topic: str
    partition: int
    lag: int


class ServiceMetrics:
    """The metrics of one service; implements :class:`shared.delivery.DeliveryObserver`."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self._handled = Counter(
            "crs_messages_handled",
            "Inbound messages handled, by topic and outcome (processed, repeated, dead_lettered, failed).",
            ["service", "topic", "outcome"],
            registry=self.registry,
        )
        self._retries = Counter(
            "crs_message_retries",
            "Failed handler attempts that were retried, by topic.",
            ["service", "topic"],
            registry=self.registry,
        )
        self._dead_letters = Counter(
            "crs_dead_letters",
            "Messages published to a dead-letter topic, by original topic and reason.",
            ["service", "topic", "reason"],
            registry=self.registry,
        )
        self._batch_duration = Histogram(
            "crs_batch_duration_seconds",
            "Time to handle one consumed batch (parse, transaction, publish), by topic.",
            ["service", "topic"],
            buckets=BATCH_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._published = Counter(
            "crs_events_published",
            "Events published from the outbox (or as rejections), by topic.",
            ["service", "topic"],
            registry=self.registry,
        )
        self._status_events = Counter(
            "crs_status_events_published",
            "Status events published on requests.status.v1, by status (sla_breached counts SLA breaches).",
            ["service", "status"],
            registry=self.registry,
        )
        self._lag = Gauge(
            "crs_consumer_lag",
            "Records not yet committed by the consumer group, by topic and partition "
            "(end offset minus committed offset), for the partitions assigned to this replica.",
            ["service", "group", "topic", "partition"],
            registry=self.registry,
        )
        self._outbox = Gauge(
            "crs_outbox_unpublished",
            "Outbox entries committed but not yet published.",
            ["service"],
            registry=self.registry,
        )
        self._database_commands = Counter(
            "crs_db_commands",
            "Commands sent to the service's MongoDB server, by command name (find, insert, ...).",
            ["service", "command"],
            registry=self.registry,
        )
        self.database_commands = DatabaseCommandCounter(self._database_commands.labels, service)
        """The listener to hand the service's MongoDB client (``event_listeners``)."""
        self._refresh_failures = Counter(
            "crs_metrics_refresh_failures",
            "Scrapes where consumer lag or the outbox size could not be read.",
            ["service", "gauge"],
            registry=self.registry,
        )

    # DeliveryObserver -------------------------------------------------------------------------

    def message_handled(self, topic: str, outcome: str) -> None:
        self._handled.labels(self.service, topic, outcome).inc()

    def message_retried(self, topic: str) -> None:
        self._retries.labels(self.service, topic).inc()

    def dead_lettered(self, topic: str, reason: str) -> None:
        self._dead_letters.labels(self.service, topic, reason).inc()

    def batch_handled(self, topics: Iterable[str], seconds: float) -> None:
        for topic in set(topics):
            self._batch_duration.labels(self.service, topic).observe(seconds)

    def event_published(self, message: OutgoingMessage) -> None:
        self._published.labels(self.service, message.topic).inc()
        if message.topic == REQUEST_STATUS:
            self._status_events.labels(self.service, status_of(message.value)).inc()

    # Gauges read on scrape --------------------------------------------------------------------

    def set_consumer_lag(self, lags: Iterable[PartitionLag]) -> None:
        """Replace the lag series: partitions no longer assigned to this replica disappear."""
        self._lag.clear()
        for lag in lags:
            self._lag.labels(self.service, lag.group, lag.topic, str(lag.partition)).set(lag.lag)

    def set_outbox_unpublished(self, count: int) -> None:
        self._outbox.labels(self.service).set(count)

    def refresh_failed(self, gauge: str) -> None:
        self._refresh_failures.labels(self.service, gauge).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


class DatabaseCommandCounter(monitoring.CommandListener):
    """Counts every command a MongoDB client sends, by name, into ``crs_db_commands_total``.

    A PyMongo command listener: called synchronously for each command, so it only increments.
    Handshakes and the driver's heartbeats are not commands to it; ``ping`` (health checks) is.
    """

    def __init__(self, labels: Any, service: str) -> None:
        self._labels = labels
        self._service = service
        self._children: dict[str, Any] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        child = self._children.get(event.command_name)
        if child is None:
            child = self._children[event.command_name] = self._labels(self._service, event.command_name)
        child.inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def status_of(value: bytes) -> str:
    """The ``status`` of a status event's JSON, or ``unknown`` when it has none."""
    try:
        payload = json.loads(value)
    except ValueError:
        return "unknown"
    status = payload.get("status") if isinstance(payload, Mapping) else None
    return status if isinstance(status, str) else "unknown"


def lag_of(end_offset: int, committed: int | None, beginning_offset: int) -> int:
    """Records still to be committed; a group that never committed starts at the beginning."""
    start = committed if committed is not None else beginning_offset
    return max(end_offset - start, 0)
