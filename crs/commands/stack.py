"""Commands that run things: `crs stack up|down|status`, `crs topics create`, `crs run` (what
`make run` calls) and `crs erp` (the local ERP stand-in)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from crs.app import (
    EXIT_OK,
    BootstrapServers,
    app,
    kafka_address,
    require_broker,
    run,
    stack_app,
    topics_app,
)
from crs.stack import SERVICES, PartStatus, StackConfig, stack_down, stack_status, stack_up


def _print_status(statuses: list[PartStatus], config: StackConfig) -> None:
    from crs.output import print_table

    rows = [
        (
            status.name,
            "healthy" if status.healthy else "unhealthy" if status.running else "stopped",
            str(status.pid) if status.pid is not None else "-",
            status.address,
            str(status.log),
        )
        for status in statuses
    ]
    print_table(("part", "state", "pid", "address", "log"), rows)
    print(f"\nKAFKA_BOOTSTRAP_SERVERS={config.bootstrap_servers}\nMONGODB_URI={config.mongodb_uri}")


@stack_app.command("up")
def up(
    no_services: Annotated[
        bool, typer.Option("--no-services", help="Only the broker and the database.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for every part to be healthy.")
    ] = 60.0,
) -> int:
    """Start the broker, the database and the five services in the background; wait until healthy."""
    config = StackConfig.from_env()
    statuses = run(stack_up(config, include_services=not no_services, on_progress=print, timeout=timeout))
    _print_status(statuses, config)
    return EXIT_OK


@stack_app.command("status")
def status() -> int:
    """Report every part of the local stack: state, pid, address and log file."""
    config = StackConfig.from_env()
    _print_status(run(stack_status(config)), config)
    return EXIT_OK


DRAIN_HELP = (
    "Stop at once, without waiting for the services to consume what is waiting for them. The local "
    "broker keeps records in memory only: records not yet consumed are lost with it, and the "
    "requests they carry stop where they are."
)


@stack_app.command("down")
def down(
    no_drain: Annotated[bool, typer.Option("--no-drain", help=DRAIN_HELP)] = False,
    drain_timeout: Annotated[
        float,
        typer.Option(min=0, help="Seconds to wait for the services to catch up before stopping anyway."),
    ] = 60.0,
) -> int:
    """Drain, then stop the services, the database and the broker (the broker's records go with it)."""
    config = StackConfig.from_env()
    run(drain_and_stop(config, drain=not no_drain, drain_timeout=drain_timeout, say=print))
    return EXIT_OK


async def drain_and_stop(
    config: StackConfig, *, drain: bool, drain_timeout: float, say: Callable[[str], None]
) -> list[str]:
    """`crs stack down`: drain the running services (unless told not to), say what is lost, stop."""
    from crs.drain import dead_letters_held, read_backlog
    from crs.drain import drain as wait_drained

    statuses = {part.name: part for part in await stack_status(config)}
    metrics = {
        name: f"http://127.0.0.1:{config.health_ports[name]}/metrics"
        for name in SERVICES
        if statuses[name].healthy
    }
    if metrics and drain:
        say(
            f"draining: waiting up to {drain_timeout:.0f} s for {', '.join(metrics)} to catch up "
            "(--no-drain skips this)"
        )
        left = await wait_drained(metrics, timeout=drain_timeout, say=say)
        if left.total or left.silent:
            say(f"not drained in {drain_timeout:.0f} s: {left.describe()}; stopping now loses them")
        else:
            say("drained: every service has consumed what was waiting for it")
    elif metrics:
        left = await read_backlog(metrics)
        say(
            f"stopping without draining: {left.describe()}; what is not consumed is lost "
            "with the broker (it keeps records in memory only)"
        )
    if statuses["kafka"].healthy:
        with contextlib.suppress(Exception):
            held = await asyncio.wait_for(dead_letters_held(config.bootstrap_servers), 10)
            if held:
                say(f"the broker holds {held} dead letters; they go with it (`crs dlq list` shows them)")
    stopped = await stack_down(config)
    say("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return stopped


@topics_app.command("create")
def create_topics(ctx: typer.Context, bootstrap_servers: BootstrapServers = None) -> int:
    """Create every topic (what the deployment's init step runs)."""
    from shared.kafka import ensure_topics
    from shared.settings import InfrastructureSettings
    from shared.topics import ALL_TOPICS

    kafka = kafka_address(ctx, bootstrap_servers)
    settings = InfrastructureSettings()

    async def create() -> None:
        await require_broker(kafka)
        await ensure_topics(
            kafka,
            ALL_TOPICS,
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            attempts=3,
        )

    run(create())
    print(f"{len(ALL_TOPICS)} topics present on {kafka}")
    return EXIT_OK


@app.command("erp")
def erp(
    ctx: typer.Context,
    delay: Annotated[float, typer.Option(min=0, help="Seconds before each answer.")] = 1.0,
    failure_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of resolutions answered `failed` (0 to 1).")
    ] = 0.0,
    bootstrap_servers: BootstrapServers = None,
) -> int:
    """A local ERP stand-in: answers erp.resolutions.v1 on erp.acks.v1 until Ctrl-C."""
    from crs.commands.requests import stop_on_signals
    from crs.erp import serve

    kafka = kafka_address(ctx, bootstrap_servers)

    async def answer() -> int:
        await require_broker(kafka)
        print(
            f"erp stand-in on {kafka}: answering {failure_share:.0%} failed, after {delay:g} s (Ctrl-C stops)"
        )
        return await serve(kafka, stop=stop_on_signals(), delay=delay, failure_share=failure_share)

    answered = run(answer())
    print(f"erp stand-in answered {answered} resolutions")
    return EXIT_OK


@app.command("run")
def run_demo(
    customers: Annotated[int, typer.Option(min=1, help="Customers in the demo dataset.")] = 300,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the demo dataset (other seeds: other ids).")] = 42,
    interval: Annotated[float, typer.Option(min=0, help="Seconds between demo requests (0: none).")] = 2.0,
    erp_failure_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of postings the ERP stand-in fails.")
    ] = 0.05,
) -> int:
    """Stack up, demo data, demo requests in every queue, a demo request every few seconds, the ERP
    stand-in, and a watch.

    Ctrl-C stops everything this command started (a stack that was already running stays).
    """
    run(_run_demo(customers=customers, seed=seed, interval=interval, erp_failure_share=erp_failure_share))
    return EXIT_OK


