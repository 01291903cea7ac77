"""Commands that put requests and decisions on the topics, or follow them there: `crs submit`,
`crs watch`, `crs approve` and `crs reject`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from crs.app import (
    EXIT_BROKEN,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    AuditDatabase,
    BootstrapServers,
    MongodbUri,
    NotFound,
    Refused,
    Unavailable,
    app,
    kafka_address,
    mongodb_address,
    require_broker,
    require_database,
    run,
)
from shared.contract import Priority, RequestType
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS


class SubmitChannel(StrEnum):
    CRM = "crm"
    PORTAL = "portal"
    EMAIL = "email"


class Sample(StrEnum):
    DISPUTE = "dispute"
    EMAIL = "email"


@app.command()
def submit(
    ctx: typer.Context,
    channel: Annotated[SubmitChannel, typer.Option(help="Which gateway it comes from.")] = SubmitChannel.CRM,
    customer: Annotated[str | None, typer.Option(help="The customer id (CRM and portal cases).")] = None,
    request_type: Annotated[
        RequestType | None, typer.Option("--type", help="The request type; left out, intake classifies it.")
    ] = None,
    subject: Annotated[str, typer.Option(help="The subject.")] = "Customer request",
    body: Annotated[str | None, typer.Option(help="The description (CRM) or the body text (email).")] = None,
    invoice: Annotated[list[str] | None, typer.Option(help="An invoice it names (repeatable).")] = None,
    payment: Annotated[list[str] | None, typer.Option(help="A payment it names (repeatable).")] = None,
    contract: Annotated[str | None, typer.Option(help="The contract it concerns.")] = None,
    disputed_amount: Annotated[
        str | None, typer.Option(help="The amount contested, e.g. 1250.00 (no thousands separators).")
    ] = None,
    expected_amount: Annotated[str | None, typer.Option(help="What the customer says it should be.")] = None,
    requested_credit_limit: Annotated[str | None, typer.Option(help="The new limit asked for.")] = None,
    currency: Annotated[str, typer.Option(help="ISO 4217 code of the amounts, upper case.")] = "USD",
    priority: Annotated[Priority | None, typer.Option(help="The agent's hint.")] = None,
    case_id: Annotated[str | None, typer.Option(help="The CRM case id (default: a new one).")] = None,
    message_id: Annotated[
        str | None, typer.Option(help="The email's Message-ID (default: a new one).")
    ] = None,
    sender: Annotated[
        str | None, typer.Option(help='The email\'s From, required for an email: "Jane <jane@acme.example>".')
    ] = None,
    to: Annotated[str, typer.Option(help="The email's To.")] = "ar@billing.example",
    file: Annotated[Path | None, typer.Option(help="A JSON file holding the whole message.")] = None,
    sample: Annotated[Sample | None, typer.Option(help="The demo dataset's sample dispute or email.")] = None,
    customers: Annotated[int, typer.Option(min=1, help="Size of the demo dataset, for --sample.")] = 300,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the demo dataset, for --sample.")] = 42,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the request until it comes to rest and print its statuses.")
    ] = False,
    wait_timeout: Annotated[float, typer.Option(min=1, help="How long --wait waits, in seconds.")] = 60.0,
    bootstrap_servers: BootstrapServers = None,
) -> int:
    """Publish a request as the CRM, the portal or the email gateway would, checked first.

    With --wait: exit 0 when it rests (routed, on hold, awaiting approval, resolved, closed...),
    1 when it is rejected or dead-lettered, 3 when nothing came within --wait-timeout.
    """
    from crs import submit as submission

    try:
        if file is not None:
            topic, key, value = submission.from_file(
                file, channel.value if channel is SubmitChannel.EMAIL else None
            )
        elif sample is not None:
            from crs.demo_data import generate_demo_data

            dataset = generate_demo_data(customers=customers, seed=seed)
            if sample is Sample.EMAIL:
                value = dataset.sample_email()
                topic, key = EMAIL_REQUESTS, str(value["message_id"])
            else:
                value = dataset.sample_dispute()
                topic, key = CRM_REQUESTS, str(value["case_id"])
        else:
            topic, key, value = submission.build(
                submission.Submission(
                    channel=channel.value,
                    case_id=case_id,
                    message_id=message_id,
                    customer=customer,
                    request_type=request_type.value if request_type else None,
                    subject=subject,
                    body=body,
                    sender=sender,
                    to=to,
                    invoices=tuple(invoice or ()),
                    payments=tuple(payment or ()),
                    contract=contract,
                    disputed_amount=disputed_amount,
                    expected_amount=expected_amount,
                    requested_credit_limit=requested_credit_limit,
                    currency=currency,
                    priority=priority.value if priority else None,
                )
            )
    except submission.SubmissionRefused as refused:
        raise Refused(str(refused)) from None
    kafka = kafka_address(ctx, bootstrap_servers)
    request_id = submission.request_id_of(topic, key)
    return run(_publish(kafka, topic, key, value, request_id, wait=wait, wait_timeout=wait_timeout))


async def _publish(
    kafka: str,
    topic: str,
    key: str,
    value: dict[str, Any],
    request_id: str,
    *,
    wait: bool,
    wait_timeout: float,
) -> int:
    from crs import submit as submission
    from crs.io import Follower, producer, publish_json

    await require_broker(kafka)
    if not wait:
        async with producer(kafka) as client:
            await publish_json(client, topic, key, value)
        print(f"published to {topic} with key {key}\nrequest id: {request_id}")
        return EXIT_OK
    async with Follower(kafka, submission.followed_topics(topic)) as follower:
        async with producer(kafka) as client:
            await publish_json(client, topic, key, value)
        print(f"published to {topic} with key {key}\nrequest id: {request_id}")
        print(f"following {request_id} (up to {wait_timeout:.0f} s)", flush=True)
        loop = asyncio.get_running_loop()
        outcome = await submission.follow_to_rest(
            follower,
            topic=topic,
            key=key,
            request_id=request_id,
            timeout=wait_timeout,
            say=lambda line: print(line, flush=True),
            clock=loop.time,
        )
    if outcome.status is None:
        print(
            f"no status of {request_id} within {wait_timeout:.0f} s: are the services up? "
            "(`crs stack status`)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    print(
        f"{request_id} is {outcome.status}" if outcome.status != "dlq" else f"{request_id} was dead-lettered"
    )
    return EXIT_BROKEN if outcome.status in ("rejected", "dlq") else EXIT_OK


@app.command()
def watch(
    ctx: typer.Context,
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning", help="Show what the topics already hold first, not only what comes."
        ),
    ] = False,
    topic: Annotated[
        list[str] | None, typer.Option(help="Only this request or dead-letter topic (repeatable).")
    ] = None,
    request: Annotated[
        str | None, typer.Option(help="Only this request: its id, or its case id or Message-ID.")
    ] = None,
    customer: Annotated[
        str | None, typer.Option(help="Only this customer: its id, or the address its emails come from.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only these statuses or events, comma-separated (e.g. rejected,on_hold,erp:posted,dlq)."
        ),
    ] = None,
    dlq: Annotated[bool, typer.Option("--dlq", help="Watch the dead-letter topics too.")] = False,
    bootstrap_servers: BootstrapServers = None,
) -> int:
    """One line per event on the request topics as it happens (Ctrl-C stops; survives broker restarts)."""
    from crs.watch import WatchFilter, check_statuses, check_topics

    statuses = frozenset(part.strip() for part in status.split(",") if part.strip()) if status else None
    for problem in (check_statuses(statuses, dlq=dlq) if statuses else None, check_topics(topic or ())):
        if problem:
            raise Refused(problem)
    kafka = kafka_address(ctx, bootstrap_servers)
    topics = watched_topics(topic, dlq=dlq)
    run(
        watch_until_stopped(
            kafka, topics, WatchFilter(request, customer, statuses), from_beginning=from_beginning
        )
    )
    return EXIT_OK


def watched_topics(chosen: list[str] | None, *, dlq: bool) -> list[str]:
    """The topics a watch reads: those chosen, else every request topic; the DLQs with ``dlq``."""
    from shared.topics import CONSUMED_TOPICS, REQUEST_TOPICS, dead_letter_topic

    topics = list(chosen or REQUEST_TOPICS)
    if dlq:
        topics += [
            dead_letter_topic(name) for name in CONSUMED_TOPICS if dead_letter_topic(name) not in topics
        ]
    return topics


def stop_on_signals() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM, so a long command can finish what it does first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def watch_until_stopped(
    kafka: str,
    topics: list[str],
    wanted: Any,
    *,
    from_beginning: bool,
    stop: asyncio.Event | None = None,
) -> None:
    """Print the records that pass ``wanted`` until ``stop`` is set (Ctrl-C by default)."""
    import contextlib
    from functools import partial

    from crs.app import answers
    from crs.watch import follow, format_line

    await require_broker(kafka)
    stop = stop or stop_on_signals()
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    host, _, port = kafka.split(",", maxsplit=1)[0].rpartition(":")

    async def broker_answers() -> bool:
        return await answers(host, int(port))

    async def print_lines() -> None:
        async with contextlib.aclosing(
            follow(
                kafka,
                topics,
                from_beginning=from_beginning,
                broker_answers=broker_answers,
                notice=partial(print, file=sys.stderr, flush=True),
            )
        ) as records:
            async for record in records:
                if wanted.admits(record):
                    try:
                        print(format_line(record, colour=colour), flush=True)
                    except BrokenPipeError:
                        # The reader went away (`crs watch | head`): stop quietly.
                        devnull = os.open(os.devnull, os.O_WRONLY)
                        os.dup2(devnull, sys.stdout.fileno())
                        return

    printer = asyncio.create_task(print_lines())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({printer, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in (printer, stopper):
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await printer


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


def _decide(
    ctx: typer.Context,
    decision: Decision,
    request: str,
    approver: str | None,
    role: str | None,
    comment: str | None,
    check: bool,
    workspace: WorkspaceTarget,
    mongodb_uri: str | None,
    database: str | None,
) -> int:
    request_id = run(
        _request_awaiting_approval(ctx, request, mongodb_uri, database) if check else _derived(request)
    )
    return run(_decide_through_workspace(workspace, decision, request_id, approver, role, comment))


async def _derived(given: str) -> str:
    from shared.identity import crm_request_id, email_request_id

    # Unchecked, the request id is taken as given; only what cannot be one is read as a source.
    given = given.strip()
    if given.startswith("REQ-"):
        return given
    return email_request_id(given) if "@" in given else crm_request_id(given)


async def _request_awaiting_approval(
    ctx: typer.Context, given: str, mongodb_uri: str | None, database: str | None
) -> str:
    from crs.requests import resolve_request_id, wait_for_status
    from services.audit.reader import AuditReader

    uri = mongodb_address(ctx, mongodb_uri)
    try:
        await require_database(uri)
    except Unavailable as down:
        raise Unavailable(f"{down}; --no-check publishes without checking the request's status") from None
    async with AuditReader.connect(uri, database) as reader:
        request_id = await resolve_request_id(reader, given)
        if request_id is None:
            raise NotFound(
                f"audit has no request {given!r} (`crs requests --status awaiting_approval` lists them)"
            )
        facts = await wait_for_status(reader, request_id, "awaiting_approval", timeout=5.0)
    status = facts.status if facts else None
    if status != "awaiting_approval":
        raise Refused(
            f"{request_id} is {status or 'without a status yet'}, not awaiting_approval: nothing to decide "
            "(--no-check sends the decision anyway)"
        )
    return request_id


@dataclass(frozen=True)
class WorkspaceTarget:
    """Where the workspace answers, and the bearer token that says who decides."""

    url: str
    token: str | None


async def _decide_through_workspace(
    workspace: WorkspaceTarget,
    decision: Decision,
    request_id: str,
    approver: str | None,
    role: str | None,
    comment: str | None,
) -> int:
    """The decision, made by the workspace under the token's user (it checks roles and segregation
    of duties, then publishes the contract's message on requests.approvals.v1)."""
    import httpx

    from crs.app import START_THE_STACK

    url = workspace.url.rstrip("/")
    down = (
        f"the workspace at {url} does not answer; is the stack up? {START_THE_STACK} "
        "(or point --workspace-url / CRS_WORKSPACE_URL at it)"
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            if not await _answers(client):
                raise Unavailable(down)
            if not workspace.token:
                raise Refused(
                    f"no token: sign in to the workspace at {url}, open 'API token' and set "
                    "CRS_WORKSPACE_TOKEN "
                    "(or pass --token); the decision is made under that user"
                )
            headers = {"authorization": f"Bearer {workspace.token}"}
            me = await client.get("/api/me", headers=headers)
            if me.status_code == 401:
                raise Refused(
                    "the workspace does not accept this token (expired, revoked or another stack's)"
                )
            me.raise_for_status()
            user = me.json()
            if approver is not None and approver.strip().casefold() not in {
                str(user["id"]).casefold(),
            }:
                raise Refused(
                    f"--approver {approver}: the token is {user['id']}'s; "
                    "a decision is made under the token's user"
                )
            body = {"decision": decision.value, "role": role, "comment": comment}
            answer = await client.post(f"/api/requests/{request_id}/approval", json=body, headers=headers)
    except httpx.TransportError:
        raise Unavailable(down) from None
    if answer.status_code in (403, 404, 409, 422):
        detail = answer.json()
        raise Refused(f"{request_id}: {detail.get('detail') if isinstance(detail, dict) else detail}")
    if answer.status_code != 202:
        raise Unavailable(f"the workspace answered {answer.status_code}: {answer.text[:200]}")
    print(
        f"published {decision.value} of {request_id} by {user['id']} through the workspace "
        f"to {answer.json()['topic']}"
    )
    return EXIT_OK


async def _answers(client: Any) -> bool:
    import httpx

    try:
        return bool((await client.get("/health/live")).status_code == 204)
    except httpx.TransportError:
        return False


def approval_decision(
    decision: Decision,
    request_id: str,
    *,
    approver: str,
    role: str,
    comment: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ``requests.approvals.v1`` message of `crs approve` / `crs reject`, validated by the contract."""
    from pydantic import ValidationError

    from shared.contract import ApprovalDecision
    from shared.delivery import describe_validation_error

    try:
        message = ApprovalDecision(
            request_id=request_id,
            decision=decision.value,
            approver=approver,
            role=role,
            comment=comment,
            decided_at=now or datetime.now(UTC),
        )
    except ValidationError as error:
        raise Refused(f"not a valid approval decision: {describe_validation_error(error)}") from None
    return message.model_dump(mode="json")


Approver = Annotated[
    str | None,
    typer.Option(help="Your user id: only checked against the token's user (the token says who decides)."),
]
Role = Annotated[
    str | None,
    typer.Option(help="The role you decide in (team_lead, finance_manager); default: the one still needed."),
]
WorkspaceUrl = Annotated[
    str | None,
    typer.Option(
        "--workspace-url",
        help="The workspace (default: CRS_WORKSPACE_URL, else http://127.0.0.1:8080).",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Your workspace API token (default: CRS_WORKSPACE_TOKEN; the console's 'API token' page).",
        show_default=False,
    ),
]


def workspace_target(url: str | None, token: str | None) -> WorkspaceTarget:
    """The workspace and token: the flags, else CRS_WORKSPACE_URL / CRS_WORKSPACE_TOKEN (127.0.0.1:8080)."""
    return WorkspaceTarget(
        url=url or os.environ.get("CRS_WORKSPACE_URL") or "http://127.0.0.1:8080",
        token=token or os.environ.get("CRS_WORKSPACE_TOKEN") or None,
    )


NoCheck = Annotated[
    bool,
    typer.Option(
        "--no-check/--check",
        help="Publish without first checking in audit's record that the request awaits approval.",
    ),
]
DecidedRequest = Annotated[str, typer.Argument(help="The request: its id, or its case id or Message-ID.")]


@app.command()
def approve(
    ctx: typer.Context,
    request: DecidedRequest,
    approver: Approver = None,
    role: Role = None,
    comment: Annotated[str | None, typer.Option(help="Why (optional).")] = None,
    no_check: NoCheck = False,
    workspace_url: WorkspaceUrl = None,
    token: Token = None,
    bootstrap_servers: BootstrapServers = None,
    mongodb_uri: MongodbUri = None,
    database: AuditDatabase = None,
) -> int:
    """Approve a request awaiting approval, as the token's user, through the workspace.

    The workspace checks the role and segregation of duties and publishes the decision on
    requests.approvals.v1 under your directory id. --bootstrap-servers is accepted and not used.
    """
    del bootstrap_servers  # decisions go through the workspace now
    return _decide(
        ctx,
        Decision.APPROVE,
        request,
        approver,
        role,
        comment,
        not no_check,
        workspace_target(workspace_url, token),
        mongodb_uri,
        database,
    )


@app.command()
def reject(
    ctx: typer.Context,
    request: DecidedRequest,
    comment: Annotated[str, typer.Option(help="Why: required, the customer is told.")],
    approver: Approver = None,
    role: Role = None,
    no_check: NoCheck = False,
    workspace_url: WorkspaceUrl = None,
    token: Token = None,
    bootstrap_servers: BootstrapServers = None,
    mongodb_uri: MongodbUri = None,
    database: AuditDatabase = None,
) -> int:
    """Reject a request awaiting approval, as the token's user, through the workspace."""
    del bootstrap_servers  # decisions go through the workspace now
    return _decide(
        ctx,
        Decision.REJECT,
        request,
        approver,
        role,
        comment,
        not no_check,
        workspace_target(workspace_url, token),
        mongodb_uri,
        database,
    )
