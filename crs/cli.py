"""`crs`: run, feed, watch and measure the Customer Request System.

crs stack up|down|status     the local stack (broker, database, five services)
crs topics create            create every topic (what the deployment's init step runs)
crs demo-data                publish the demo reference data
crs submit                   publish a request as the CRM or email gateway would
crs watch                    tail the request topics, one line per event
crs run                      all of the above for a live demo; Ctrl-C stops what it started
crs bench                    throughput and latency against a bare aiokafka relay
crs audit verify             check the audit store's hash chains
crs audit export             the audit entries of a time window as JSON Lines and CSV
crs record                   one request's Customer Request Record, from the audit store
crs trace                    one request's path through the services, time per step, where it is now
crs stats                    backlog, ageing, SLAs, resolution times, money, top reasons and customers
crs dlq list|show|replay     inspect dead letters and send them back once fixed
crs approve|reject           an approval decision on a request awaiting approval
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crs.stack import StackConfig, StackError, format_status, stack_down, stack_status, stack_up
from shared.topics import (
    ALL_TOPICS,
    CONSUMED_TOPICS,
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    REQUEST_TOPICS,
    dead_letter_topic,
)


def _addresses(args: argparse.Namespace) -> tuple[str, str]:
    """The broker and database to use: flags, then the environment, then the local stack's."""
    config = StackConfig.from_env()
    kafka = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or config.bootstrap_servers
    mongodb = getattr(args, "mongodb_uri", None) or os.environ.get("MONGODB_URI") or config.mongodb_uri
    return kafka, mongodb


def _quiet_logging() -> None:
    from shared.logging import configure_logging

    configure_logging(service="crs", log_format="console", level="WARNING")


async def _stack(args: argparse.Namespace) -> int:
    config = StackConfig.from_env()
    if args.action == "up":
        statuses = await stack_up(config, include_services=not args.no_services, on_progress=print)
        print(format_status(statuses))
        print(f"\nKAFKA_BOOTSTRAP_SERVERS={config.bootstrap_servers}\nMONGODB_URI={config.mongodb_uri}")
    elif args.action == "down":
        stopped = await stack_down(config)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        print(format_status(await stack_status(config)))
        print(f"\nKAFKA_BOOTSTRAP_SERVERS={config.bootstrap_servers}\nMONGODB_URI={config.mongodb_uri}")
    return 0


async def _topics(args: argparse.Namespace) -> int:
    from shared.kafka import ensure_topics
    from shared.settings import InfrastructureSettings

    infrastructure = InfrastructureSettings()
    kafka, _ = _addresses(args)
    await ensure_topics(
        kafka,
        ALL_TOPICS,
        partitions=infrastructure.topic_partitions,
        replication_factor=infrastructure.topic_replication_factor,
    )
    print(f"{len(ALL_TOPICS)} topics present on {kafka}")
    return 0


async def _publish_demo_data(kafka: str, customers: int, seed: int, *, progress: bool | None = None) -> Any:
    from crs.demo_data import generate_demo_data
    from crs.io import producer, publish_many
    from crs.progress import Progress

    dataset = generate_demo_data(customers=customers, seed=seed)
    records = list(dataset.records())
    counter = Progress("demo data", total=len(records), enabled=progress, interval=0.0)
    async with producer(kafka) as client:
        chunk = 2_000
        for start in range(0, len(records), chunk):
            part = records[start : start + chunk]
            await publish_many(client, ((r.topic, r.key, r.value) for r in part))
            counter.advance(len(part))
    counts = ", ".join(f"{count} on {topic}" for topic, count in dataset.counts().items())
    print(f"demo data published: {counts}")
    return dataset


async def _demo_data(args: argparse.Namespace) -> int:
    kafka, _ = _addresses(args)
    await _publish_demo_data(kafka, args.customers, args.seed, progress=args.progress or None)
    return 0


def _money(amount: str | None, currency: str) -> dict[str, str] | None:
    return None if amount is None else {"amount": amount, "currency": currency}


