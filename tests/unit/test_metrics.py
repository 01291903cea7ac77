"""Metrics: what the delivery machinery reports, and the Grafana dashboard that shows it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.delivery import (
    DeliveryPolicy,
    Inbound,
    LedgerTransaction,
    MessageOrigin,
    OutgoingMessage,
    PermanentFailure,
    ReliableConsumer,
)
from shared.metrics import PartitionLag, ServiceMetrics, lag_of, status_of
from shared.topics import REQUEST_STATUS
from tests.unit.fakes import FakeLedger, RecordingPublisher

TOPIC = "orders.v1"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "crs-dashboard.json"


class Order(BaseModel):
    order_id: str
    status: str = "received"


class EmitStatus:
    """Applies an order by publishing a status event with the order's status."""

    def __init__(self, *, fail_times: int = 0, permanent: bool = False) -> None:
        self.fail_times = fail_times
        self.permanent = permanent

    async def __call__(self, order: Order, tx: LedgerTransaction, _: MessageOrigin) -> None:
        if self.permanent:
            raise PermanentFailure("unknown_order", order.order_id)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("transient trouble")
        tx.emit(
            OutgoingMessage(
                message_id=f"status-{order.order_id}",
                topic=REQUEST_STATUS,
                key=order.order_id,
                value=json.dumps({"request_id": order.order_id, "status": order.status}).encode(),
            )
        )


def instrumented(metrics: ServiceMetrics) -> ReliableConsumer:
    return ReliableConsumer(
        service="test",
        ledger=FakeLedger(),
        publish=RecordingPublisher(),
        policy=DeliveryPolicy(max_attempts=3, retry_backoff_seconds=0.001, max_message_bytes=1_000),
        observer=metrics,
    )


def inbound(value: bytes, offset: int = 0) -> Inbound:
    return Inbound(value, MessageOrigin(topic=TOPIC, partition=0, offset=offset, key="K"))


def order(order_id: str, status: str = "received") -> bytes:
    return json.dumps({"order_id": order_id, "status": status}).encode()


async def consume(consumer: ReliableConsumer, batch: list[Inbound], apply: EmitStatus | None = None) -> None:
    await consumer.consume_batch(
        batch,
        model=Order,
        idempotency_key=lambda one, _: f"order:{one.order_id}",
        apply=apply or EmitStatus(),
    )
    await consumer.settle_published()  # an event counts as published once the broker acknowledged it


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"service": metrics.service, **labels})
    return value or 0.0


def handled(metrics: ServiceMetrics, outcome: str) -> float:
    return sample(metrics, "crs_messages_handled_total", topic=TOPIC, outcome=outcome)


async def test_a_processed_message_counts_as_processed_and_its_event_as_published() -> None:
    metrics = ServiceMetrics("intake")
    await consume(instrumented(metrics), [inbound(order("O-1"))])
    assert handled(metrics, "processed") == 1
    assert handled(metrics, "repeated") == 0
    assert sample(metrics, "crs_events_published_total", topic=REQUEST_STATUS) == 1
    assert sample(metrics, "crs_status_events_published_total", status="received") == 1
    assert sample(metrics, "crs_batch_duration_seconds_count", topic=TOPIC) == 1


async def test_a_repeated_message_counts_as_repeated_not_processed() -> None:
    metrics = ServiceMetrics("intake")
    consumer = instrumented(metrics)
    await consume(consumer, [inbound(order("O-1"))])
    await consume(consumer, [inbound(order("O-1"), offset=1)])
    # the same key twice in one batch: the second is a repeat as well
    await consume(consumer, [inbound(order("O-2"), offset=2), inbound(order("O-2"), offset=3)])
    assert handled(metrics, "processed") == 2
    assert handled(metrics, "repeated") == 2
    assert sample(metrics, "crs_status_events_published_total", status="received") == 2


async def test_dead_lettered_messages_count_by_reason() -> None:
    metrics = ServiceMetrics("intake")
    consumer = instrumented(metrics)
    await consume(consumer, [inbound(b"not json"), inbound(b'{"no_order_id": 1}', offset=1)])
    await consume(consumer, [inbound(order("O-9"), offset=2)], EmitStatus(permanent=True))
    assert handled(metrics, "dead_lettered") == 3
    assert handled(metrics, "processed") == 0
    for reason in ("malformed_json", "invalid_message", "unknown_order"):
        assert sample(metrics, "crs_dead_letters_total", topic=TOPIC, reason=reason) == 1


