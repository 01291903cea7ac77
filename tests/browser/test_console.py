"""The console in a real headless Chromium: what a person does, at desktop (1280 px) and tablet (768 px)
width. Every page's screenshot is saved under tests/artifacts/screenshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.audit.chain import Head, verify_chain
from services.audit.settings import AuditSettings
from shared.contract import RequestStatus
from shared.topics import (
    APPROVALS,
    CUSTOMERS,
    ERP_RESOLUTIONS,
    INVOICES,
    PAYMENTS,
    REQUEST_ACTIONS,
    REQUEST_STATUS,
)
from tests.browser.support import listening
from tests.support import Servers, mongo, publish, unique, wait_for_records, wait_until
from tests.workspace.events import Record, awaiting_approval, routed_request, status
from tests.workspace.support import PASSWORD, Owners, RunningWorkspace

pytestmark = pytest.mark.integration

WIDTHS = {"desktop": 1280, "tablet": 768}
TIMEOUT_MS = 60_000

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.name || e.id)"""
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"
SIDEWAYS = """() => [...document.querySelectorAll('main *')]
  .filter(e => e.clientWidth > 1 && e.scrollWidth > e.clientWidth + 1)
  .filter(e => getComputedStyle(e).overflowX !== 'visible')
  .map(e => e.id || e.className || e.tagName)"""


async def signed_in(browser: Any, workspace: RunningWorkspace, user: str, width: int = 1280) -> Any:
    page = await browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{workspace.url}/")
    await page.get_by_label("User name or email").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{workspace.url}/")
    return page


async def shot(page: Any, screenshots: Path, name: str) -> None:
    await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


async def check_usable(page: Any, width: int) -> None:
    assert await page.evaluate(UNLABELLED) == [], "every form field has a label"
    assert await page.evaluate(OVERFLOW) <= 0, f"the page fits {width} px without scrolling sideways"
    assert await page.evaluate(SIDEWAYS) == [], f"no part of the page scrolls sideways at {width} px"


@pytest.mark.parametrize("device", list(WIDTHS))
async def test_sign_in_see_a_routed_request_arrive_live_pick_it_up_and_add_a_note(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path, device: str
) -> None:
    width = WIDTHS[device]
    page = await signed_in(browser, workspace, "ada.agent", width)
    await listening(page)  # the page's live updates listen: what arrives now arrives live
    request_id = unique("REQ")
    # A subject with a long unbroken reference (a link, a payment reference) must not widen the page.
    subject = f"Live on {device}: ref https://portal.example/cases/{'7' * 90}"
    await publish(servers, *routed_request(request_id, subject=subject))
    row = page.locator(f'tr[data-request="{request_id}"]')
    await row.wait_for()  # arrived without reloading the page
    await check_usable(page, width)
    await shot(page, screenshots, f"queue-{device}")

    await row.get_by_role("link", name=request_id).click()
    await page.wait_for_url(f"{workspace.url}/requests/{request_id}")
    await page.get_by_role("heading", name="Checks that ran").wait_for()
    await check_usable(page, width)
    # By keyboard: focus the button and press Enter.
    await page.get_by_role("button", name="Pick up").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/requests/{request_id}?done=*")
    await page.locator("#assignee", has_text="ada.agent").wait_for()
    await page.get_by_label("Note for the team (the customer does not see it)").fill(
        f"Checked the contract ({device})."
    )
    await page.get_by_role("button", name="Add note").click()
    await page.locator(".notes li", has_text=f"Checked the contract ({device}).").wait_for()
    await shot(page, screenshots, f"request-{device}")
    await page.close()


def credit_limit_change_routed(request_id: str, at: datetime) -> list[Record]:
    """A credit limit change to 58,000.00 USD, routed to credit control (approvals are a team lead's)."""
    return routed_request(
        request_id, request_type="credit_limit_change", amount=None, credit_limit="58000.00", at=at
    )


async def test_an_approver_approves_a_credit_limit_change_from_the_inbox(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path
) -> None:
    at = datetime.now(UTC)
    request_id = unique("REQ")
    await publish(
        servers,
        *credit_limit_change_routed(request_id, at),
        awaiting_approval(request_id, at + timedelta(seconds=3)),
    )
    page = await signed_in(browser, workspace, "bob.smith")
    await page.get_by_role("link", name="Approvals").click()
    item = page.locator("article.inbox-item", has=page.get_by_role("link", name=request_id))
    for _ in range(60):
        if await item.count():
            break
        await page.wait_for_timeout(1000)
        await page.reload()
    await item.get_by_text("You can decide as team lead").wait_for()
    await check_usable(page, 1280)
    await shot(page, screenshots, "approvals-inbox")
    await item.get_by_label("Comment").fill("within the customer's rating")
    await item.get_by_role("button", name="Approve").click()
    await page.wait_for_url(f"**/requests/{request_id}?done=*")
    (decision,) = await wait_for_records(servers, [APPROVALS], lambda r: r.key == request_id)
    assert (decision.value["approver"], decision.value["role"], decision.value["decision"]) == (
        "bob.smith",
        "team_lead",
        "approve",
    )
    await page.get_by_text("approve by bob.smith (team lead)").wait_for()
    await shot(page, screenshots, "approved-request")
    await page.close()


