"""The operator's commands on the real broker and database: `crs trace`, `crs stats`,
`crs audit export` over entries the audit service really recorded; `crs dlq` on real dead-letter
topics; `crs watch`'s filters on real records."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crs.commands.requests import watch_until_stopped
from crs.io import TopicRecord, producer, publish_json
from crs.watch import WatchFilter
from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from shared.kafka import ensure_topics
from shared.topics import REQUEST_ROUTED, REQUEST_STATUS, dead_letter_topic, replay_topic
from tests.integration.test_audit_trail import a_dispute_from_capture_to_erp_ack, crs
from tests.support import (
    Servers,
    isolated_settings,
    mongo,
    running_service,
    unique,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.integration


async def _count_is(collection: Any, query: dict[str, Any], expected: int) -> bool:
    return bool(await collection.count_documents(query) == expected)


async def test_trace_stats_and_export_read_what_audit_recorded(servers: Servers, tmp_path: Path) -> None:
    settings = isolated_settings(AuditSettings)
    where = ("--mongodb-uri", servers.mongodb_uri, "--database", settings.database)
    dispute, records = a_dispute_from_capture_to_erp_ack()
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    for topic, _, value in records:
        if topic == REQUEST_ROUTED:
            value["sla_due_at"] = due
    records += [
        (REQUEST_STATUS, dispute, {"request_id": dispute, "status": status, "queue": "accounts_receivable"})
        for status in ("routed", "resolved", "closed")
    ]
    entries = mongo(servers)[settings.database].entries
    started = datetime.now(UTC)
    async with running_service(build_audit, settings, servers), producer(servers.bootstrap_servers) as client:
        for topic, key, value in records:
            await publish_json(client, topic, key, value)
        await wait_until(lambda: _count_is(entries, {"request_id": dispute}, len(records)), timeout=60)
    # A service with a new consumer group reads the request topics from the beginning, so it also
    # recorded what earlier tests published there: keep only this test's request (stopped first).
    await entries.delete_many({"request_id": {"$ne": dispute}})

    code, out = await crs("trace", dispute, "--json", *where)
    assert code == 0, out
    trace = json.loads(out)
    steps = [step["step"] for step in trace["steps"]]
    assert steps[0] == "received"
    assert steps.index("captured") < steps.index("validated") < steps.index("routed")
    assert steps.index("routed") < steps.index("resolution:credit_memo") < steps.index("erp:posted")
    assert {"intake", "validation", "routing", "resolution", "erp"} <= set(trace["time_by_service_ms"])
    assert (trace["status"], trace["held_by"]) == ("closed", "nobody: closed")
    code, out = await crs("trace", dispute, *where)
    assert code == 0
    assert f"Trace of {dispute} (customer " in out
    assert "now: closed; held by nobody: closed" in out
    assert (await crs("trace", "REQ-NOBODY", *where))[0] == 2

    code, out = await crs("stats", "--json", *where)
    assert code == 0, out
    stats = json.loads(out)
    assert (stats["requests"], stats["open"], stats["resolved"]) == (1, 0, 1)
    assert (stats["sla_met"], stats["sla_breached"]) == (1, 0)
    assert stats["credited"] == [{"amount": "200.00", "currency": "USD"}]
    assert stats["disputed_total"] == [{"amount": "200.00", "currency": "USD"}]
    assert stats["by_type"] == {"billing_dispute": 1}
    assert stats["top_customers"][0]["disputes"] == 1
    code, out = await crs("stats", *where)
    assert code == 0
    assert "amount credited:             200.00 USD" in out
    assert "SLA: 1 met, 0 breached, 0 open within their SLA; open flagged: 0 escalated" in out

    window = (
        (started - timedelta(minutes=5)).isoformat(),
        (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    )
    code, out = await crs(
        "audit",
        "export",
        "--from",
        window[0],
        "--to",
        window[1],
        "--out",
        str(tmp_path),
        "--progress",
        *where,
    )
    assert code == 0, out
    assert f"{len(records)} entries written to " in out
    lines, rows = await asyncio.to_thread(_read_export, tmp_path)
    numbers = [line["global_sequence"] for line in lines]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(records)
    assert all(line["entry_hash"] and line["recorded_at"].endswith("Z") for line in lines)
    assert {line["text"] for line in lines} == {json.dumps(value) for _, _, value in records}
    assert [row["entry_hash"] for row in rows] == [line["entry_hash"] for line in lines]
    assert rows[0]["text"] == lines[0]["text"]
    # A window before anything was recorded exports nothing.
    code, out = await crs(
        "audit", "export", "--from", "2020-01-01", "--to", "2020-01-02", "--out", str(tmp_path), *where
    )
    assert (code, out.split(" ")[0]) == (0, "0")
    assert (await crs("audit", "export", "--from", "2020-01-02", "--to", "2020-01-01", *where))[0] == 2


def _read_export(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The one JSON Lines file and the one CSV file an export wrote to ``directory``."""
    (jsonl,) = directory.glob("audit-*.jsonl")
    (table,) = directory.glob("audit-*.csv")
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    return lines, list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"))))