async def test_retried_attempts_are_counted_and_a_message_failing_every_time_is_dead_lettered() -> None:
    metrics = ServiceMetrics("routing")
    consumer = instrumented(metrics)
    await consume(consumer, [inbound(order("O-1"))], EmitStatus(fail_times=1))
    assert sample(metrics, "crs_message_retries_total", topic=TOPIC) == 1
    assert handled(metrics, "processed") == 1
    await consume(consumer, [inbound(order("O-2"), offset=1)], EmitStatus(fail_times=10))
    assert sample(metrics, "crs_message_retries_total", topic=TOPIC) == 1 + 2  # max_attempts 3
    assert sample(metrics, "crs_dead_letters_total", topic=TOPIC, reason="handler_failed") == 1


async def test_a_batch_whose_transaction_fails_counts_each_message_once_after_the_fallback() -> None:
    metrics = ServiceMetrics("routing")
    consumer = instrumented(metrics)
    assert isinstance(consumer.ledger, FakeLedger)
    consumer.ledger.fail_next_commits = 1  # the batch's commit fails; each one then succeeds
    await consume(consumer, [inbound(order("O-1")), inbound(order("O-2"), offset=1)])
    assert handled(metrics, "processed") == 2
    assert sample(metrics, "crs_message_retries_total", topic=TOPIC) == 0


async def test_sla_breaches_are_status_events_with_status_sla_breached() -> None:
    metrics = ServiceMetrics("routing")
    await consume(
        instrumented(metrics),
        [inbound(order("O-1", "sla_breached")), inbound(order("O-2", "sla_breached"), offset=1)],
    )
    assert sample(metrics, "crs_status_events_published_total", status="sla_breached") == 2
    assert status_of(b"not json") == "unknown"
    assert status_of(b'{"status": 3}') == "unknown"


def test_each_service_has_a_registry_of_its_own_and_the_text_names_the_service() -> None:
    intake, audit = ServiceMetrics("intake"), ServiceMetrics("audit")
    intake.message_handled(TOPIC, "processed")
    assert sample(audit, "crs_messages_handled_total", topic=TOPIC, outcome="processed") == 0
    text = intake.render().decode()
    assert 'crs_messages_handled_total{outcome="processed",service="intake",topic="orders.v1"} 1.0' in text


def test_consumer_lag_replaces_the_partitions_it_reported_before() -> None:
    metrics = ServiceMetrics("audit")
    metrics.set_consumer_lag([PartitionLag("g", TOPIC, 0, 5), PartitionLag("g", TOPIC, 1, 0)])
    metrics.set_consumer_lag([PartitionLag("g", TOPIC, 1, 7)])
    assert sample(metrics, "crs_consumer_lag", group="g", topic=TOPIC, partition="1") == 7
    assert (
        metrics.registry.get_sample_value(
            "crs_consumer_lag", {"service": "audit", "group": "g", "topic": TOPIC, "partition": "0"}
        )
        is None
    )


def test_lag_is_end_offset_minus_committed_or_the_beginning_when_nothing_was_committed() -> None:
    assert lag_of(10, 4, 0) == 6
    assert lag_of(10, None, 3) == 7
    assert lag_of(10, 10, 0) == 0
    assert lag_of(3, 5, 0) == 0  # a committed offset ahead of a stale end offset is no lag


# The dashboard ----------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [panel for panel in found if panel.get("type") != "row"]


def test_the_dashboard_has_a_panel_for_each_thing_the_issue_names() -> None:
    titles = {panel["title"] for panel in panels()}
    assert {
        "Messages handled per topic",
        "Failures and dead letters",
        "Handler latency p50 / p95",
        "Consumer lag per partition",
        "SLA breaches",
        "Outbox backlog",
    } <= titles


def test_the_dashboard_queries_only_metrics_the_services_export_through_its_datasource_variable() -> None:
    exported = {metric.name for metric in ServiceMetrics("any").registry.collect()}
    # Counters are exported with _total, histograms with _bucket/_sum/_count.
    series = (
        {f"{name}_total" for name in exported}
        | {f"{name}{suffix}" for name in exported for suffix in ("_bucket", "_sum", "_count")}
        | exported
    )
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\bcrs_[a-z_]+", target["expr"]))
            assert used, target["expr"]
            assert used <= series, (panel["title"], used - series)
            assert target["datasource"]["uid"] == "${datasource}"
