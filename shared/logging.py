"""One structlog configuration for every service: console on a TTY, JSON lines otherwise.

Handlers bind ``request_id`` and ``correlation_id`` with :func:`bound_request`, so every log line
written while a message is handled carries them, including lines from library code that logs
through structlog. A line written about a message before it was read (a dead letter of a message
that is not valid JSON, say) names its ``topic`` and ``key``; :func:`attribute_to_request` derives
the ids from those, by the same rules intake uses (a CRM case's key is its case id, an email's its
Message-ID, every other topic's the request id).

FastStream's own per-batch lines ("Received", "Processed") are logged at DEBUG (see
``shared.kafka.build_broker``): a batch holds many requests, so no one request id fits them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

from shared.identity import crm_request_id, email_request_id
from shared.topics import CRM_REQUESTS, DLQ_SUFFIX, EMAIL_REQUESTS


def attribute_to_request(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Fill ``request_id`` and ``correlation_id`` of a line that names a message's topic and key."""
    if event.get("request_id") or not isinstance(event.get("topic"), str) or not event.get("key"):
        return event
    topic, key = str(event["topic"]).removesuffix(DLQ_SUFFIX), str(event["key"])
    if topic == CRM_REQUESTS:
        event["request_id"], event["correlation_id"] = crm_request_id(key), key
    elif topic == EMAIL_REQUESTS:
        event["request_id"], event["correlation_id"] = email_request_id(key), key
    else:
        event["request_id"] = key
    return event


def configure_logging(*, service: str, log_format: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the standard library's logging to write one format to stderr."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        attribute_to_request,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka reports every rebalance at INFO; useful when debugging, noise otherwise.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


@contextmanager
def bound_request(*, request_id: str | None, correlation_id: str | None) -> Iterator[None]:
    """Bind the request and correlation ids to every log line written inside the block."""
    tokens = structlog.contextvars.bind_contextvars(request_id=request_id, correlation_id=correlation_id)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
