"""The operator's small pieces: progress lines, watch filters and colours, export rows, DLQ choice."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crs.dlq import DeadLetter, dead_letter_topics, format_letter, format_list, select
from crs.export import export_row, file_names, parse_instant
from crs.io import TopicRecord
from crs.progress import Progress
from crs.watch import format_line, matches


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_reports_count_and_rate_at_most_once_per_interval_and_at_the_end() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress("export", total=300, unit="entries", stream=stream, enabled=True, clock=clock)
    progress.advance(100)
    clock.now += 1.0
    progress.advance(100)
    progress.advance(50)
    clock.now += 1.0
    progress.advance(50)
    progress.finish()
    progress.finish()
    assert stream.getvalue().splitlines() == [
        "  export: 200/300 entries, 200/s",
        "  export: 300/300 entries, 150/s",
        "  export: 300/300 entries, 150/s",
    ]


def test_progress_is_silent_off_a_terminal_unless_asked() -> None:
    stream = io.StringIO()
    progress = Progress("replay", stream=stream, interval=0.0)
    progress.advance()
    progress.finish()
    assert stream.getvalue() == ""


def record(topic: str, value: Any, key: str = "REQ-1", headers: dict[str, str] | None = None) -> TopicRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return TopicRecord(topic, 1, 7, key, value, raw, headers or {}, 1_795_000_000_000)


def status(value: str, customer: str = "CUST-1") -> TopicRecord:
    return record("requests.status.v1", {"request_id": "REQ-1", "status": value, "customer_id": customer})


def test_watch_filters_by_request_customer_and_any_of_several_statuses() -> None:
    assert matches(status("rejected"), request="REQ-1", customer="CUST-1", status="on_hold, rejected")
    assert not matches(status("routed"), status="on_hold,rejected")
    assert not matches(status("rejected"), request="REQ-2")
    assert not matches(status("rejected", customer="CUST-2"), customer="CUST-1")
    email = record("email.requests.v1", {"message_id": "<m@x>", "from": "a@x.example", "subject": "Hi"})
    assert matches(email, customer="a@x.example")
    dead = record("crm.requests.v1.dlq", b"{", headers={"x-error-reason": "malformed_json"})
    assert matches(dead, status="dlq")
    assert matches(dead)


@pytest.mark.parametrize(
    ("value", "code"),
    [("sla_warning", "33;7"), ("sla_breached", "31;7"), ("escalated", "35;7"), ("awaiting_approval", "33;1")],
)
def test_watch_colours_the_sla_and_escalation_statuses(value: str, code: str) -> None:
    assert f"\x1b[{code}m" in format_line(status(value), colour=True)


def test_export_rows_carry_both_chains_and_utc_times() -> None:
    row = export_row(
        {
            "global_sequence": 7,
            "sequence": 2,
            "request_id": "REQ-1",
            "recorded_at": datetime(2026, 11, 23, 10, 0, 0, 5, tzinfo=UTC),
            # A naive datetime from a client without tz_aware is UTC.
            "published_at": datetime(2026, 11, 23, 9, 59, tzinfo=UTC).replace(tzinfo=None),
            "entry_hash": "ab",
            "previous_hash": "aa",
            "text": '{"a": 1}',
        }
    )
    assert row["recorded_at"] == "2026-11-23T10:00:00.000005Z"
    assert row["published_at"] == "2026-11-23T09:59:00.000000Z"
    assert (row["global_sequence"], row["sequence"], row["previous_hash"], row["status"]) == (
        7,
        2,
        "aa",
        None,
    )
    assert file_names(parse_instant("2026-11-23"), parse_instant("2026-11-24T12:30:00+01:00")) == (
        "audit-20261123T000000Z-20261124T113000Z.jsonl",
        "audit-20261123T000000Z-20261124T113000Z.csv",
    )


def letter(offset: int, reason: str, *, replayed: bool = False) -> DeadLetter:
    dead = TopicRecord(
        "erp.acks.v1.dlq",
        0,
        offset,
        "REQ-1",
        {"resolution_id": "RES-X"},
        b'{"resolution_id": "RES-X"}',
        {
            "x-error-reason": reason,
            "x-original-topic": "erp.acks.v1",
            "x-original-key": "REQ-1",
            "x-failed-service": "resolution",
        },
        1_795_000_000_000 + offset,
    )
    return DeadLetter(dead, datetime(2026, 11, 23, tzinfo=UTC) if replayed else None)


def test_dead_letters_are_chosen_by_topic_reason_and_id() -> None:
    assert dead_letter_topics(["erp.acks.v1", "crm.requests.v1.dlq"]) == [
        "crm.requests.v1.dlq",
        "erp.acks.v1.dlq",
    ]
    assert len(dead_letter_topics()) == len(set(dead_letter_topics())) > 5
    letters = [letter(0, "unknown_resolution"), letter(1, "malformed_json"), letter(2, "unknown_resolution")]
    assert [found.id for found in select(letters, reason="unknown_resolution")] == [
        "erp.acks.v1.dlq:0:0",
        "erp.acks.v1.dlq:0:2",
    ]
    assert [found.id for found in select(letters, ids=["erp.acks.v1.dlq:0:1"])] == ["erp.acks.v1.dlq:0:1"]
    assert (letters[0].original_topic, letters[0].original_key) == ("erp.acks.v1", "REQ-1")


def test_dead_letter_list_counts_per_topic_and_reason_and_show_prints_headers_and_value() -> None:
    letters = [letter(0, "unknown_resolution", replayed=True), letter(1, "malformed_json")]
    listing = format_list(letters)
    assert "erp.acks.v1.dlq                       2  (1 replayed)" in listing
    assert "    malformed_json                      1" in listing
    assert listing.index("erp.acks.v1.dlq:0:1") < listing.index("erp.acks.v1.dlq:0:0")
    shown = format_letter(letters[1])
    assert "  x-original-topic: erp.acks.v1" in shown
    assert '  "resolution_id": "RES-X"' in shown
    assert format_list([]) == "no dead letters"
