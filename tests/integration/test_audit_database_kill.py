"""Audit's chains when the database server is killed: what audit counted as committed is there.

Audit keeps its chain heads in memory and moves them once a batch's transaction has committed.
That is only right if a commit the database acknowledged survives the database's crash: else the
next batch links to entries that are gone, and the chain has a gap of a whole batch (the kill
suite's audit gap). These tests kill a database server of their own with SIGKILL, as the kill suite
does, right after audit's commit.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure

from crs.audit import INTACT, verify_store
from crs.stack import (
    StackConfig,
    kill_part,
    stack_on_free_ports,
    start_part,
    stop_part,
)
from services.audit.reader import AuditReader
from shared.delivery import Inbound, MessageOrigin
from shared.topics import REQUEST_STATUS
from tests.integration.test_audit_append import Audit, CommandsByCollection
from tests.support import Servers, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KILLS = 4
"""Kills in a row: one acknowledged commit lost to a kill is enough to break the chain."""


def status_record(request_id: str, offset: int) -> Inbound:
    value = json.dumps({"request_id": request_id, "status": "received", "event_id": f"{request_id}-{offset}"})
    return Inbound(
        value.encode(), MessageOrigin(REQUEST_STATUS, 0, offset, request_id, timestamp_ms=1_700_000_000)
    )


@pytest.fixture
async def database_server(tmp_path: Path) -> AsyncIterator[StackConfig]:
    """A database server of the test's own, started as the local stack starts it (it gets killed)."""
    config = stack_on_free_ports(home=tmp_path / "stack")
    for directory in (config.home / "logs", config.home / "run", *config.data_paths):
        directory.mkdir(parents=True, exist_ok=True)
    await start_part(config, "mongodb", timeout=120)
    try:
        yield config
    finally:
        await stop_part(config, "mongodb")


async def test_a_batch_committed_just_before_the_database_is_killed_stays_in_the_chain(
    database_server: StackConfig,
) -> None:
    servers = Servers(bootstrap_servers="", mongodb_uri=database_server.mongodb_uri, local_stack=None)
    database = unique("audit").lower().replace("-", "_")
    audit = Audit(servers, database)
    await audit.start()
    requests = [unique("REQ") for _ in range(5)]
    offset = 0
    try:
        for _ in range(KILLS):
            batch = [status_record(request, offset + number) for number, request in enumerate(requests)]
            offset += len(batch)
            await audit.record(batch)  # committed and acknowledged: audit's heads move past it
            kill_part(database_server, "mongodb")
            await start_part(database_server, "mongodb", timeout=120)
        await audit.record(
            [status_record(request, offset + number) for number, request in enumerate(requests)]
        )
        offset += len(requests)
    finally:
        await audit.client.close()

    async with AuditReader.connect(database_server.mongodb_uri, database) as reader:
        code, lines = await verify_store(reader)
        recorded = await reader.heads()
    assert code == INTACT, lines
    assert lines[0].startswith(f"audit database {database}: {offset} entries"), lines
    request_heads, global_head = recorded
    assert global_head is not None
    assert global_head.sequence == offset
    assert all(request_heads[request].sequence == KILLS + 1 for request in requests)


@pytest.mark.parametrize("applied", [True, False], ids=["commit_applied", "commit_not_applied"])
async def test_after_a_commit_whose_answer_was_lost_the_heads_are_read_again(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, applied: bool
) -> None:
    """The connection drops with the commit's answer: the batch may have committed or not.

    Audit may not guess: its heads are read again from the database, so the next batch links to
    what is there (and is not refused for appending after a stale head).
    """
    commands = CommandsByCollection()
    database = unique("audit").lower().replace("-", "_")
    audit = Audit(servers, database, commands)
    await audit.start()
    requests = [unique("REQ") for _ in range(5)]
    commit = AsyncClientSession.commit_transaction
    answers_to_lose = 1

    async def commit_losing_the_answer(session: AsyncClientSession) -> None:
        nonlocal answers_to_lose
        if answers_to_lose == 0:
            return await commit(session)
        answers_to_lose -= 1
        if applied:
            await commit(session)
        raise ConnectionFailure(
            "connection closed before the commit's answer", ["UnknownTransactionCommitResult"]
        )

    monkeypatch.setattr(AsyncClientSession, "commit_transaction", commit_losing_the_answer)
    try:
        await audit.record([status_record(request, number) for number, request in enumerate(requests)])
        assert answers_to_lose == 0
        commands.counts.clear()
        await audit.record([status_record(request, 5 + number) for number, request in enumerate(requests)])
        # One transaction: not refused for a stale head, so not handled again one by one.
        assert commands.counts[("commitTransaction", "")] == 1, commands.counts
        assert commands.counts[("abortTransaction", "")] == 0, commands.counts
    finally:
        await audit.client.close()

    async with AuditReader.connect(servers.mongodb_uri, database) as reader:
        code, lines = await verify_store(reader)
    assert code == INTACT, lines
    assert lines[0].startswith(f"audit database {database}: 10 entries"), lines
