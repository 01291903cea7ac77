"""Every query shape the services send, with the index it uses (``query_shapes.toml`` beside this).

A representative flow (reference data, a CRM dispute resolved and acknowledged, an email request)
runs through intake, validation, routing, resolution and audit in this process on the real local
database server, with a command listener on the services' clients that collects the shape of
every query: the collection, the fields of the filter with their operators, and the sort. The
workspace's view and pages are asked directly (its store's queries). Each shape is then explained
on the server.

It fails on a shape the data file does not list (add it with the index it uses, so a new query is
seen in review), and on a listed shape whose plan uses another index than the file says, or none
where the file names one. Shapes the file marks ``scan`` use no index today: they are known, with
the reason, and are to go (issue 13's second phase); a new one cannot be added silently. An indexed
range open below (``$lt`` alone) fails too, unless the file says in ``never_null`` why the field is
never null: the local server reads it from the index's start, through every null.
"""

from __future__ import annotations

import asyncio
import copy
import json
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import monitoring

import shared.runtime
from crs.io import producer, publish_json
from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from services.intake.app import build_app as build_intake
from services.intake.domain import crm_request_id
from services.intake.settings import IntakeSettings
from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from services.routing.app import build_app as build_routing
from services.routing.settings import RoutingSettings
from services.validation.app import build_app as build_validation
from services.validation.settings import ValidationSettings
from services.workspace.store import WorkspaceStore
from shared.actions import action_event_id
from shared.mongo import build_mongo_client
from shared.topics import (
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    REQUEST_ACTIONS,
    REQUEST_STATUS,
    REQUEST_UPDATED,
)
from tests.e2e.scenario import new_world
from tests.support import Servers, isolated_settings, running_service, unique, wait_for_records, wait_until

pytestmark = pytest.mark.integration

SHAPES_FILE = Path(__file__).with_name("query_shapes.toml")
QUERY_COMMANDS = frozenset({"find", "update", "delete", "findAndModify", "aggregate", "count", "distinct"})


@dataclass(frozen=True)
class Sample:
    """One query as sent: where, its filter and sort (with values, for ``explain``)."""

    service: str
    database: str
    collection: str
    filter: dict[str, Any]
    sort: dict[str, Any] | None

    @property
    def shape(self) -> str:
        sort = f" sort {','.join(f'{k}:{v}' for k, v in self.sort.items())}" if self.sort else ""
        return f"{self.service} {self.collection} {{{filter_shape(self.filter)}}}{sort}"


def filter_shape(query: Mapping[str, Any]) -> str:
    """The fields of a filter and their operators, values left out, in a stable order."""
    parts = []
    for field, condition in sorted(query.items()):
        if field in ("$or", "$and", "$nor"):
            parts.append(f"{field}[{' | '.join(sorted(filter_shape(one) for one in condition))}]")
        elif (
            isinstance(condition, Mapping) and condition and all(str(op).startswith("$") for op in condition)
        ):
            parts.append(f"{field} {' '.join(sorted(condition))}")
        else:
            parts.append(f"{field} =")
    return ", ".join(parts)


def open_below(query: Mapping[str, Any]) -> list[str]:
    """The fields a filter bounds from above only (``$lt``/``$lte`` with no ``$gt``/``$gte``)."""
    fields = []
    for field, condition in query.items():
        if field in ("$or", "$and", "$nor"):
            fields += [name for one in condition for name in open_below(one)]
        elif (
            isinstance(condition, Mapping)
            and {"$lt", "$lte"} & set(condition)
            and not {"$gt", "$gte"} & set(condition)
        ):
            fields.append(field)
    return fields


def samples_of(service: str, event: monitoring.CommandStartedEvent) -> Iterator[Sample]:
    """The queries of one command (an update or a delete carries several)."""
    command, name = event.command, event.command_name
    collection = command.get(name)
    if not isinstance(collection, str):
        return

    def sample(query: Any, sort: Any = None) -> Sample:
        return Sample(
            service, event.database_name, collection, dict(query or {}), dict(sort) if sort else None
        )

    if name == "find":
        yield sample(command.get("filter"), command.get("sort"))
    elif name == "update":
        for statement in command.get("updates", []):
            yield sample(statement.get("q"))
    elif name == "delete":
        for statement in command.get("deletes", []):
            yield sample(statement.get("q"))
    elif name == "findAndModify":
        yield sample(command.get("query"), command.get("sort"))
    elif name in ("count", "distinct"):
        yield sample(command.get("query"))
    elif name == "aggregate":
        pipeline = command.get("pipeline") or [{}]
        match = pipeline[0].get("$match") if pipeline else None
        sort = next((stage["$sort"] for stage in pipeline if "$sort" in stage), None)
        yield sample(match, sort)


