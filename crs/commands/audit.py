"""Commands that read audit's store through its read API: `crs audit verify|export`, `crs record`,
`crs trace`, `crs stats` and `crs requests`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from crs.app import (
    EXIT_OK,
    AsJson,
    AuditDatabase,
    MongodbUri,
    NotFound,
    Refused,
    ShowProgress,
    app,
    audit_app,
    mongodb_address,
    require_database,
    run,
)
from services.audit.reader import AuditReader

RequestArgument = Annotated[
    str, typer.Argument(help="A request id (REQ-…), or the CRM case id or email Message-ID it came from.")
]


@asynccontextmanager
async def _reader(
    ctx: typer.Context, mongodb_uri: str | None, database: str | None
) -> AsyncIterator[AuditReader]:
    uri = mongodb_address(ctx, mongodb_uri)
    await require_database(uri)
    async with AuditReader.connect(uri, database) as reader:
        yield reader


async def _request_id(reader: AuditReader, given: str) -> str:
    from crs.requests import resolve_request_id

    found = await resolve_request_id(reader, given)
    if found is None:
        raise NotFound(
            f"audit has no request {given!r} in {reader.database_name} (give a request id, a case id "
            "or a Message-ID; `crs requests` lists them)"
        )
    return found


@audit_app.command("verify")
def verify(
    ctx: typer.Context,
    request: Annotated[
        str | None, typer.Argument(help="Check this request's chain (a request id, case id or Message-ID).")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Check every request's chain and the global chain.")
    ] = False,
    mongodb_uri: MongodbUri = None,
    database: AuditDatabase = None,
) -> int:
    """Check audit's hash chains: exit 0 intact, 1 broken, 2 unknown request, 3 database down."""
    from crs.audit import verify_request, verify_store

    if every == (request is not None):
        raise Refused("give a REQUEST_ID or --all (one of them)")

    async def check() -> tuple[int, list[str]]:
        async with _reader(ctx, mongodb_uri, database) as reader:
            if every:
                return await verify_store(reader)
            assert request is not None
            from crs.requests import resolve_request_id

            # Unknown: verify_request says so itself (exit 2), naming what was given.
            return await verify_request(reader, await resolve_request_id(reader, request) or request)

    code, lines = run(check())
    print("\n".join(lines))
    return code


@audit_app.command("export")
def export(
    ctx: typer.Context,
    start: Annotated[
        str, typer.Option("--from", help="Entries recorded from (ISO date or time; no zone: UTC).")
    ],
    end: Annotated[
        str, typer.Option("--to", help="Entries recorded before (ISO date or time; no zone: UTC).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The directory to write to.")] = Path(),
    progress: ShowProgress = False,
    mongodb_uri: MongodbUri = None,
    database: AuditDatabase = None,
) -> int:
    """Write audit's entries recorded in a window as JSON Lines and CSV, in the global chain's order."""
    from crs.export import export_audit, parse_instant

    try:
        window = parse_instant(start), parse_instant(end)
    except ValueError as error:
        raise Refused(f"--from/--to: {error}") from None
    if window[1] <= window[0]:
        raise Refused("--to must be after --from")

    async def write() -> str:
        async with _reader(ctx, mongodb_uri, database) as reader:
            result = await export_audit(
                reader, start=window[0], end=window[1], out=out, progress=progress or None
            )
        return f"{result.entries} entries written to {result.jsonl} and {result.csv}"

    print(run(write()))
    return EXIT_OK


@app.command()
def record(
    ctx: typer.Context,
    request: RequestArgument,
    as_json: AsJson = False,
    mongodb_uri: MongodbUri = None,
    database: AuditDatabase = None,
) -> int:
    """A request's Customer Request Record, from audit's store alone, its chain checked."""
    from crs.audit import format_record, request_record

    async def assemble() -> str:
        async with _reader(ctx, mongodb_uri, database) as reader:
            request_id = await _request_id(reader, request)
            found = await request_record(reader, request_id)
        if found is None:
            raise NotFound(f"audit has no entries of {request_id}")
        return found.model_dump_json(indent=2) if as_json else format_record(found)

    print(run(assemble()))
    return EXIT_OK