def build_submission(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    """The (topic, key, value) a `crs submit` call publishes."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if args.file:
        value: dict[str, Any] = json.loads(Path(args.file).read_text(encoding="utf-8"))
        topic = EMAIL_REQUESTS if args.channel == "email" or "message_id" in value else CRM_REQUESTS
        key = str(value.get("message_id") if topic == EMAIL_REQUESTS else value.get("case_id"))
        return topic, key, value
    if args.sample:
        from crs.demo_data import generate_demo_data

        dataset = generate_demo_data(customers=args.customers, seed=args.seed)
        if args.sample == "email":
            email = dataset.sample_email()
            return EMAIL_REQUESTS, email["message_id"], email
        dispute = dataset.sample_dispute()
        return CRM_REQUESTS, dispute["case_id"], dispute
    if args.channel == "email":
        message_id = args.message_id or f"<crs-{os.urandom(6).hex()}@crs.local>"
        email = {
            "message_id": message_id,
            "from": args.sender,
            "to": [args.to],
            "subject": args.subject,
            "body_text": args.body or "",
            "received_at": now,
        }
        return EMAIL_REQUESTS, message_id, email
    case_id = args.case_id or f"CASE-CLI-{os.urandom(4).hex().upper()}"
    case = {
        "case_id": case_id,
        "channel": args.channel,
        "customer_id": args.customer,
        "type": args.type,
        "subject": args.subject,
        "description": args.body,
        "invoice_ids": args.invoice,
        "payment_ids": args.payment,
        "disputed_amount": _money(args.disputed_amount, args.currency),
        "expected_amount": _money(args.expected_amount, args.currency),
        "requested_credit_limit": _money(args.requested_credit_limit, args.currency),
        "priority": args.priority,
        "submitted_at": now,
    }
    return CRM_REQUESTS, case_id, {name: value for name, value in case.items() if value not in (None, [])}


async def _submit(args: argparse.Namespace) -> int:
    from crs.io import producer, publish_json

    if args.channel != "email" and not (args.file or args.sample) and not args.customer:
        print("crs submit: --customer is required for a CRM or portal request", file=sys.stderr)
        return 2
    topic, key, value = build_submission(args)
    kafka, _ = _addresses(args)
    async with producer(kafka) as client:
        await publish_json(client, topic, key, value)
    print(f"published to {topic} with key {key}")
    if topic == CRM_REQUESTS:
        from services.intake.domain import crm_request_id

        print(f"request id: {crm_request_id(key)}")
    else:
        from services.intake.domain import email_request_id

        print(f"request id: {email_request_id(key)}")
    return 0


def _watched_topics(args: argparse.Namespace) -> list[str]:
    topics = list(args.topic or REQUEST_TOPICS)
    if args.dlq:
        topics += [dead_letter_topic(topic) for topic in CONSUMED_TOPICS]
    return topics


async def _watch_until_stopped(
    kafka: str, topics: list[str], args: argparse.Namespace, stop: asyncio.Event
) -> None:
    from crs.io import tail
    from crs.watch import format_line, matches

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    async def follow() -> None:
        async with contextlib.aclosing(tail(kafka, topics, from_beginning=args.from_beginning)) as records:
            async for record in records:
                if matches(record, request=args.request, customer=args.customer, status=args.status):
                    print(format_line(record, colour=colour), flush=True)

    watcher = asyncio.create_task(follow())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({watcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in (watcher, stopper):
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    if watcher.done() and not watcher.cancelled() and watcher.exception():
        raise watcher.exception()  # type: ignore[misc]


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _watch(args: argparse.Namespace) -> int:
    kafka, _ = _addresses(args)
    await _watch_until_stopped(kafka, _watched_topics(args), args, _stop_on_signals())
    return 0


async def _run(args: argparse.Namespace) -> int:
    from crs.io import producer, publish_json
    from crs.traffic import demo_requests

    stop = _stop_on_signals()
    config = StackConfig.from_env()
    already_running = all(part.healthy for part in await stack_status(config))
    print(
        "local stack already running: leaving it running on exit" if already_running else "starting the stack"
    )
    await stack_up(config, on_progress=lambda line: print(f"  {line}"))
    try:
        dataset = await _publish_demo_data(config.bootstrap_servers, args.customers, args.seed, progress=True)
        await _wait_for_reference_views(config.mongodb_uri, dataset)
        print(
            f"\nwatching the request topics; a demo request every {args.interval}s "
            "(Ctrl-C stops everything this command started)\n"
        )

        async def trickle() -> None:
            async with producer(config.bootstrap_servers) as client:
                await publish_json(client, CRM_REQUESTS, *_key_value(dataset.sample_dispute(), "case_id"))
                await publish_json(client, EMAIL_REQUESTS, *_key_value(dataset.sample_email(), "message_id"))
                for topic, key, value in demo_requests(dataset, seed=args.seed):
                    if args.interval <= 0:
                        return
                    await asyncio.sleep(args.interval)
                    await publish_json(client, topic, key, value)

        traffic = asyncio.create_task(trickle())
        args.from_beginning, args.request, args.customer, args.status, args.dlq, args.topic = (
            True,
            None,
            None,
            None,
            True,
            None,
        )
        await _watch_until_stopped(config.bootstrap_servers, _watched_topics(args), args, stop)
        traffic.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await traffic
    finally:
        if not already_running:
            # Stop first, report after: the terminal may already be gone (a closed pipe, a hangup).
            stopped = await stack_down(config)
            with contextlib.suppress(OSError):
                print("\nstopped: " + ", ".join(stopped), flush=True)
    return 0


async def _wait_for_reference_views(mongodb_uri: str, dataset: Any, *, timeout: float = 600.0) -> None:
    """Wait until validation's views hold the demo data, so demo requests find their documents."""
    from pymongo import AsyncMongoClient

    from services.validation.settings import ValidationSettings

    database = AsyncMongoClient[dict[str, Any]](mongodb_uri)[ValidationSettings().database]
    wanted = {
        "customers": [record.key for record in dataset.customers],
        "contracts": [record.key for record in dataset.contracts],
        "invoices": [record.key for record in dataset.invoices],
        "payments": [record.key for record in dataset.payments],
    }
    total = sum(len(keys) for keys in wanted.values())
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        known = 0
        for collection, keys in wanted.items():
            known += await database[collection].count_documents({"_id": {"$in": keys}})
        print(f"  validation has taken in {known}/{total} reference records", flush=True)
        if known >= total:
            return
        if asyncio.get_running_loop().time() > deadline:
            print("  still incomplete; going on (early requests may be rejected as unknown)")
            return
        await asyncio.sleep(3)


def _key_value(value: dict[str, Any], key_field: str) -> tuple[str, dict[str, Any]]:
    return str(value[key_field]), value


async def _asyncapi(args: argparse.Namespace) -> int:
    from crs.asyncapi import render

    output = Path(args.output)
    await asyncio.to_thread(output.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(output.write_text, render(), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


async def _bench(args: argparse.Namespace) -> int:
    from crs.bench import report, run_bench

    kafka, mongodb = _addresses(args)
    system, relay = await run_bench(
        bootstrap_servers=kafka, mongodb_uri=mongodb, count=args.count, timeout=args.timeout
    )
    print()
    print(f"{args.count} requests, crm.requests.v1 -> erp.resolutions.v1, broker {kafka}")
    print(report(system, relay, args.count))
    return 0 if system.count == args.count else 1


def _audit_database(args: argparse.Namespace) -> tuple[str, str]:
    """The audit service's MongoDB server and database: flags, else the service's own settings."""
    from services.audit.settings import AuditSettings

    _, mongodb = _addresses(args)
    return mongodb, args.database or AuditSettings().database


async def _audit(args: argparse.Namespace) -> int:
    from crs.audit import verify_request, verify_store

    if args.action == "export":
        return await _audit_export(args)
    if not args.all and not args.request_id:
        print("crs audit verify: give a REQUEST_ID or --all", file=sys.stderr)
        return 2
    mongodb, database = _audit_database(args)
    if args.all:
        code, lines = await verify_store(mongodb, database)
    else:
        code, lines = await verify_request(mongodb, database, args.request_id)
    print("\n".join(lines))
    return code


async def _record(args: argparse.Namespace) -> int:
    from crs.audit import NOT_FOUND, format_record, request_record

    mongodb, database = _audit_database(args)
    record = await request_record(mongodb, database, args.request_id)
    if record is None:
        print(f"{args.request_id}: no audit entries in {database}", file=sys.stderr)
        return NOT_FOUND
    print(record.model_dump_json(indent=2) if args.json else format_record(record))
    return 0


def _add_audit_commands(commands: Any) -> None:
    """`crs audit verify` and `crs record`."""
    audit = commands.add_parser("audit", help="check the audit trail")
    audit.add_argument("action", choices=["verify", "export"])
    which = audit.add_mutually_exclusive_group()
    which.add_argument("request_id", nargs="?", help="verify: check this request's chain")
    which.add_argument(
        "--all", action="store_true", help="verify: check every request's chain and the global chain"
    )
    audit.add_argument("--from", dest="start", help="export: entries recorded from (ISO date or time, UTC)")
    audit.add_argument("--to", dest="end", help="export: entries recorded before (ISO date or time, UTC)")
    audit.add_argument("--out", default=".", help="export: the directory to write to (default: here)")
    audit.add_argument("--progress", action="store_true", help="show progress even when not on a terminal")
    _add_audit_database_flags(audit)

    record = commands.add_parser("record", help="a request's Customer Request Record, from the audit store")
    record.add_argument("request_id")
    record.add_argument("--json", action="store_true", help="print it as JSON")
    _add_audit_database_flags(record)


async def _audit_export(args: argparse.Namespace) -> int:
    from crs.export import export_audit, parse_instant

    if not args.start or not args.end:
        print("crs audit export: --from and --to are required", file=sys.stderr)
        return 2
    mongodb, database = _audit_database(args)
    try:
        result = await export_audit(
            mongodb,
            database,
            start=parse_instant(args.start),
            end=parse_instant(args.end),
            out=Path(args.out),
            progress=args.progress or None,
        )
    except ValueError as error:
        print(f"crs audit export: {error}", file=sys.stderr)
        return 2
    print(f"{result.entries} entries written to {result.jsonl} and {result.csv}")
    return 0


async def _trace(args: argparse.Namespace) -> int:
    from crs.audit import NOT_FOUND
    from crs.trace import format_trace, load_trace

    mongodb, database = _audit_database(args)
    trace = await load_trace(mongodb, database, args.request_id, now=datetime.now(UTC))
    if trace is None:
        print(f"{args.request_id}: no audit entries in {database}", file=sys.stderr)
        return NOT_FOUND
    print(trace.model_dump_json(indent=2) if args.json else format_trace(trace))
    return 0


async def _stats(args: argparse.Namespace) -> int:
    from crs.stats import format_stats, load_stats

    mongodb, database = _audit_database(args)
    stats = await load_stats(mongodb, database, now=datetime.now(UTC), top=args.top)
    print(stats.model_dump_json(indent=2) if args.json else format_stats(stats))
    return 0


async def _dlq(args: argparse.Namespace) -> int:
    from crs.dlq import dead_letter_topics, format_letter, format_list, load_dead_letters, replay, select

    kafka, mongodb = _addresses(args)
    topics = dead_letter_topics(args.topic)
    if args.action == "show" and args.ids:
        topics = sorted({letter.rsplit(":", 2)[0] for letter in args.ids})
    letters = select(
        await load_dead_letters(kafka, mongodb, topics, ops_database=args.ops_database),
        reason=args.reason,
        ids=args.ids,
    )
    if args.action == "list":
        print(format_list(letters, latest=args.latest))
        return 0
    if args.action == "show":
        if len(args.ids) != 1 or not letters:
            print(
                "crs dlq show: give the id of one dead letter (as `crs dlq list` names it)", file=sys.stderr
            )
            return 2
        print(format_letter(letters[0]))
        return 0
    if not (args.ids or args.topic or args.reason or args.all):
        print("crs dlq replay: say what to replay: ids, --topic, --reason or --all", file=sys.stderr)
        return 2
    outcome = await replay(
        kafka,
        mongodb,
        letters,
        force=args.force,
        dry_run=args.dry_run,
        progress=args.progress or None,
        ops_database=args.ops_database,
    )
    verb = "would replay" if args.dry_run else "replayed"
    print(
        f"{verb} {len(outcome.replayed)} dead letters" + "".join(f"\n  {name}" for name in outcome.replayed)
    )
    if outcome.skipped:
        print(
            f"skipped {len(outcome.skipped)} already replayed (--force sends them again)"
            + "".join(f"\n  {name}" for name in outcome.skipped)
        )
    return 0


def _add_ops_commands(commands: Any) -> None:
    """`crs trace`, `crs stats` and `crs dlq`."""
    trace = commands.add_parser("trace", help="a request's path through the services and where it is now")
    trace.add_argument("request_id")
    trace.add_argument("--json", action="store_true", help="print it as JSON")
    _add_audit_database_flags(trace)

    stats = commands.add_parser("stats", help="backlog, ageing, SLAs, resolution times, money, top customers")
    stats.add_argument("--json", action="store_true", help="print it as JSON")
    stats.add_argument("--top", type=int, default=10, help="how many reasons and customers (default 10)")
    _add_audit_database_flags(stats)

    dlq = commands.add_parser("dlq", help="inspect dead letters and replay them")
    dlq.add_argument("action", choices=["list", "show", "replay"])
    dlq.add_argument(
        "ids", nargs="*", help="dead letters as `crs dlq list` names them (topic:partition:offset)"
    )
    dlq.add_argument("--topic", action="append", help="only this DLQ or original topic (repeatable)")
    dlq.add_argument("--reason", help="only dead letters with this x-error-reason")
    dlq.add_argument("--latest", type=int, default=10, help="list: how many of the latest to show")
    dlq.add_argument("--all", action="store_true", help="replay: every dead letter selected by the filters")
    dlq.add_argument("--force", action="store_true", help="replay: send again what was replayed before")
    dlq.add_argument("--dry-run", action="store_true", help="replay: only say what would be sent")
    dlq.add_argument("--progress", action="store_true", help="show progress even when not on a terminal")
    dlq.add_argument("--mongodb-uri", help="where replays are recorded (default: MONGODB_URI, else local)")
    dlq.add_argument("--ops-database", default="crs_ops", help="the database of replays (default crs_ops)")


def _add_audit_database_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mongodb-uri", help="default: MONGODB_URI, else the local stack's")
    parser.add_argument("--database", help="the audit database (default: CRS_AUDIT_DATABASE, else crs_audit)")


def approval_decision(args: argparse.Namespace, *, now: datetime) -> dict[str, Any]:
    """The ``requests.approvals.v1`` message of `crs approve` / `crs reject`, validated by the contract."""
    from shared.contract import ApprovalDecision

    decision = ApprovalDecision(
        request_id=args.request_id,
        decision="approve" if args.command == "approve" else "reject",
        approver=args.approver,
        role=args.role,
        comment=args.comment,
        decided_at=now,
    )
    return decision.model_dump(mode="json")


async def _decide(args: argparse.Namespace) -> int:
    from crs.io import producer, publish_json
    from shared.topics import APPROVALS

    value = approval_decision(args, now=datetime.now(UTC))
    kafka, _ = _addresses(args)
    async with producer(kafka) as client:
        await publish_json(client, APPROVALS, args.request_id, value)
    print(
        f"published {value['decision']} of {args.request_id} by {args.approver} ({args.role}) to {APPROVALS}"
    )
    return 0


def _add_approval_commands(commands: Any) -> None:
    """`crs approve` and `crs reject`: what an approval tool publishes."""
    for name, verb in (("approve", "approve"), ("reject", "reject")):
        command = commands.add_parser(name, help=f"{verb} a request awaiting approval")
        command.add_argument("request_id")
        command.add_argument("--approver", required=True, help="your user id")
        command.add_argument("--role", required=True, help="the role you approve in, e.g. team_lead")
        command.add_argument(
            "--comment", required=name == "reject", help="why (required to reject: the customer sees it)"
        )


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - every command in one flat list
    """The `crs` command line."""
    parser = argparse.ArgumentParser(
        prog="crs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (default: env, else the local stack)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="start, stop or report the local stack")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument("--no-services", action="store_true", help="only the broker and the database")

    topics = commands.add_parser("topics", help="topic administration")
    topics.add_argument("action", choices=["create"])

    demo = commands.add_parser("demo-data", help="publish the demo reference data")
    demo.add_argument("--customers", type=int, default=300, help="size of the dataset (default 300)")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--progress", action="store_true", help="show progress even when stderr is not a terminal"
    )

    submit = commands.add_parser("submit", help="publish a request as a gateway would")
    submit.add_argument("--file", help="a JSON file with the whole message")
    submit.add_argument("--sample", choices=["dispute", "email"], help="the demo dataset's sample request")
    submit.add_argument("--customers", type=int, default=300, help="demo dataset size for --sample")
    submit.add_argument("--seed", type=int, default=42, help="demo dataset seed for --sample")
    submit.add_argument("--channel", choices=["crm", "portal", "email"], default="crm")
    submit.add_argument("--case-id")
    submit.add_argument("--message-id")
    submit.add_argument("--customer")
    submit.add_argument("--type")
    submit.add_argument("--subject", default="Customer request")
    submit.add_argument("--body")
    submit.add_argument("--sender", default="Jane Doe <jane@example.com>", help="email From")
    submit.add_argument("--to", default="ar@billing.example", help="email To")
    submit.add_argument("--invoice", action="append", default=[])
    submit.add_argument("--payment", action="append", default=[])
    submit.add_argument("--disputed-amount")
    submit.add_argument("--expected-amount")
    submit.add_argument("--requested-credit-limit")
    submit.add_argument("--currency", default="USD")
    submit.add_argument("--priority", choices=["low", "normal", "high", "urgent"])

    watch = commands.add_parser("watch", help="tail the request topics")
    watch.add_argument("--from-beginning", action="store_true")
    watch.add_argument("--topic", action="append", help="only these topics (repeatable)")
    watch.add_argument("--request", help="only this request id")
    watch.add_argument("--customer", help="only this customer id")
    watch.add_argument("--status", help="only these statuses or events, comma-separated (e.g. rejected,dlq)")
    watch.add_argument("--dlq", action="store_true", help="the dead-letter topics too")

    run = commands.add_parser("run", help="stack up, demo data, live requests, watch; Ctrl-C stops it")
    run.add_argument("--customers", type=int, default=300)
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--interval", type=float, default=2.0, help="seconds between demo requests (0: none)")

    asyncapi = commands.add_parser("asyncapi", help="write the AsyncAPI document of every topic")
    asyncapi.add_argument("--output", default="docs/asyncapi.json")

    bench = commands.add_parser("bench", help="measure the running stack")
    bench.add_argument("-n", "--count", type=int, default=5_000)
    bench.add_argument("--mongodb-uri")
    bench.add_argument("--timeout", type=float, default=1_800.0)
    _add_audit_commands(commands)
    _add_ops_commands(commands)
    _add_approval_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crs` console script."""
    args = build_parser().parse_args(argv)
    _quiet_logging()
    handlers = {
        "stack": _stack,
        "topics": _topics,
        "demo-data": _demo_data,
        "submit": _submit,
        "watch": _watch,
        "run": _run,
        "bench": _bench,
        "asyncapi": _asyncapi,
        "audit": _audit,
        "record": _record,
        "trace": _trace,
        "stats": _stats,
        "dlq": _dlq,
        "approve": _decide,
        "reject": _decide,
    }
    try:
        return asyncio.run(handlers[args.command](args))
    except StackError as error:
        print(f"crs: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