class ShapeCollector(monitoring.CommandListener):
    """Collects the first sample of every shape each service sends."""

    def __init__(self) -> None:
        self.samples: dict[str, Sample] = {}

    def service_of(self, database: str) -> str:
        return database.rsplit("_", 1)[-1]

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in QUERY_COMMANDS:
            return
        for found in samples_of(self.service_of(event.database_name), event):
            if found.shape not in self.samples:
                self.samples[found.shape] = copy.deepcopy(found)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def index_of(plan: Mapping[str, Any]) -> str:
    """The index a winning plan reads (``COLLSCAN`` when none)."""
    if plan.get("stage") == "COLLSCAN":
        return "COLLSCAN"
    if plan.get("stage") == "IXSCAN":
        return str(plan.get("indexName"))
    for key in ("inputStage", "queryPlan"):
        if isinstance(plan.get(key), Mapping):
            return index_of(plan[key])
    for child in plan.get("inputStages", []):
        return index_of(child)
    return str(plan.get("stage"))


def actions_on(request_id: str, case_id: str) -> list[dict[str, Any]]:
    """A re-routing and a resolution decided, as the workspace publishes them."""
    common = {
        "request_id": request_id,
        "correlation_id": case_id,
        "occurred_at": "2026-11-30T10:00:00Z",
        "actor": "lena.lead",
        "actor_role": "team_lead",
    }
    return [
        {
            **common,
            "event_type": "RerouteRequested",
            "event_id": action_event_id(request_id, "shapes-reroute"),
            "queue": "collections",
            "reason": "shapes",
        },
        {
            **common,
            "event_type": "ResolutionDecided",
            "event_id": action_event_id(request_id, "shapes-decide"),
            "kind": "credit_memo",
            "amount": {"amount": "1.00", "currency": "USD"},
            "reason": "shapes",
        },
    ]