@app.command()
def trace(
    ctx: typer.Context,
    request: RequestArgument,
    as_json: AsJson = False,
    mongodb_uri: MongodbUri = None,
    database: AuditDatabase = None,
) -> int:
    """A request's path through the services, the time each step took, and where it is now."""
    from crs.trace import format_trace, load_trace

    async def follow() -> str:
        async with _reader(ctx, mongodb_uri, database) as reader:
            request_id = await _request_id(reader, request)
            found = await load_trace(reader, request_id, now=datetime.now(UTC))
        if found is None:
            raise NotFound(f"audit has no entries of {request_id}")
        return found.model_dump_json(indent=2) if as_json else format_trace(found)

    print(run(follow()))
    return EXIT_OK


@app.command()
def stats(
    ctx: typer.Context,
    as_json: AsJson = False,
    top: Annotated[int, typer.Option("--top", min=1, help="How many reasons and customers to show.")] = 10,
    mongodb_uri: MongodbUri = None,
    database: AuditDatabase = None,
) -> int:
    """Backlog by status and queue, ageing, SLAs, resolution times, money, top reasons and customers."""
    from crs.stats import format_stats, load_stats

    async def count() -> str:
        async with _reader(ctx, mongodb_uri, database) as reader:
            figures = await load_stats(reader, now=datetime.now(UTC), top=top)
        return figures.model_dump_json(indent=2) if as_json else format_stats(figures)

    print(run(count()))
    return EXIT_OK


@app.command("requests")
def list_requests(
    ctx: typer.Context,
    customer: Annotated[
        str | None, typer.Option("--customer", help="A customer id, or the address an email came from.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Latest status, any of several: e.g. on_hold,routed.")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Routed to this queue.")] = None,
    request_type: Annotated[str | None, typer.Option("--type", help="Of this request type.")] = None,
    case_id: Annotated[str | None, typer.Option("--case-id", help="Came from this CRM case.")] = None,
    message_id: Annotated[
        str | None, typer.Option("--message-id", help="Came from this email Message-ID.")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Created at least this long ago: 2h, 3d.")
    ] = None,
    newer_than: Annotated[
        str | None, typer.Option("--newer-than", help="Created at most this long ago: 15m, 1d.")
    ] = None,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only requests not yet resolved, closed or rejected.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many (newest first).")] = 50,
    as_json: AsJson = False,
    mongodb_uri: MongodbUri = None,
    database: AuditDatabase = None,
) -> int:
    """List requests by customer, status, queue, type, age, case id or Message-ID (newest first)."""
    from crs.requests import STATUSES, TABLE_HEADER, RequestFilter, load_requests, parse_age, rows, table_rows
    from shared.contract import RequestType

    statuses = frozenset(part.strip() for part in status.split(",") if part.strip()) if status else None
    unknown = sorted((statuses or frozenset()) - set(STATUSES))
    if unknown:
        raise Refused(f"--status {','.join(unknown)}: no request is ever in it; one of {', '.join(STATUSES)}")
    types = [kind.value for kind in RequestType]
    if request_type is not None and request_type not in types:
        raise Refused(f"--type {request_type}: not a request type; one of {', '.join(types)}")
    if case_id and message_id:
        raise Refused("give --case-id or --message-id, not both")
    try:
        wanted = RequestFilter(
            customer=customer,
            statuses=statuses,
            queue=queue,
            request_type=request_type,
            source=case_id or message_id,
            older_than=parse_age(older_than) if older_than else None,
            newer_than=parse_age(newer_than) if newer_than else None,
            open_only=open_only,
        )
    except ValueError as error:
        raise Refused(str(error)) from None

    async def find() -> list[object]:
        async with _reader(ctx, mongodb_uri, database) as reader:
            return list(rows(await load_requests(reader), wanted, now=datetime.now(UTC)))

    now = datetime.now(UTC)
    found = run(find())
    shown = found[:limit]
    if as_json:
        import json

        print(json.dumps([row.model_dump(mode="json") for row in shown], indent=2))  # type: ignore[attr-defined]
        return EXIT_OK
    if not found:
        print("no requests match")
        return EXIT_OK
    from crs.output import print_table

    print_table(TABLE_HEADER, table_rows(shown, now=now))  # type: ignore[arg-type]
    more = f" (the newest {len(shown)} shown; --limit shows more)" if len(found) > len(shown) else ""
    print(f"{len(found)} requests{more}")
    return EXIT_OK
