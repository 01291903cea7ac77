"""Log lines about a message carry its request and correlation ids (issue 14, point 10)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import redirect_stderr

import pytest
import structlog

from shared.identity import crm_request_id, email_request_id
from shared.kafka import build_broker
from shared.logging import attribute_to_request, bound_request, configure_logging


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    captured = io.StringIO()
    with redirect_stderr(captured):
        configure_logging(service="test", log_format="json", level="INFO")
        yield captured
    structlog.reset_defaults()
    configure_logging(service="test", log_format="console", level="WARNING")


def test_a_dead_letter_line_names_the_request_its_key_belongs_to(lines: io.StringIO) -> None:
    log = structlog.get_logger("test")
    log.warning("message.dead_lettered", topic="crm.requests.v1", key="CASE-1", reason="invalid_message")
    log.warning("message.dead_lettered", topic="email.requests.v1", key="<m@x>", reason="malformed_json")
    log.warning("message.dead_lettered", topic="requests.routed.v1", key="REQ-9", reason="handler_failed")
    with bound_request(request_id="REQ-BOUND", correlation_id="CASE-B"):
        log.info("message.applied", topic="crm.requests.v1", key="CASE-2")
    found = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [(line["request_id"], line.get("correlation_id")) for line in found] == [
        (crm_request_id("CASE-1"), "CASE-1"),
        (email_request_id("<m@x>"), "<m@x>"),
        ("REQ-9", None),
        ("REQ-BOUND", "CASE-B"),
    ]


def test_a_line_without_topic_and_key_is_left_alone() -> None:
    event = {"event": "service.started"}
    assert attribute_to_request(None, "info", event) == {"event": "service.started"}


def test_faststreams_per_batch_lines_are_debug() -> None:
    broker = build_broker("127.0.0.1:1", client_id="test")
    assert broker.config.logger.log_level == logging.DEBUG