async def _run_demo(*, customers: int, seed: int, interval: float, erp_failure_share: float) -> None:
    from crs.commands.requests import stop_on_signals, watch_until_stopped, watched_topics
    from crs.commands.tools import publish_demo_data
    from crs.demo_queues import describe, publish_queue_demo
    from crs.drain import drain
    from crs.erp import serve
    from crs.io import producer, publish_json
    from crs.traffic import demo_requests, fresh_sources
    from crs.watch import WatchFilter
    from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS

    stop = stop_on_signals()
    config = StackConfig.from_env()
    kafka = config.bootstrap_servers
    already_running = all(part.healthy for part in await stack_status(config))
    print(
        "local stack already running: leaving it running on exit" if already_running else "starting the stack"
    )
    await stack_up(config, on_progress=lambda line: print(f"  {line}"))
    tasks: list[asyncio.Task[Any]] = []
    try:
        dataset = await publish_demo_data(kafka, customers, seed, progress=True)
        metrics = {name: f"http://127.0.0.1:{config.health_ports[name]}/metrics" for name in SERVICES}
        # The demo requests must find their documents: wait until every service has taken in
        # the reference data (its consumer groups have caught up), reading only their metrics.
        left = await drain(metrics, timeout=600, say=lambda line: print(f"  {line}", flush=True))
        print(
            "  the services have taken in the reference data"
            if not left.total
            else f"  still behind: {left.describe()}"
        )
        # Requests that wait for a person in every queue, so the console has work to show; fixed
        # ids, so a second `make run` on the same stack adds none (crs/demo_queues.py).
        waiting = await publish_queue_demo(kafka, dataset)
        print(f"  demo requests for the console's queues (the same ones every run):\n{describe(waiting)}")
        run_tag = time.strftime("%m%d%H%M%S")
        print(
            f"\nwatching the request topics; a demo request every {interval:g}s; the ERP stand-in answers "
            f"resolutions ({erp_failure_share:.0%} fail) (Ctrl-C stops everything this command started)\n"
        )

        async def trickle() -> None:
            async with producer(kafka) as client:
                dispute, email = fresh_sources(dataset, run_tag)
                await publish_json(client, CRM_REQUESTS, dispute["case_id"], dispute)
                await publish_json(client, EMAIL_REQUESTS, email["message_id"], email)
                for topic, key, value in demo_requests(dataset, seed=seed, run_tag=run_tag):
                    if interval <= 0:
                        return
                    await asyncio.sleep(interval)
                    await publish_json(client, topic, key, value)

        tasks.append(asyncio.create_task(trickle()))
        tasks.append(
            asyncio.create_task(
                serve(kafka, stop=stop, delay=1.0, failure_share=erp_failure_share, say=lambda _: None)
            )
        )
        await watch_until_stopped(
            kafka, watched_topics(None, dlq=True), WatchFilter(), from_beginning=True, stop=stop
        )
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not already_running:
            # Stop first, report after: the terminal may already be gone (a closed pipe, a hangup).
            lines: list[str] = []
            await drain_and_stop(config, drain=True, drain_timeout=30, say=lines.append)
            with contextlib.suppress(OSError):
                print("\n" + "\n".join(lines), flush=True)
            sys.stdout.flush()