async def test_dlq_lists_shows_and_replays_a_dead_letter_once_unless_forced(servers: Servers) -> None:
    original = f"ops-test-{unique('t').lower()}.v1"
    dlq = dead_letter_topic(original)
    await ensure_topics(servers.bootstrap_servers, [original, dlq], partitions=1)
    ops = ("--mongodb-uri", servers.mongodb_uri, "--ops-database", isolated_settings(AuditSettings).database)
    bodies = [b'{"request_id": "REQ-A", "broken": true}', b"not json at all"]
    async with producer(servers.bootstrap_servers) as client:
        for offset, (body, reason) in enumerate(
            zip(bodies, ["unknown_resolution", "malformed_json"], strict=True)
        ):
            await client.send_and_wait(
                dlq,
                body,
                key=f"KEY-{offset}".encode(),
                headers=[
                    ("x-error-reason", reason.encode()),
                    ("x-error", b"what went wrong"),
                    ("x-original-topic", original.encode()),
                    ("x-original-partition", b"0"),
                    ("x-original-offset", str(offset).encode()),
                    ("x-original-key", f"KEY-{offset}".encode()),
                    ("x-failed-service", b"resolution"),
                    ("x-failed-at", b"2026-11-23T10:00:00+00:00"),
                ],
            )
    bootstrap = ("--bootstrap-servers", servers.bootstrap_servers)

    code, out = await crs(*bootstrap, "dlq", "list", "--topic", original, *ops)
    assert code == 0, out
    assert f"{dlq}" in out
    assert "unknown_resolution" in out
    assert "malformed_json" in out
    assert f"{dlq}:0:0" in out
    assert f"{dlq}:0:1" in out

    code, out = await crs(*bootstrap, "dlq", "show", f"{dlq}:0:0", *ops)
    assert code == 0, out
    assert f"  x-original-topic: {original}" in out
    assert '  "broken": true' in out

    assert (await crs(*bootstrap, "dlq", "replay", *ops))[0] == 2  # nothing selected: refuses
    code, out = await crs(
        *bootstrap, "dlq", "replay", "--topic", original, "--reason", "unknown_resolution", *ops
    )
    assert code == 0, out
    assert f"replayed 1 dead letters\n  {dlq}:0:0" in out
    # Back to the service that failed on it alone, on its replay topic, with the original's place.
    replays = replay_topic("resolution")

    def from_this_dlq(record: TopicRecord) -> bool:
        return record.headers.get("x-replayed-from", "").startswith(f"{dlq}:")

    (replayed,) = await wait_for_records(servers, [replays], from_this_dlq)
    assert (replayed.key, replayed.raw) == ("KEY-0", bodies[0])
    assert replayed.headers["x-replayed-from"] == f"{dlq}:0:0"
    assert replayed.headers["x-original-topic"] == original
    assert (replayed.headers["x-original-partition"], replayed.headers["x-original-offset"]) == ("0", "0")

    code, out = await crs(*bootstrap, "dlq", "replay", "--topic", original, "--all", *ops)
    assert code == 0
    assert f"replayed 1 dead letters\n  {dlq}:0:1" in out
    assert f"skipped 1 already replayed (--force sends them again)\n  {dlq}:0:0" in out
    code, out = await crs(*bootstrap, "dlq", "replay", f"{dlq}:0:0", "--topic", original, "--force", *ops)
    assert f"replayed 1 dead letters\n  {dlq}:0:0" in out
    copies = await wait_for_records(
        servers, [replays], lambda record: from_this_dlq(record) and record.key == "KEY-0", count=2
    )
    assert [copy.raw for copy in copies] == [bodies[0], bodies[0]]
    code, out = await crs(*bootstrap, "dlq", "list", "--topic", original, *ops)
    assert f"{dlq:<32}      2  (2 replayed)" in out


async def test_watch_shows_only_the_customer_and_statuses_asked_for(servers: Servers) -> None:
    customer, other = unique("CUST"), unique("CUST")
    request = unique("REQ")
    async with producer(servers.bootstrap_servers) as client:
        for who, status in [(customer, "received"), (other, "rejected"), (customer, "rejected")]:
            value = {"request_id": request, "status": status, "customer_id": who, "message": status}
            await publish_json(client, REQUEST_STATUS, request, value)
    wanted = WatchFilter(customer=customer, statuses=frozenset({"rejected", "sla_breached"}))
    printed, stop = io.StringIO(), asyncio.Event()

    async def stop_when_seen() -> None:
        await wait_until(lambda: _seen(printed, request), timeout=30)
        await asyncio.sleep(1.0)  # anything else that would (wrongly) pass the filters shows by now
        stop.set()

    with contextlib.redirect_stdout(printed):
        stopper = asyncio.create_task(stop_when_seen())
        await watch_until_stopped(
            servers.bootstrap_servers, [REQUEST_STATUS], wanted, from_beginning=True, stop=stop
        )
        await stopper
    lines = [line for line in printed.getvalue().splitlines() if request in line]
    assert len(lines) == 1
    assert "rejected" in lines[0]
    assert customer in lines[0]


async def _seen(printed: io.StringIO, request: str) -> bool:
    return request in printed.getvalue()
