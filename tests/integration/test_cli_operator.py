"""The operator's first hour (issue 14): `crs` run as a subprocess, the way a person types it,
with the stack stopped, with a broker and database running, and with the broker restarted under
a running `crs watch`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from crs.io import producer, publish_json
from crs.stack import INFRA, StackConfig, find_free_ports, stack_down, stack_on_free_ports, stack_up
from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from shared.identity import crm_request_id, email_request_id
from shared.kafka import ensure_topics
from shared.topics import (
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    REQUEST_STATUS,
    REQUEST_UPDATED,
    dead_letter_topic,
)
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

CRS = str(Path(sys.executable).parent / "crs")


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    seconds: float


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")}
    return {**env, "NO_COLOR": "1", **(extra or {})}


def crs(*argv: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Ran:
    """Run `crs ARGV…` as a person would, and what it printed."""
    started = time.monotonic()
    done = subprocess.run(
        [CRS, *argv], capture_output=True, text=True, env=_env(env), timeout=timeout, check=False
    )
    return Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def _start(argv: list[str], *, text: bool) -> subprocess.Popen[Any]:
    """`crs ARGV…` started in the background, its output piped to the test."""
    return subprocess.Popen(
        [CRS, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text, env=_env()
    )


async def acrs(*argv: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Ran:
    return await asyncio.to_thread(crs, *argv, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def stopped() -> dict[str, str]:
    """The environment of a local stack that is not running (its ports answer nothing)."""
    kafka_port, mongo_port, workspace_port = find_free_ports(3)
    return {
        "CRS_KAFKA_PORT": str(kafka_port),
        "CRS_MONGO_PORT": str(mongo_port),
        "CRS_HOME": "/nonexistent/crs-home",
        # Not the default 127.0.0.1:8080: a workspace of another stack on this machine answers there.
        "CRS_WORKSPACE_URL": f"http://127.0.0.1:{workspace_port}",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "--customer", "CUST-1", "--type", "billing_dispute"],
        ["watch"],
        ["approve", "REQ-1", "--approver", "lena", "--role", "team_lead"],
        ["approve", "REQ-1", "--approver", "lena", "--role", "team_lead", "--no-check"],
        ["dlq", "list"],
        ["dlq", "replay", "--force", "x.dlq:0:1"],
        ["bench", "-n", "1"],
        ["trace", "REQ-1"],
        ["stats"],
        ["record", "CASE-1"],
        ["requests"],
        ["audit", "verify", "--all"],
        ["audit", "verify", "REQ-1"],
        ["topics", "create"],
        ["demo-data", "--customers", "2"],
        ["erp"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_stopped_stack_is_one_line_that_says_what_to_run_and_could_not_check(
    argv: list[str], stopped: dict[str, str]
) -> None:
    ran = crs(*argv, env=stopped)
    assert ran.code == 3, ran
    assert ran.out == ""
    (line,) = ran.err.splitlines()
    assert line.startswith(f"crs {argv[0]}")
    assert "does not answer" in line
    assert "crs stack up" in line
    assert "Traceback" not in ran.err
    assert ran.seconds < 20, f"took {ran.seconds:.1f} s"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--disputed-amount", "1,250.00"], "no thousands separators"),
        (["--disputed-amount", "10.00", "--currency", "usd"], "currency"),
        (["--type", "dispute"], "'dispute' is not one of"),
        (["--channel", "email"], "--sender is required"),
        (["--file", "/no/such/case.json"], "no such file"),
    ],
)
def test_what_would_fail_downstream_is_refused_and_nothing_is_published(
    argv: list[str], said: str, servers: Servers
) -> None:
    case_id = unique("CASE")
    flags = argv if "email" in argv else ["--customer", "CUST-1", *argv]
    ran = crs("submit", "--case-id", case_id, *flags, "--bootstrap-servers", servers.bootstrap_servers)
    assert ran.code == 2, ran
    (line,) = ran.err.splitlines()
    assert said in line
    published = asyncio.run(records_now(servers, [CRM_REQUESTS], lambda r: r.key == case_id, settle=1.0))
    assert published == []


def test_help_names_every_command_and_every_flag_says_what_it_does() -> None:
    top = crs("--help")
    assert top.code == 0
    for command in ("asyncapi", "requests", "erp", "watch", "trace", "stack", "chaos"):
        assert f"  {command} " in top.out
    assert "--no-services" in crs("stack", "up", "--help").out
    assert "billing_dispute" in crs("submit", "--help").out
    watch = crs("watch", "--help").out
    assert "what the topics already hold" in watch
    assert "--no-drain" in crs("stack", "down", "--help").out
    for name in ("demo-data", "bench", "run"):
        text = crs(name, "--help").out
        for flag in ("--seed", "-n", "--customers"):
            if flag in text:
                line = next(line for line in text.splitlines() if flag in line)
                assert len(line.split()) > 2, f"{flag} of {name} has no help: {line!r}"


async def test_flags_stand_anywhere_and_dead_letters_show_under_their_request(servers: Servers) -> None:
    original = CRM_REQUESTS
    dlq = dead_letter_topic(original)
    case_id = unique("CASE")
    await ensure_topics(servers.bootstrap_servers, [original, dlq], partitions=4)
    async with producer(servers.bootstrap_servers) as client:
        sent = await client.send_and_wait(
            dlq,
            b'{"case_id": "x"',
            key=case_id.encode(),
            headers=[
                ("x-error-reason", b"malformed_json"),
                ("x-original-topic", original.encode()),
                ("x-original-key", case_id.encode()),
                ("x-failed-service", b"intake"),
            ],
        )
    letter = f"{dlq}:{sent.partition}:{sent.offset}"
    ops = (
        "--mongodb-uri",
        servers.mongodb_uri,
        "--ops-database",
        f"ops_{unique('t').lower().replace('-', '_')}",
    )
    ran = await acrs(
        "dlq",
        "replay",
        "--force",
        letter,
        "--dry-run",
        "--bootstrap-servers",
        servers.bootstrap_servers,
        *ops,
    )
    assert ran.code == 0, ran
    assert f"would replay 1 dead letters\n  {letter}" in ran.out
    ran = await acrs("--bootstrap-servers", servers.bootstrap_servers, "dlq", "show", letter, *ops)
    assert (ran.code, f"dead letter {letter}" in ran.out) == (0, True)

    # The dead letter is keyed by the case id; `watch --request` finds it by our request id.
    process = _start(
        [
            "watch",
            "--from-beginning",
            "--dlq",
            "--request",
            crm_request_id(case_id),
            "--bootstrap-servers",
            servers.bootstrap_servers,
        ],
        text=True,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert crm_request_id(case_id) in line
        assert "dlq" in line
    finally:
        process.terminate()
        process.wait(30)


async def test_watch_ends_quietly_when_its_reader_goes_away(servers: Servers) -> None:
    request = unique("REQ")
    async with producer(servers.bootstrap_servers) as client:
        await publish_json(client, REQUEST_STATUS, request, {"request_id": request, "status": "received"})
    process = _start(
        [
            "watch",
            "--from-beginning",
            "--topic",
            REQUEST_STATUS,
            "--bootstrap-servers",
            servers.bootstrap_servers,
        ],
        text=False,
    )
    assert process.stdout is not None
    await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
    process.stdout.close()  # `crs watch | head -1`: the reader has what it wanted
    async with producer(servers.bootstrap_servers) as client:
        for number in range(5):
            await publish_json(
                client, REQUEST_STATUS, request, {"request_id": request, "status": f"s{number}"}
            )
    code = await asyncio.to_thread(process.wait, 60)
    assert process.stderr is not None
    assert (code, process.stderr.read()) == (0, b"")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[StackConfig]:
    """A broker and database of this test alone: it restarts the broker."""
    config = stack_on_free_ports(home=tmp_path / "crs-home")
    asyncio.run(stack_up(config, include_services=False, timeout=90))
    yield config
    asyncio.run(stack_down(config))


@pytest.mark.timeout(240)
async def test_watch_survives_a_broker_restart(own_broker: StackConfig) -> None:
    kafka = own_broker.bootstrap_servers
    before, after = unique("REQ"), unique("REQ")
    # From the beginning: the broker is this test's own, and the watch may start slowly.
    process = _start(
        ["watch", "--from-beginning", "--topic", REQUEST_STATUS, "--bootstrap-servers", kafka], text=True
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        async with producer(kafka) as client:
            await publish_json(client, REQUEST_STATUS, before, {"request_id": before, "status": "received"})
        assert before in await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)

        pid = int(own_broker.pid_path("kafka").read_text())
        os.kill(pid, 15)
        await wait_until(lambda: _gone(pid), timeout=30)
        lost = await asyncio.wait_for(asyncio.to_thread(process.stderr.readline), 60)
        assert "lost the broker" in lost
        await stack_up(own_broker, include_services=False, timeout=90)
        back = await asyncio.wait_for(asyncio.to_thread(process.stderr.readline), 60)
        assert "answers again" in back
        async with producer(kafka) as client:
            await publish_json(client, REQUEST_STATUS, after, {"request_id": after, "status": "received"})
        assert after in await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode in (0, -15)
    assert all(part in INFRA for part in ("kafka", "mongodb"))


async def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def test_requests_are_found_by_customer_status_case_id_and_message_id(servers: Servers) -> None:
    settings = isolated_settings(AuditSettings)
    where = ("--mongodb-uri", servers.mongodb_uri, "--database", settings.database)
    customer = unique("CUST")
    case_id, message_id, reply_id = (
        unique("CASE"),
        f"<{unique('m')}@acme.example>",
        f"<{unique('r')}@acme.example>",
    )
    crm_request, email_request = crm_request_id(case_id), email_request_id(message_id)
    now = "2026-11-23T10:00:00Z"
    records: list[tuple[str, str, dict[str, Any]]] = [
        (
            CRM_REQUESTS,
            case_id,
            {"case_id": case_id, "customer_id": customer, "subject": "Dispute", "submitted_at": now},
        ),
        (
            REQUEST_STATUS,
            crm_request,
            {
                "request_id": crm_request,
                "status": "received",
                "customer_id": customer,
                "source_id": case_id,
                "channel": "crm",
            },
        ),
        (
            REQUEST_STATUS,
            crm_request,
            {
                "request_id": crm_request,
                "status": "closed",
                "customer_id": customer,
                "source_id": case_id,
                "channel": "crm",
            },
        ),
        (
            EMAIL_REQUESTS,
            message_id,
            {
                "message_id": message_id,
                "from": "Wei Chen <Wei.Chen@acme.example>",
                "to": ["ar@x"],
                "subject": "Copy",
                "body_text": "Hi",
                "received_at": now,
            },
        ),
        (
            REQUEST_STATUS,
            email_request,
            {
                "request_id": email_request,
                "status": "awaiting_approval",
                "customer_id": customer,
                "source_id": message_id,
                "channel": "email",
            },
        ),
        (
            REQUEST_UPDATED,
            email_request,
            {
                "event_type": "EmailReplyAdded",
                "request_id": email_request,
                "message_id": reply_id.strip("<>"),
                "sender": "wei.chen@acme.example",
                "subject": "Re: Copy",
            },
        ),
    ]
    entries = mongo(servers)[settings.database].entries
    async with running_service(build_audit, settings, servers), producer(servers.bootstrap_servers) as client:
        for topic, key, value in records:
            await publish_json(client, topic, key, value)

        async def recorded() -> bool:
            return await entries.count_documents(
                {"request_id": {"$in": [crm_request, email_request]}}
            ) == len(records)

        await wait_until(recorded, timeout=60)

    ran = await acrs("requests", "--customer", customer, "--json", *where)
    assert ran.code == 0, ran
    assert {(row["request_id"], row["status"]) for row in json.loads(ran.out)} == {
        (crm_request, "closed"),
        (email_request, "awaiting_approval"),
    }
    ran = await acrs("requests", "--customer", "wei.chen@acme.example", *where)
    assert email_request in ran.out
    assert crm_request not in ran.out
    ran = await acrs("requests", "--status", "awaiting_approval", "--message-id", message_id, *where)
    assert email_request in ran.out
    assert "1 requests" in ran.out
    assert (await acrs("requests", "--status", "closd", *where)).code == 2

    ran = await acrs("trace", case_id, *where)
    assert ran.code == 0, ran
    assert f"Trace of {crm_request}" in ran.out
    assert "None" not in ran.out
    ran = await acrs("record", reply_id, *where)  # a reply's Message-ID finds the request it joined
    assert ran.code == 0, ran
    assert f"Customer Request Record {email_request}" in ran.out
    ran = await acrs("audit", "verify", message_id, *where)
    assert (ran.code, ran.out.split(":")[0]) == (0, email_request)

    # Approving a closed request is refused before anything is published.
    ran = await acrs(
        "approve",
        case_id,
        "--approver",
        "lena",
        "--role",
        "team_lead",
        "--bootstrap-servers",
        servers.bootstrap_servers,
        *where,
    )
    assert ran.code == 2, ran
    assert f"{crm_request} is closed, not awaiting_approval" in ran.err
    assert (await acrs("trace", "CASE-NOBODY-AT-ALL", *where)).code == 2


async def test_submit_wait_follows_the_request_and_says_when_nothing_answers(servers: Servers) -> None:
    case_id = unique("CASE")
    ran = await acrs(
        "submit", "--customer", "CUST-1", "--case-id", case_id, "--wait", "--wait-timeout", "3",
        "--bootstrap-servers", servers.bootstrap_servers,
    )  # fmt: skip
    # Nothing consumes it here (no intake): the wait ends and says so.
    assert ran.code == 3, ran
    assert f"no status of {crm_request_id(case_id)} within 3 s" in ran.err


async def test_the_erp_stand_in_answers_each_resolution_once_and_the_same_way(servers: Servers) -> None:
    request_id, resolution_id = unique("REQ"), unique("RES")
    await ensure_topics(servers.bootstrap_servers, [ERP_RESOLUTIONS, ERP_ACKS], partitions=4)
    process = _start(["erp", "--delay", "0.2", "--bootstrap-servers", servers.bootstrap_servers], text=True)
    try:
        resolution = {"resolution_id": resolution_id, "request_id": request_id, "kind": "credit_memo"}
        async with producer(servers.bootstrap_servers) as client:
            await publish_json(client, ERP_RESOLUTIONS, request_id, resolution)
            await publish_json(client, ERP_RESOLUTIONS, request_id, resolution)
        (ack,) = await wait_for_records(servers, [ERP_ACKS], lambda r: r.key == request_id, timeout=90)
        assert ack.value["resolution_id"] == resolution_id
        assert ack.value["status"] == "posted"
        assert ack.value["erp_document_id"].startswith("ERP-")
        await asyncio.sleep(3)
        assert len(await records_now(servers, [ERP_ACKS], lambda r: r.key == request_id)) == 1
    finally:
        process.send_signal(2)
        process.wait(30)
    assert process.returncode == 0