async def test_an_agent_is_refused(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path
) -> None:
    request_id = unique("REQ")
    await publish(
        servers,
        *routed_request(request_id, request_type="credit_limit_change", amount=None, credit_limit="9000.00"),
    )
    page = await signed_in(browser, workspace, "ada.agent")
    assert await page.get_by_role("link", name="Approvals").count() == 0
    answer = await page.goto(f"{workspace.url}/dashboard")
    assert answer.status == 403
    await page.get_by_text("Your role (agent) cannot see the team dashboard.").wait_for()
    await shot(page, screenshots, "refused-dashboard")
    for _ in range(60):
        answer = await page.goto(f"{workspace.url}/requests/{request_id}")
        if answer.status != 404:
            break
        await page.wait_for_timeout(1000)
    assert answer.status == 403
    await page.get_by_text("credit control queue, which is not one of your teams").wait_for()
    await shot(page, screenshots, "refused-other-team")
    await page.close()


def _local(day: int, hour: int) -> datetime:
    """A time of February 2023 in Zurich (UTC+1 then): routing's calendar, 09:00 to 17:00."""
    return datetime(2023, 2, day, hour - 1, 0, tzinfo=UTC)


async def test_the_dashboard_shows_the_figures_of_a_known_set_of_requests(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path
) -> None:
    customer = unique("CUST")
    met, late, still_open = (unique("REQ") for _ in range(3))
    records = [
        # Met: received Monday 6 February 09:00, due 17:00, closed 12:00 (3 business hours).
        *routed_request(met, customer_id=customer, at=_local(6, 9), due=_local(6, 17)),
        status(met, RequestStatus.CLOSED, _local(6, 12), customer_id=customer, reason="claim_not_supported"),
        # Breached: received Tuesday 09:00, due 17:00, closed Wednesday 11:00 (8 + 2 business hours).
        *routed_request(late, customer_id=customer, at=_local(7, 9), due=_local(7, 17)),
        status(late, RequestStatus.CLOSED, _local(8, 11), customer_id=customer, reason="pricing_dispute"),
        # Open, overdue since Wednesday 17:00.
        *routed_request(still_open, customer_id=customer, at=_local(8, 9), due=_local(8, 17)),
    ]
    await publish(servers, *records)
    await wait_for_records(
        servers, [REQUEST_STATUS], lambda r: r.key == late and r.value["status"] == "closed"
    )
    page = await signed_in(browser, workspace, "lena.lead")
    customers = page.locator("#table-customers tr", has_text=customer)
    for _ in range(60):
        await page.goto(f"{workspace.url}/dashboard?start=2023-02-06&end=2023-02-10")
        if await customers.count() and "1" in await customers.inner_text():
            break
        await page.wait_for_timeout(1000)
    cells = await customers.locator("td").all_inner_texts()
    assert cells == [customer, "Acme Logistics GmbH", "3", "1", "1500.00 USD"]
    times = (
        await page.locator("#table-resolution_times tr", has_text="billing_dispute")
        .locator("td")
        .all_inner_texts()
    )
    assert times == ["billing_dispute", "2", "3.0", "10.0"]
    sla = await page.locator("#table-sla tr", has_text="accounts_receivable").locator("td").all_inner_texts()
    assert sla[:4] == ["accounts_receivable", "1", "1", "50.0"]
    assert int(sla[4]) >= 1
    reasons = await page.locator("#table-reasons tbody").inner_text()
    assert "claim_not_supported\t1" in reasons
    assert "pricing_dispute\t1" in reasons
    await check_usable(page, 1280)
    await shot(page, screenshots, "dashboard")
    token = await workspace.token("lena.lead")
    async with workspace.client(token) as client:
        csv = (
            await client.get(
                "/api/dashboard/customers.csv", params={"start": "2023-02-06", "end": "2023-02-10"}
            )
        ).text
    assert f"{customer},Acme Logistics GmbH,3,1,1500.00 USD" in csv.splitlines()
    await page.set_viewport_size({"width": 768, "height": 900})
    await check_usable(page, 768)
    await shot(page, screenshots, "dashboard-tablet")
    await page.close()


