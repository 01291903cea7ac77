"""The workspace's API on the real broker and database: every action, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.contract import RequestStatus
from shared.topics import APPROVALS, REQUEST_ACTIONS
from tests.support import Servers, publish, unique, wait_for_records, wait_until
from tests.workspace.events import awaiting_approval, routed_request, status
from tests.workspace.support import PASSWORD, Owners, RunningWorkspace

pytestmark = pytest.mark.integration


async def record_of(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/requests/{request_id}")
    return answer.json() if answer.status_code == 200 else {}


async def routed(servers: Servers, workspace: RunningWorkspace, **kwargs: Any) -> str:
    """A request routed to its queue, once the workspace's view has it as routed."""
    request_id = unique("REQ")
    await publish(servers, *routed_request(request_id, **kwargs))
    token = await workspace.token("adam.admin")
    async with workspace.client(token) as admin:

        async def is_routed() -> bool:
            return bool((await record_of(admin, request_id)).get("summary", {}).get("status") == "routed")

        await wait_until(is_routed, timeout=60)
    return request_id


async def test_an_agent_picks_up_notes_and_releases_a_request_of_her_team(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await routed(servers, workspace)
    async with workspace.client(await workspace.token("ada.agent")) as ada:

        async def shown_whole() -> Any:
            # The captured event (the amount), the routed event (the SLA) and the statuses travel
            # on different topics, read in any order: the row is whole once all are in the view.
            rows = (await ada.get("/api/queues")).json()
            return next(
                (
                    row
                    for row in rows
                    if row["request_id"] == request_id and row["amount"] and row["sla_state"]
                ),
                None,
            )

        row = await wait_until(shown_whole, timeout=30)
        assert (row["queue"], row["status"], row["assignee"], row["sla_state"]) == (
            "accounts_receivable",
            "routed",
            None,
            "running",
        )
        assert row["amount"] == "500.00 USD"
        answer = await ada.post(f"/api/requests/{request_id}/pick-up")
        assert answer.status_code == 202, answer.text
        assert answer.json()["carried_out_by"] == "workspace"

        async def assignee() -> Any:
            return (await record_of(ada, request_id))["summary"]["assignee"]

        assert await wait_until(assignee, timeout=30) == "ada.agent"
        again = await ada.post(f"/api/requests/{request_id}/pick-up")
        assert (again.status_code, again.json()["refused"]) == (409, "already_yours")

        answer = await ada.post(f"/api/requests/{request_id}/notes", json={"text": "Called the customer."})
        assert answer.status_code == 202

        async def notes() -> Any:
            return [note["text"] for note in (await record_of(ada, request_id))["notes"]]

        assert await wait_until(notes, timeout=30) == ["Called the customer."]
        assert (await ada.post(f"/api/requests/{request_id}/release")).status_code == 202

        async def released() -> bool:
            return (await record_of(ada, request_id))["summary"]["assignee"] is None

        await wait_until(released, timeout=30)
    # Every action is on the topic under the person's id and role (audit records it from there).
    actions = await wait_for_records(servers, [REQUEST_ACTIONS], lambda r: r.key == request_id, count=3)
    assert [(a.value["event_type"], a.value["actor"], a.value["actor_role"]) for a in actions] == [
        ("RequestAssigned", "ada.agent", "agent"),
        ("NoteAdded", "ada.agent", "agent"),
        ("RequestReleased", "ada.agent", "agent"),
    ]


async def test_the_same_form_sent_twice_is_one_note(servers: Servers, workspace: RunningWorkspace) -> None:
    request_id = await routed(servers, workspace)
    async with workspace.client(await workspace.token("ada.agent")) as ada:
        for _ in range(2):
            body = {"text": "Once only.", "action_id": "form-1"}
            assert (await ada.post(f"/api/requests/{request_id}/notes", json=body)).status_code == 202
        await wait_until(lambda: _has_notes(ada, request_id), timeout=30)
        await wait_for_records(servers, [REQUEST_ACTIONS], lambda r: r.key == request_id, count=2)
        assert [n["text"] for n in (await record_of(ada, request_id))["notes"]] == ["Once only."]


async def _has_notes(client: httpx.AsyncClient, request_id: str) -> bool:
    return bool((await record_of(client, request_id)).get("notes"))


async def test_a_user_cannot_act_on_another_teams_queue(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await routed(servers, workspace)  # accounts receivable
    async with workspace.client(await workspace.token("carl.cash")) as carl:
        for path, body in (("pick-up", None), ("notes", {"text": "x"}), ("release", None)):
            answer = await carl.post(f"/api/requests/{request_id}/{path}", json=body)
            assert (answer.status_code, answer.json()["refused"]) == (403, "other_team"), path
        assert (await carl.get(f"/api/requests/{request_id}")).status_code == 403
        assert request_id not in [row["request_id"] for row in (await carl.get("/api/queues")).json()]


async def test_an_auditor_reads_everything_and_cannot_act(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await routed(servers, workspace)
    async with workspace.client(await workspace.token("audrey.auditor")) as audrey:
        assert (await audrey.get(f"/api/requests/{request_id}")).status_code == 200
        assert request_id in [row["request_id"] for row in (await audrey.get("/api/queues")).json()]
        for path, body in (
            ("pick-up", None),
            ("notes", {"text": "x"}),
            ("assign", {"assignee": "ada.agent"}),
            ("close", {"reason_code": "answered"}),
            ("approval", {"decision": "approve"}),
        ):
            answer = await audrey.post(f"/api/requests/{request_id}/{path}", json=body)
            assert (answer.status_code, answer.json()["refused"]) == (403, "read_only"), path
        assert (await audrey.get("/api/dashboard")).status_code == 200


async def test_a_team_lead_assigns_within_the_team_and_takes_back_from_someone(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await routed(servers, workspace)
    async with workspace.client(await workspace.token("lena.lead")) as lena:
        answer = await lena.post(f"/api/requests/{request_id}/assign", json={"assignee": "carl.cash"})
        assert (answer.status_code, answer.json()["refused"]) == (422, "assignee_not_in_team")
        answer = await lena.post(f"/api/requests/{request_id}/assign", json={"assignee": "nobody.at.all"})
        assert (answer.status_code, answer.json()["refused"]) == (422, "unknown_assignee")
        assert (
            await lena.post(f"/api/requests/{request_id}/assign", json={"assignee": "ada"})
        ).status_code == 422
        answer = await lena.post(f"/api/requests/{request_id}/assign", json={"assignee": "ada.agent"})
        assert answer.status_code == 202, answer.text

        async def assignee() -> Any:
            return (await record_of(lena, request_id))["summary"]["assignee"]

        assert await wait_until(assignee, timeout=30) == "ada.agent"
    async with workspace.client(await workspace.token("ada.agent")) as ada:
        answer = await ada.post(f"/api/requests/{request_id}/assign", json={"assignee": "ada.agent"})
        assert (answer.status_code, answer.json()["refused"]) == (403, "role_not_allowed")
    async with workspace.client(await workspace.token("adam.admin")) as adam:
        assert (await adam.post(f"/api/requests/{request_id}/release")).status_code == 202


async def test_an_agent_cannot_take_what_someone_else_has(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await routed(servers, workspace, request_type="payment_query")
    async with workspace.client(await workspace.token("carl.cash")) as carl:
        assert (await carl.post(f"/api/requests/{request_id}/pick-up")).status_code == 202
        await wait_until(lambda: _assigned(carl, request_id), timeout=30)
    async with workspace.client(await workspace.token("ada.agent")) as ada:
        answer = await ada.post(f"/api/requests/{request_id}/pick-up")
        assert (answer.status_code, answer.json()["refused"]) == (409, "assigned_to_other")
        answer = await ada.post(f"/api/requests/{request_id}/release")
        assert (answer.status_code, answer.json()["refused"]) == (403, "role_not_allowed")


async def _assigned(client: httpx.AsyncClient, request_id: str) -> bool:
    return (await record_of(client, request_id))["summary"]["assignee"] is not None


async def credit_limit_awaiting_approval(
    servers: Servers, workspace: RunningWorkspace, *, contact_email: str = "jane@acme.example"
) -> str:
    at = datetime.now(UTC)
    request_id = unique("REQ")
    await publish(
        servers,
        *routed_request(
            request_id,
            request_type="credit_limit_change",
            amount=None,
            credit_limit="58000.00",
            at=at,
            contact_email=contact_email,
        ),
        awaiting_approval(request_id, at + timedelta(seconds=3)),
    )
    token = await workspace.token("adam.admin")
    async with workspace.client(token) as admin:

        async def waiting() -> bool:
            summary = (await record_of(admin, request_id)).get("summary", {})
            return bool(summary.get("status") == "awaiting_approval")

        await wait_until(waiting, timeout=60)
    return request_id


async def test_a_team_lead_approves_under_her_own_id_and_cannot_decide_twice(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await credit_limit_awaiting_approval(servers, workspace)
    async with workspace.client(await workspace.token("bob")) as bob:
        inbox = (await bob.get("/api/approvals")).json()
        item = next(item for item in inbox if item["request_id"] == request_id)
        assert item["eligible"]
        assert item["eligible_roles"] == ["team_lead"]
        assert item["approval"]["required"] == ["team_lead"]
        assert item["approval"]["policy"] == "approvals-2026.11"
        answer = await bob.post(
            f"/api/requests/{request_id}/approval", json={"decision": "approve", "comment": "ok"}
        )
        assert answer.status_code == 202, answer.text
        (decision,) = await wait_for_records(servers, [APPROVALS], lambda r: r.key == request_id)
        assert (decision.value["approver"], decision.value["role"], decision.value["decision"]) == (
            "bob.smith",
            "team_lead",
            "approve",
        )

        async def decided() -> Any:
            return (await record_of(bob, request_id))["decisions"]

        await wait_until(decided, timeout=30)
        # Bob holds finance manager too: he cannot fill a second role on the same request.
        answer = await bob.post(
            f"/api/requests/{request_id}/approval", json={"decision": "approve", "role": "finance_manager"}
        )
        assert (answer.status_code, answer.json()["refused"]) == (409, "not_eligible")
        assert "one person fills one role" in answer.json()["detail"]


async def test_an_agent_cannot_approve_and_a_requester_cannot_approve_their_own_request(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await credit_limit_awaiting_approval(
        servers, workspace, contact_email="Bob.Smith@crs.example"
    )
    async with workspace.client(await workspace.token("ada.agent")) as ada:
        answer = await ada.post(f"/api/requests/{request_id}/approval", json={"decision": "approve"})
        assert (answer.status_code, answer.json()["refused"]) == (403, "role_not_allowed")
    async with workspace.client(await workspace.token("bob.smith")) as bob:
        item = next(i for i in (await bob.get("/api/approvals")).json() if i["request_id"] == request_id)
        assert not item["eligible"]
        assert "You requested this yourself" in item["explanation"]
        answer = await bob.post(f"/api/requests/{request_id}/approval", json={"decision": "approve"})
        assert (answer.status_code, answer.json()["refused"]) == (409, "not_eligible")
    async with workspace.client(await workspace.token("fred.finance")) as fred:
        # A finance manager is not what this policy tier needs.
        answer = await fred.post(f"/api/requests/{request_id}/approval", json={"decision": "approve"})
        assert (answer.status_code, answer.json()["refused"]) == (409, "not_eligible")
    async with workspace.client(await workspace.token("lena.lead")) as lena:
        answer = await lena.post(f"/api/requests/{request_id}/approval", json={"decision": "reject"})
        assert (answer.status_code, answer.json()["refused"]) == (422, "comment_required")
        answer = await lena.post(
            f"/api/requests/{request_id}/approval",
            json={"decision": "reject", "comment": "too high for the risk"},
        )
        assert answer.status_code == 202


async def test_no_token_a_bad_token_and_a_form_without_its_csrf_token_are_refused(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await routed(servers, workspace)
    async with workspace.client() as anonymous:
        assert (await anonymous.get("/api/queues")).status_code == 401
        assert (await anonymous.post(f"/api/requests/{request_id}/pick-up")).status_code == 401
        page = await anonymous.get("/", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=/")
    async with workspace.client("not-a-token") as forged:
        assert (await forged.get("/api/queues")).status_code == 401
    async with workspace.client() as browser:
        login_page = await browser.get("/login")
        csrf = login_page.text.split('name="csrf_token" value="')[1].split('"')[0]
        wrong = await browser.post(
            "/login", data={"username": "ada.agent", "password": "nope", "csrf_token": csrf}
        )
        assert wrong.status_code == 401
        signed_in = await browser.post(
            "/login",
            data={"username": "ada.agent", "password": PASSWORD, "csrf_token": csrf},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "secure" not in cookie  # on 127.0.0.1 only; elsewhere Secure (settings test)
        answer = await browser.post(f"/requests/{request_id}/do/note", data={"text": "no token"})
        assert (answer.status_code, answer.json()["refused"]) == (403, "csrf")
        answer = await browser.post(f"/api/requests/{request_id}/notes", json={"text": "no token"})
        assert (answer.status_code, answer.json()["refused"]) == (403, "csrf")
        page = await browser.get(f"/requests/{request_id}")
        fresh = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        answer = await browser.post(
            f"/requests/{request_id}/do/note",
            data={"text": "with token", "csrf_token": fresh},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        answer = await browser.post(
            f"/api/requests/{request_id}/notes", json={"text": "htmx way"}, headers={"x-csrf-token": fresh}
        )
        assert answer.status_code == 202


@pytest.mark.parametrize(
    ("path", "body", "event_type"),
    [
        (
            "reclassify",
            {"request_type": "invoice_correction", "reason": "it is a correction"},
            "ReclassificationRequested",
        ),
        ("reroute", {"queue": "collections", "priority": "high", "reason": "write-off"}, "RerouteRequested"),
        ("ask-customer", {"question": "Which invoice do you mean?"}, "CustomerQuestionRequested"),
        (
            "resolution",
            {
                "kind": "credit_memo",
                "invoice_id": "INV-2026-000123",
                "amount": {"amount": "96.60", "currency": "USD"},
                "reason": "contract price",
            },
            "ResolutionDecided",
        ),
        ("retry-posting", {"reason": "the ERP is back"}, "PostingRetryRequested"),
        ("close", {"reason_code": "answered", "comment": "told by phone"}, "ClosureRequested"),
    ],
)
async def test_the_owners_actions_are_published_and_shown(
    servers: Servers, workspace: RunningWorkspace, path: str, body: dict[str, Any], event_type: str
) -> None:
    request_id = await routed(servers, workspace)
    async with workspace.client(await workspace.token("ada.agent")) as ada:
        answer = await ada.post(f"/api/requests/{request_id}/{path}", json=body)
        assert answer.status_code == 202, answer.text
        assert answer.json()["event_type"] == event_type
        assert answer.json()["carried_out_by"] in ("routing", "validation", "resolution")
        (action,) = await wait_for_records(servers, [REQUEST_ACTIONS], lambda r: r.key == request_id)
        assert (action.value["event_type"], action.value["actor"]) == (event_type, "ada.agent")

        async def shown() -> Any:
            return [a["event_type"] for a in (await record_of(ada, request_id))["actions"]]

        assert await wait_until(shown, timeout=30) == [event_type]
    async with workspace.client(await workspace.token("carl.cash")) as carl:
        answer = await carl.post(f"/api/requests/{request_id}/{path}", json=body)
        assert (answer.status_code, answer.json()["refused"]) == (403, "other_team")


async def test_a_rerouted_request_moves_to_the_new_queue(
    servers: Servers, workspace: RunningWorkspace, routing: Owners
) -> None:
    # Routed a minute ago, so that the re-routing is the later of the two routings.
    request_id = await routed(servers, workspace, at=datetime.now(UTC) - timedelta(minutes=1))
    await routing.routing_routed(request_id)
    async with workspace.client(await workspace.token("lena.lead")) as lena:
        body = {"queue": "collections", "reason": "it is a write-off"}
        assert (await lena.post(f"/api/requests/{request_id}/reroute", json=body)).status_code == 202

        async def queue() -> Any:
            return (await record_of(lena, request_id))["summary"]["queue"] == "collections"

        await wait_until(queue, timeout=20)


async def test_a_request_closed_in_the_console_is_closed(
    servers: Servers, workspace: RunningWorkspace, resolution: Owners
) -> None:
    # A type resolution has no strategy for: it stays routed until a person acts.
    request_id = await routed(servers, workspace, request_type="service_request")
    await resolution.resolution_knows(request_id)
    async with workspace.client(await workspace.token("ada.agent")) as ada:
        assert (
            await ada.post(f"/api/requests/{request_id}/close", json={"reason_code": "answered"})
        ).status_code == 202
        await wait_for_records(
            servers,
            [REQUEST_STATUS_TOPIC],
            lambda r: r.key == request_id and r.value["status"] == "closed",
            timeout=20,
        )


REQUEST_STATUS_TOPIC = "requests.status.v1"


async def test_an_action_its_owner_refuses_shows_on_the_request_with_the_reason(
    servers: Servers, workspace: RunningWorkspace, resolution: Owners
) -> None:
    """Resolution cannot retry a posting that never failed: it dead-letters the action, and the
    person who asked reads why on the request instead of waiting for something to happen."""
    request_id = await routed(servers, workspace, request_type="service_request")
    await resolution.resolution_knows(request_id)
    async with workspace.client(await workspace.token("ada.agent")) as ada:
        answer = await ada.post(f"/api/requests/{request_id}/retry-posting", json={"reason": "ERP is back"})
        assert answer.status_code == 202

        async def refused() -> list[dict[str, Any]]:
            return list((await record_of(ada, request_id)).get("refused_actions") or [])

        (refusal,) = await wait_until(refused, timeout=60)
        record = await record_of(ada, request_id)
    assert refusal["event_type"] == "PostingRetryRequested"
    assert refusal["action_name"] == "Retry of a failed posting"
    assert refusal["actor"] == "ada.agent"
    assert refusal["refused_by"] == "resolution"
    assert refusal["reason"] == "no_failed_posting"
    assert refusal["detail"]
    assert any(
        entry["what"] == "Retry of a failed posting refused by resolution" for entry in record["timeline"]
    )


async def test_a_closed_request_takes_no_more_work_but_notes(
    servers: Servers, workspace: RunningWorkspace
) -> None:
    request_id = await routed(servers, workspace)
    await publish(servers, status(request_id, RequestStatus.CLOSED, datetime.now(UTC) + timedelta(seconds=5)))
    async with workspace.client(await workspace.token("ada.agent")) as ada:

        async def closed() -> bool:
            return bool((await record_of(ada, request_id))["summary"]["status"] == "closed")

        await wait_until(closed, timeout=30)
        answer = await ada.post(f"/api/requests/{request_id}/pick-up")
        assert (answer.status_code, answer.json()["refused"]) == (409, "request_closed")
        assert (
            await ada.post(f"/api/requests/{request_id}/notes", json={"text": "after"})
        ).status_code == 202


async def test_openapi_health_and_metrics_are_served(workspace: RunningWorkspace) -> None:
    async with workspace.client() as client:
        spec = (await client.get("/openapi.json")).json()
        assert "/api/requests/{request_id}/approval" in spec["paths"]
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/health")).status_code == 204
        assert (await client.get("/health/live")).status_code == 204
        metrics = await client.get("/metrics")
        assert "crs_messages_handled_total{" in metrics.text


async def test_the_dashboard_s_default_period_runs_up_to_today(workspace: RunningWorkspace) -> None:
    async with workspace.client(await workspace.token("lena.lead")) as lena:
        page = await lena.get("/dashboard")
    assert page.status_code == 200
    today = datetime.now(UTC).date().isoformat()
    assert f'id="end" name="end" value="{today}"' in page.text
