"""Commands around the system: `crs demo-data`, `crs dlq list|show|replay`, `crs bench` and
`crs asyncapi`."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from crs.app import (
    EXIT_BROKEN,
    EXIT_OK,
    BootstrapServers,
    MongodbUri,
    NotFound,
    Refused,
    ShowProgress,
    app,
    dlq_app,
    kafka_address,
    mongodb_address,
    require_broker,
    require_database,
    run,
)


async def publish_demo_data(kafka: str, customers: int, seed: int, *, progress: bool | None = None) -> Any:
    """Publish the demo reference data of ``seed``; returns the dataset."""
    from crs.demo_data import generate_demo_data
    from crs.io import producer, publish_many
    from crs.progress import Progress

    await require_broker(kafka)
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
    print(f"demo data of seed {seed} published ({dataset.customers[0].key} …): {counts}")
    return dataset


@app.command("demo-data")
def demo_data(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(min=1, help="Size of the dataset (customers).")] = 300,
    seed: Annotated[
        int,
        typer.Option(min=0, help="The dataset's seed: the same seed, the same data; other seeds, other ids."),
    ] = 42,
    progress: ShowProgress = False,
    bootstrap_servers: BootstrapServers = None,
) -> int:
    """Publish the deterministic demo reference data (customers, contracts, invoices, payments)."""
    run(publish_demo_data(kafka_address(ctx, bootstrap_servers), customers, seed, progress=progress or None))
    return EXIT_OK


DeadLetterIds = Annotated[
    list[str] | None,
    typer.Argument(help="Dead letters as `crs dlq list` names them (topic:partition:offset)."),
]
DlqTopics = Annotated[
    list[str] | None, typer.Option("--topic", help="Only this DLQ or original topic (repeatable).")
]
Reason = Annotated[str | None, typer.Option(help="Only dead letters with this x-error-reason.")]
OpsDatabase = Annotated[str, typer.Option(help="The database replays are recorded in.")]


async def _letters(
    kafka: str, mongodb: str, topics: list[str] | None, reason: str | None, ids: list[str], ops_database: str
) -> list[Any]:
    from crs.dlq import dead_letter_topics, load_dead_letters, select

    await require_broker(kafka)
    await require_database(mongodb)
    chosen = dead_letter_topics(topics)
    if ids:
        chosen = sorted({letter.rsplit(":", 2)[0] for letter in ids})
    return select(
        await load_dead_letters(kafka, mongodb, chosen, ops_database=ops_database), reason=reason, ids=ids
    )


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    topic: DlqTopics = None,
    reason: Reason = None,
    latest: Annotated[int, typer.Option(min=1, help="How many of the latest to show.")] = 10,
    ops_database: OpsDatabase = "crs_ops",
    bootstrap_servers: BootstrapServers = None,
    mongodb_uri: MongodbUri = None,
) -> int:
    """Count the dead letters per DLQ topic and reason, and show the latest."""
    from crs.dlq import format_list

    kafka, mongodb = kafka_address(ctx, bootstrap_servers), mongodb_address(ctx, mongodb_uri)
    print(format_list(run(_letters(kafka, mongodb, topic, reason, [], ops_database)), latest=latest))
    return EXIT_OK


@dlq_app.command("show")
def dlq_show(
    ctx: typer.Context,
    letter: Annotated[str, typer.Argument(help="The dead letter, as `crs dlq list` names it.")],
    ops_database: OpsDatabase = "crs_ops",
    bootstrap_servers: BootstrapServers = None,
    mongodb_uri: MongodbUri = None,
) -> int:
    """Print one dead letter in full: where it is, its headers and its value."""
    from crs.dlq import format_letter

    kafka, mongodb = kafka_address(ctx, bootstrap_servers), mongodb_address(ctx, mongodb_uri)
    found = run(_letters(kafka, mongodb, None, None, [letter], ops_database))
    if not found:
        raise NotFound(f"no dead letter {letter} (`crs dlq list` names them: topic:partition:offset)")
    print(format_letter(found[0]))
    return EXIT_OK


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    letters: DeadLetterIds = None,
    topic: DlqTopics = None,
    reason: Reason = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead letter the filters select.")] = False,
    force: Annotated[bool, typer.Option(help="Send again what was replayed before.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Only say what would be sent.")] = False,
    progress: ShowProgress = False,
    ops_database: OpsDatabase = "crs_ops",
    bootstrap_servers: BootstrapServers = None,
    mongodb_uri: MongodbUri = None,
) -> int:
    """Send dead letters back to their original topic (once, unless --force)."""
    from crs.dlq import replay

    if not (letters or topic or reason or every):
        raise Refused("say what to replay: ids, --topic, --reason or --all")
    kafka, mongodb = kafka_address(ctx, bootstrap_servers), mongodb_address(ctx, mongodb_uri)

    async def send() -> Any:
        chosen = await _letters(kafka, mongodb, topic, reason, list(letters or ()), ops_database)
        if letters and len(chosen) < len(set(letters)):
            missing = sorted(set(letters) - {letter.id for letter in chosen})
            raise NotFound(f"no dead letter {', '.join(missing)} (`crs dlq list` names them)")
        return await replay(
            kafka,
            mongodb,
            chosen,
            force=force,
            dry_run=dry_run,
            progress=progress or None,
            ops_database=ops_database,
        )

    outcome = run(send())
    verb = "would replay" if dry_run else "replayed"
    print(
        f"{verb} {len(outcome.replayed)} dead letters" + "".join(f"\n  {name}" for name in outcome.replayed)
    )
    if outcome.skipped:
        print(
            f"skipped {len(outcome.skipped)} already replayed (--force sends them again)"
            + "".join(f"\n  {name}" for name in outcome.skipped)
        )
    return EXIT_OK


def _niceness_of(pids: Sequence[int]) -> str:
    """The CPU niceness these processes run at, as read from them (one figure if they agree)."""
    import psutil

    found = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.add(psutil.Process(pid).nice())
    return ", ".join(str(niceness) for niceness in sorted(found)) or "unknown"


def _bench_stack(
    config: Any,
    *,
    batch_size: int | None,
    databases: str | None,
    pool_size: int | None,
    database_options: str | None,
) -> Any:
    """The local stack's configuration with the benchmark's changes (``crs bench --fresh``)."""
    import dataclasses

    from crs.stack import SERVICES, parse_database_groups

    changes: dict[str, Any] = {}
    if databases is not None:
        groups = parse_database_groups(databases)
        changes["database_groups"] = groups
        same_count = len(groups) == len(config.database_groups)
        changes["database_ports"] = config.database_ports if same_count else ()
    if pool_size is not None:
        changes["database_pool_size"] = pool_size
    if database_options is not None:
        changes["database_options"] = tuple(shlex.split(database_options))
    if batch_size is not None:
        changes["extra_env"] = {
            **config.extra_env,
            **{f"CRS_{name.upper()}_MAX_BATCH_SIZE": str(batch_size) for name in SERVICES},
        }
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as error:
        raise Refused(str(error)) from None


BENCH_FRESH_HELP = (
    "Stop the local stack, delete its data and start it again empty, so that runs compare. "
    "--keep (the default) runs on top of what the running stack holds, to show growth."
)


@app.command()
def bench(
    ctx: typer.Context,
    count: Annotated[
        int, typer.Option("-n", "--count", min=1, help="How many requests (and relayed messages).")
    ] = 1_000,
    fresh: Annotated[bool, typer.Option("--fresh/--keep", help=BENCH_FRESH_HELP)] = False,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Requests per second, sent at a steady pace (default: all at once). With a rate the "
            "latencies are one request's way through the system rather than queueing.",
        ),
    ] = None,
    relay: Annotated[
        bool, typer.Option("--relay/--no-relay", help="Also run the bare aiokafka relay, for the ratio.")
    ] = True,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="With --fresh: every service's MAX_BATCH_SIZE (records per transaction)."),
    ] = None,
    databases: Annotated[
        str | None,
        typer.Option(
            help="With --fresh: which services share a database server, e.g. "
            "'audit,workspace/intake/validation,resolution/routing' or 'one' (CRS_DATABASE_SERVERS).",
        ),
    ] = None,
    pool_size: Annotated[
        int | None,
        typer.Option(min=1, help="With --fresh: each service's MongoDB connections (maxPoolSize)."),
    ] = None,
    database_options: Annotated[
        str | None,
        typer.Option(help="With --fresh: more options of every database server ('--cache-size 256M')."),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the figures to this file as JSON.")] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds before the run gives up.")] = 1_800.0,
    bootstrap_servers: BootstrapServers = None,
) -> int:
    """Throughput, latency and cost per request of the local stack, beside a bare aiokafka relay.

    Prints requests/s and p50/p95/p99 latency from crm.requests.v1 to erp.resolutions.v1, the
    database statements each request cost (every service's command counts), database CPU per
    request, each service's memory, and the ratio to the bare relay.
    """
    import json

    from crs.bench import BenchResult, Processes, as_json, report, run_bench
    from crs.drain import drain
    from crs.stack import (
        SERVICES,
        VIEW_SERVICES,
        StackConfig,
        format_database_groups,
        running_pid,
        stack_down,
        stack_up,
    )

    kafka = kafka_address(ctx, bootstrap_servers)
    config = StackConfig.from_env()
    restarts = {
        "--batch-size": batch_size,
        "--databases": databases,
        "--pool-size": pool_size,
        "--database-options": database_options,
    }
    given = [flag for flag, value in restarts.items() if value is not None]
    if given and not fresh:
        raise Refused(f"{', '.join(given)} set up a new stack: add --fresh")
    if fresh:
        if kafka != config.bootstrap_servers:
            raise Refused(f"--fresh restarts the local stack ({config.bootstrap_servers}), not {kafka}")
        config = _bench_stack(
            config,
            batch_size=batch_size,
            databases=databases,
            pool_size=pool_size,
            database_options=database_options,
        )
    metrics = {name: f"http://127.0.0.1:{config.health_ports[name]}/metrics" for name in SERVICES}
    settings = {
        "database servers": format_database_groups(config.database_groups),
        "batch size": str(batch_size) if batch_size is not None else "the services' own",
        "pool size": str(config.database_pool_size or "the driver's"),
    }
    if config.database_options:
        settings["database options"] = " ".join(config.database_options)

    async def measure() -> Any:
        if fresh:
            print(f"fresh: stopping the local stack in {config.home} and deleting its data")
            await stack_down(config)
            for path in config.data_paths:
                await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
            await asyncio.to_thread(shutil.rmtree, config.home / "data", ignore_errors=True)
            await stack_up(config, on_progress=lambda line: print(f"  {line}"), timeout=180)
        await require_broker(kafka)

        async def consumed(what: str) -> None:
            left = await drain(metrics, timeout=timeout, say=lambda _: None, interval=0.5)
            if left.total or left.silent:
                raise NotFound(f"the services did not take in {what}: {left.describe()}")

        pids = {part: running_pid(config, part) for part in config.parts}
        settings["views (audit, workspace) at niceness"] = _niceness_of(
            [pid for name in VIEW_SERVICES if (pid := pids.get(name)) is not None]
        )
        processes = Processes(
            services={name: pid for name in SERVICES if (pid := pids.get(name)) is not None},
            databases={part: pid for part in config.database_parts if (pid := pids.get(part)) is not None},
        )
        return await run_bench(
            bootstrap_servers=kafka,
            count=count,
            rate=rate,
            relay=relay,
            timeout=timeout,
            metrics_urls=metrics,
            processes=processes,
            reference_consumed=lambda: consumed("the benchmark's invoices"),
            everything_consumed=lambda: consumed("what the requests caused"),
        )

    system, relayed, cost = run(measure())
    result = BenchResult(count=count, rate=rate, system=system, relay=relayed, cost=cost, settings=settings)
    print()
    print(f"{count} requests, crm.requests.v1 -> erp.resolutions.v1, broker {kafka}")
    print(report(result))
    if output is not None:
        output.write_text(json.dumps(as_json(result), indent=2) + "\n", encoding="utf-8")
    return EXIT_OK if system.count == count else EXIT_BROKEN


@app.command()
def asyncapi(
    output: Annotated[Path, typer.Option(help="Where to write the document.")] = Path("docs/asyncapi.json"),
) -> int:
    """Write the AsyncAPI 3.0 document of every topic, generated from the message models."""
    from crs.asyncapi import render

    async def write() -> None:
        await asyncio.to_thread(output.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(output.write_text, render(), encoding="utf-8")

    run(write())
    print(f"wrote {output}")
    return EXIT_OK
