"""`crs dlq replay` sends a dead letter back to the one service that failed on it, on the real stack.

A record on ``erp.resolutions.v1`` that audit dead-lettered, once replayed, must reach audit and
nobody else: replayed on its original topic, the ERP (and any other consumer) would read the
posting a second time.
"""

from __future__ import annotations

import json

import pytest

from crs.dlq import load_dead_letters, replay, select
from crs.io import producer
from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from shared.topics import ERP_RESOLUTIONS, dead_letter_topic, replay_topic
from tests.support import (
    Servers,
    isolated_settings,
    mongo,
    records_now,
    running_service,
    unique,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.integration

AUDIT_LIMIT = 512 * 1024


async def test_a_record_audit_failed_on_is_replayed_to_audit_alone(servers: Servers) -> None:
    request_id, resolution_id = unique("REQ"), unique("RES")
    # A posting larger than audit takes (say, hundreds of invoice lines quoted in the reason).
    posting = {
        "resolution_id": resolution_id,
        "request_id": request_id,
        "customer_id": unique("CUST"),
        "kind": "credit_memo",
        "amount": {"amount": "96.60", "currency": "USD"},
        "reason_code": "contract_price",
        "note": "x" * (AUDIT_LIMIT + 10_000),
    }
    async with producer(servers.bootstrap_servers) as client:
        sent = await client.send_and_wait(
            ERP_RESOLUTIONS, json.dumps(posting).encode(), key=request_id.encode()
        )
    settings = isolated_settings(AuditSettings, max_message_bytes=AUDIT_LIMIT)

    def the_dead_letter(record: object) -> bool:
        headers = getattr(record, "headers", {})
        return (
            headers.get("x-original-offset") == str(sent.offset)
            and headers.get("x-original-partition") == str(sent.partition)
            and headers.get("x-failed-service") == "audit"
        )

    async with running_service(build_audit, settings, servers):
        (dead,) = await wait_for_records(
            servers, [dead_letter_topic(ERP_RESOLUTIONS)], the_dead_letter, timeout=120
        )
    assert dead.headers["x-error-reason"] == "message_too_large"

    # The limit is raised (the fix), and the operator replays the dead letter.
    letters = await load_dead_letters(
        servers.bootstrap_servers, servers.mongodb_uri, [dead_letter_topic(ERP_RESOLUTIONS)]
    )
    letter_id = f"{dead.topic}:{dead.partition}:{dead.offset}"
    outcome = await replay(
        servers.bootstrap_servers,
        servers.mongodb_uri,
        select(letters, ids=[letter_id]),
        progress=False,
        ops_database=f"{settings.database}_ops",
    )
    assert outcome.replayed == [letter_id]
    assert outcome.sent_to == {letter_id: replay_topic("audit")}

    entries = mongo(servers)[settings.database].entries
    async with running_service(
        build_audit, settings.model_copy(update={"max_message_bytes": 4 * AUDIT_LIMIT}), servers
    ):

        async def recorded() -> bool:
            return await entries.count_documents({"request_id": request_id}) > 0

        await wait_until(recorded, timeout=120)

    (entry,) = await entries.find({"request_id": request_id}).to_list()
    # Recorded at the original record's place, as if audit had not failed on it.
    assert (entry["topic"], entry["partition"], entry["offset"]) == (
        ERP_RESOLUTIONS,
        sent.partition,
        sent.offset,
    )
    # The ERP saw the posting once: the replay never went back to erp.resolutions.v1.
    postings = await records_now(
        servers, [ERP_RESOLUTIONS], lambda record: record.key == request_id, settle=2.0
    )
    assert len(postings) == 1
