"""`crs erp`: a local stand-in for the ERP, so the demo's requests go all the way to ``closed``.

It consumes ``erp.resolutions.v1`` as the ERP would and, after a short delay, answers each
resolution on ``erp.acks.v1``: ``posted`` with an ERP document id, or (for a configurable share)
``failed`` with an error. The answer is a function of the ``resolution_id`` alone, so a resolution
delivered twice, or again after a restart, gets the same answer (the same document id), as an
idempotent ERP would; within a run a repeat is not answered a second time.

Not part of the system: it stands in for the outside world on a laptop, like `crs submit` stands
in for the CRM gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka import AIOKafkaConsumer

from crs.io import producer, publish_json
from shared.topics import ERP_ACKS, ERP_RESOLUTIONS

GROUP_ID: Final = "crs-erp-standin"
ERRORS: Final = (
    "posting period 2026-11 is closed",
    "document is locked by another user",
    "customer account is blocked for postings",
)


@dataclass(frozen=True)
class ErpAnswer:
    """What the stand-in answers to one resolution."""

    status: str
    erp_document_id: str | None
    error: str | None


def answer_for(resolution_id: str, *, failure_share: float) -> ErpAnswer:
    """The answer to a resolution, decided by its id alone (the same id: the same answer)."""
    digest = hashlib.sha256(resolution_id.encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw < failure_share:
        return ErpAnswer("failed", None, ERRORS[digest[8] % len(ERRORS)])
    return ErpAnswer("posted", f"ERP-{digest[9:14].hex().upper()}", None)


def ack_for(resolution: dict[str, Any], *, failure_share: float, now: datetime) -> dict[str, Any] | None:
    """The ``erp.acks.v1`` message answering ``resolution``, or None if it names no resolution."""
    resolution_id, request_id = resolution.get("resolution_id"), resolution.get("request_id")
    if not isinstance(resolution_id, str) or not isinstance(request_id, str):
        return None
    answer = answer_for(resolution_id, failure_share=failure_share)
    return {
        "resolution_id": resolution_id,
        "request_id": request_id,
        "status": answer.status,
        "erp_document_id": answer.erp_document_id,
        "error": answer.error,
        "posted_at": now.isoformat().replace("+00:00", "Z"),
    }


async def serve(
    bootstrap_servers: str,
    *,
    stop: asyncio.Event,
    delay: float = 1.0,
    failure_share: float = 0.0,
    say: Callable[[str], None] = print,
    group_id: str = GROUP_ID,
) -> int:
    """Answer resolutions until ``stop`` is set; returns how many were answered.

    Offsets are committed after the answers are acknowledged by the broker, so a crash answers
    again (the same answers) rather than never.
    """
    consumer = AIOKafkaConsumer(
        ERP_RESOLUTIONS,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
    )
    await consumer.start()
    answered: set[str] = set()
    try:
        async with producer(bootstrap_servers) as client:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                resolutions = [
                    value
                    for records in batch.values()
                    for record in records
                    if isinstance(value := _json(record.value), dict)
                ]
                if not resolutions:
                    continue
                await asyncio.sleep(delay)  # an ERP takes a moment to post
                for resolution in resolutions:
                    ack = ack_for(resolution, failure_share=failure_share, now=datetime.now(UTC))
                    if ack is None or ack["resolution_id"] in answered:
                        continue
                    await publish_json(client, ERP_ACKS, ack["request_id"], ack)
                    answered.add(ack["resolution_id"])
                    say(
                        f"erp: {ack['status']} {ack['resolution_id']} of {ack['request_id']}: "
                        f"{ack['erp_document_id'] or ack['error']}"
                    )
                await consumer.commit()
    finally:
        await consumer.stop()
    return len(answered)


def _json(raw: bytes | None) -> Any:
    try:
        return json.loads(raw or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