async def test_every_query_shape_the_services_send_is_listed_with_the_index_it_uses(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = ShapeCollector()

    def monitored_client(uri: Any, *, listeners: Any = ()) -> Any:
        return build_mongo_client(uri, listeners=[*listeners, collector])

    monkeypatch.setattr(shared.runtime, "build_mongo_client", monitored_client)
    tag = unique("shapes").lower().replace("-", "_")
    settings: list[tuple[Any, Any]] = [
        (build_intake, isolated_settings(IntakeSettings, database=f"{tag}_intake")),
        (build_validation, isolated_settings(ValidationSettings, database=f"{tag}_validation")),
        (build_routing, isolated_settings(RoutingSettings, database=f"{tag}_routing")),
        (build_resolution, isolated_settings(ResolutionSettings, database=f"{tag}_resolution")),
        (build_audit, isolated_settings(AuditSettings, database=f"{tag}_audit")),
    ]
    world, other = new_world(), new_world()  # the email is about another customer's invoice
    case_id, mail = unique("CASE"), unique("mail")
    request_id = crm_request_id(case_id)
    async with AsyncExitStack() as stack:
        for build, values in settings:
            await stack.enter_async_context(running_service(build, values, servers))
        async with producer(servers.bootstrap_servers) as client:
            for topic, key, value in [*world.reference_records(), *other.reference_records()]:
                await publish_json(client, topic, key, value)
            views = build_mongo_client(servers.mongodb_uri)
            for service in ("validation", "resolution"):  # both reference views take them in first

                async def known(database: Any = views[f"{tag}_{service}"]) -> bool:
                    found = [
                        await database.customers.find_one({"_id": world.customer_id}),
                        await database.invoices.find_one({"_id": world.invoice_id}),
                        await database.contracts.find_one({"_id": world.contract_id}),
                    ]
                    return None not in found

                await wait_until(known, timeout=120)
            await views.close()
            await publish_json(client, CRM_REQUESTS, case_id, world.dispute(case_id))
            email = other.email(mail)
            await publish_json(client, EMAIL_REQUESTS, email["message_id"], email)
            (resolution,) = await wait_for_records(
                servers, [ERP_RESOLUTIONS], lambda record: record.key == request_id, count=1, timeout=120
            )
            # A person re-routes it (routing writes the new route) and decides a resolution
            # (refused: its posting is sent already) in the console.
            for action in actions_on(request_id, case_id):
                await publish_json(client, REQUEST_ACTIONS, request_id, action)
            await wait_for_records(
                servers,
                [REQUEST_STATUS],
                lambda record: (
                    record.key == request_id and record.value.get("reason") == "rerouted_by_person"
                ),
                timeout=120,
            )
            ack = {
                "resolution_id": resolution.value["resolution_id"],
                "request_id": request_id,
                "status": "posted",
                "erp_document_id": "ERP-SHAPES",
                "posted_at": "2026-11-30T10:00:00Z",
            }
            await publish_json(client, ERP_ACKS, request_id, ack)
        await wait_for_records(
            servers,
            [REQUEST_STATUS],
            lambda record: record.key == request_id and record.value.get("status") == "closed",
            count=1,
            timeout=120,
        )
        # Issue 9 items 4, 5: a reply in the email's thread and the case published again, changed.
        async with producer(servers.bootstrap_servers) as client:
            reply = {
                **email,
                "message_id": f"<{unique('reply').lower()}@mail.example>",
                "in_reply_to": email["message_id"],
            }
            await publish_json(client, EMAIL_REQUESTS, reply["message_id"], reply)
            await publish_json(client, CRM_REQUESTS, case_id, world.dispute(case_id) | {"withdrawn": True})
        await wait_for_records(
            servers, [REQUEST_UPDATED], lambda record: record.key == request_id, count=1, timeout=120
        )
        await asyncio.sleep(7.0)  # the timers (holds, SLA clocks, acks, the sweeper) run too

    explainer = build_mongo_client(servers.mongodb_uri)
    workspace = WorkspaceStore(
        build_mongo_client(servers.mongodb_uri, listeners=[collector])[f"{tag}_workspace"]
    )
    await workspace.ensure_indexes()
    await workspace.documents([request_id], session=None)  # type: ignore[arg-type]
    await workspace.request(request_id)
    await workspace.summary(request_id)
    await workspace.summaries(queues=["accounts_receivable"], open_only=True)
    await workspace.summaries(status="routed")
    await workspace.emails([f"{mail}@mail.example"])

    listed = tomllib.loads(SHAPES_FILE.read_text(encoding="utf-8")).get("shape", [])
    expected = {entry["shape"]: entry for entry in listed}
    problems = []
    for shape, sample in sorted(collector.samples.items()):
        command: dict[str, Any] = {"find": sample.collection, "filter": sample.filter}
        if sample.sort:
            command["sort"] = sample.sort
        explained = await explainer[sample.database].command(
            {"explain": command, "verbosity": "queryPlanner"}
        )
        used = index_of(explained["queryPlanner"]["winningPlan"])
        entry = expected.get(shape)
        if entry is None:
            entry_text = f'[[shape]]\nshape = {json.dumps(shape)}\nindex = "{used}"'
            problems.append(f"new shape, not in {SHAPES_FILE.name}:\n{entry_text}")
        elif entry["index"] != used:
            problems.append(f"{shape}: uses {used}, {SHAPES_FILE.name} says {entry['index']}")
        elif used == "COLLSCAN" and not entry.get("scan"):
            problems.append(f"{shape}: uses no index (a known one says why in `scan`)")
        elif used != "COLLSCAN" and open_below(sample.filter) and not entry.get("never_null"):
            # The local server reads such a range from the start of the index: through every
            # document whose field is null (the SLA clocks that stand: nearly all of them).
            problems.append(
                f"{shape}: a range open below reads every null of {used}; bound it below, or say "
                "in `never_null` why every document holds a value"
            )
    await explainer.close()
    assert not problems, "\n".join(problems)