async def test_choose_one_of_two_candidate_payments_and_watch_it_resolve(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path, resolution: Owners
) -> None:
    # Resolution's own reference data: the customer, the invoice, and two payments of the amount.
    customer_id, invoice_id = unique("CUST"), unique("INV")
    payments = [f"PAY-{customer_id}-{n}" for n in (1, 2)]
    await publish(servers, *reference_records(customer_id, invoice_id, payments))
    assert resolution.resolution is not None
    for collection, keys in (
        ("customers", [customer_id]),
        ("invoices", [invoice_id]),
        ("payments", payments),
    ):
        await resolution.has(collection, *keys)
    request_id = unique("REQ")
    # Routed a minute ago: what resolution and the person do comes after it.
    at = datetime.now(UTC) - timedelta(minutes=1)
    await publish(
        servers,
        *routed_request(
            request_id, request_type="payment_query", customer_id=customer_id, invoice_id=invoice_id, at=at
        ),
    )
    (several,) = await wait_for_records(
        servers,
        [REQUEST_STATUS],
        lambda r: r.key == request_id and r.value["reason"] == "several_payments_match",
    )
    assert all(payment in several.value["message"] for payment in payments)
    page = await signed_in(browser, workspace, "ada.agent")
    await open_request(page, workspace, request_id)
    await page.get_by_role("region", name="Where it stands").get_by_text("several payments match").wait_for()
    await page.get_by_text("Decide a resolution").click()
    await page.get_by_label("Kind").select_option("payment_allocation")
    await page.get_by_label("Payment (the candidate chosen)").fill(payments[1])
    await page.get_by_label("Reason").first.fill("the bank reference names the invoice")
    await page.get_by_role("button", name="Decide").click()
    await shot(page, screenshots, "candidate-chosen")
    await page.locator(".status-resolved").wait_for(timeout=TIMEOUT_MS)
    (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
    assert (posting.value["kind"], posting.value["payment_id"]) == ("payment_allocation", payments[1])
    await shot(page, screenshots, "candidate-resolved")
    await page.close()


def reference_records(customer_id: str, invoice_id: str, payments: list[str]) -> list[tuple[str, str, Any]]:
    """The customer, one open invoice and unapplied payments of 500.00 USD, as the ERP sends them."""
    updated_at = "2026-11-01T00:00:00Z"
    customer = {
        "customer_id": customer_id,
        "name": "Acme Logistics GmbH",
        "status": "active",
        "kyc_status": "verified",
        "credit_limit": {"amount": "50000.00", "currency": "USD"},
        "tier": "standard",
        "updated_at": updated_at,
    }
    invoice = {
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "issued_on": "2026-10-01",
        "currency": "USD",
        "lines": [{"sku": "CLD", "quantity": "1", "unit_price": "4709.08"}],
        "total": "4709.08",
        "open_amount": "4709.08",
        "status": "open",
        "updated_at": updated_at,
    }
    return [
        (CUSTOMERS, customer_id, customer),
        (INVOICES, invoice_id, invoice),
        *(
            (
                PAYMENTS,
                payment_id,
                {
                    "payment_id": payment_id,
                    "customer_id": customer_id,
                    "amount": {"amount": "500.00", "currency": "USD"},
                    "received_on": f"2026-11-0{n}",
                    "reference": "transfer",
                    "status": "unapplied",
                    "updated_at": updated_at,
                },
            )
            for n, payment_id in enumerate(payments, start=2)
        ),
    ]


async def open_request(page: Any, workspace: RunningWorkspace, request_id: str) -> None:
    """Open the request's page once the workspace's view has it."""
    for _ in range(60):
        answer = await page.goto(f"{workspace.url}/requests/{request_id}")
        if answer.status == 200:
            return
        await page.wait_for_timeout(1000)
    raise AssertionError(f"{request_id} did not reach the workspace's view")


async def service_request_open(
    servers: Servers, workspace: RunningWorkspace, browser: Any, resolution: Owners
) -> tuple[str, Any]:
    """A service request routed a minute ago (resolution has no strategy for it: a person acts),
    known to resolution, open in ada.agent's browser."""
    request_id = unique("REQ")
    at = datetime.now(UTC) - timedelta(minutes=1)
    await publish(servers, *routed_request(request_id, request_type="service_request", at=at))
    await resolution.resolution_knows(request_id)
    page = await signed_in(browser, workspace, "ada.agent")
    await open_request(page, workspace, request_id)
    return request_id, page


async def test_a_request_is_taken_from_routed_to_closed_entirely_in_the_console(
    servers: Servers,
    workspace: RunningWorkspace,
    browser: Any,
    screenshots: Path,
    resolution: Owners,
    *,
    audit: AuditSettings,
) -> None:
    request_id, page = await service_request_open(servers, workspace, browser, resolution)
    await page.get_by_role("button", name="Pick up").click()
    # The "Close" summary that opens the form (the form's own button says "Close" too).
    await page.locator("summary").filter(has_text="Close").click()
    await page.get_by_label("Reason").last.select_option("answered")
    await page.get_by_role("button", name="Close").click()
    await shot(page, screenshots, "closed-in-console")
    await page.locator(".status-closed").first.wait_for(timeout=TIMEOUT_MS)
    # The "who has it" card follows live too: picked up, then closed (nothing left to pick up).
    await page.locator("#who").get_by_text("ada.agent").wait_for(timeout=TIMEOUT_MS)
    assert await page.locator("#who").get_by_role("button", name="Pick up").count() == 0
    await shot(page, screenshots, "closed-in-console-status")
    await page.close()
    # Every step is in the request's audit record, under the person who took it, and its chain holds.
    database = mongo(servers)[audit.database]

    async def trail() -> tuple[list[dict[str, Any]], Head] | None:
        found = [
            entry async for entry in database.entries.find({"request_id": request_id}).sort("sequence", 1)
        ]
        head = await database.request_heads.find_one({"_id": request_id})
        if head is None or not any(entry.get("status") == "closed" for entry in found):
            return None
        return found, Head(head["sequence"], head["hash"])

    steps, head = await wait_until(trail, timeout=240)
    assert verify_chain(request_id, steps, head=head) is None
    done_by_ada = [
        json.loads(entry["text"])["event_type"]
        for entry in steps
        if entry["topic"] == REQUEST_ACTIONS and json.loads(entry["text"])["actor"] == "ada.agent"
    ]
    assert done_by_ada == ["RequestAssigned", "ClosureRequested"]
    statuses = [entry["status"] for entry in steps if entry["topic"] == REQUEST_STATUS]
    assert statuses == ["received", "validated", "routed", "closed"]


async def test_a_page_opened_before_routing_gets_its_actions_once_routed_without_a_reload(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path
) -> None:
    """The workspace may know a request (captured, validated) before routing places it in a queue;
    a page opened then has nothing to work, and shows the forms once the routed event arrives."""
    request_id = unique("REQ")
    captured_and_validated = routed_request(request_id, request_type="service_request")[:4]
    routed = routed_request(request_id, request_type="service_request")[4:]
    await publish(servers, *captured_and_validated)
    page = await signed_in(browser, workspace, "ada.agent")
    await open_request(page, workspace, request_id)
    await listening(page)
    assert await page.locator("#work-card h2").count() == 0, "nothing to work before routing"
    assert await page.locator("#note-card h2").count() == 0
    await publish(servers, *routed)
    await page.locator("summary").filter(has_text="Retry a failed posting").wait_for(timeout=TIMEOUT_MS)
    await page.get_by_role("heading", name="Add a note").wait_for(timeout=TIMEOUT_MS)
    await shot(page, screenshots, "actions-once-routed")
    await page.close()


async def test_an_approver_on_the_page_gets_the_approval_card_once_it_is_asked_for(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path
) -> None:
    at = datetime.now(UTC)
    request_id = unique("REQ")
    await publish(
        servers,
        *credit_limit_change_routed(request_id, at),
    )
    page = await signed_in(browser, workspace, "bob.smith")
    await open_request(page, workspace, request_id)
    await listening(page)
    assert await page.locator("#approve-card h2").count() == 0, "no approval asked for yet"
    await publish(servers, awaiting_approval(request_id, at + timedelta(seconds=3)))
    await page.get_by_text("You can decide as team lead").wait_for(timeout=TIMEOUT_MS)
    await page.get_by_role("button", name="Approve").wait_for(timeout=TIMEOUT_MS)
    await shot(page, screenshots, "approval-card-arrived")
    await page.close()


async def test_an_action_its_owner_refuses_shows_why_on_the_page(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path, resolution: Owners
) -> None:
    """A retry of a posting that never failed: resolution refuses it, and the page says so live."""
    _, page = await service_request_open(servers, workspace, browser, resolution)
    await listening(page)
    await page.locator("summary").filter(has_text="Retry a failed posting").click()
    await page.locator("#rt-reason").fill("the ERP is back")
    await page.get_by_role("button", name="Retry").click()
    refused = page.get_by_role("region", name="Not carried out")
    await refused.get_by_text("resolution refused it").wait_for(timeout=TIMEOUT_MS)
    assert "Retry of a failed posting" in await refused.inner_text()
    await shot(page, screenshots, "refused-action")
