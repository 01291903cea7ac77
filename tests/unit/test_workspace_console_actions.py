"""The request page's form actions (a table of small functions) and that the workspace's HTTP
handlers fit on a screen."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest

from services.workspace.permissions import Person, Refusal
from services.workspace.routes.console_actions import CONSOLE_ACTIONS, perform
from services.workspace.routes.pages import _DONE
from services.workspace.service import Published, Workspace
from shared.actions import OWNED_BY_WORKSPACE, OWNER_OF
from tests.unit.test_resolution_strategies import person

WORKSPACE = Path(__file__).parents[2] / "services" / "workspace"
ADA = Person(person("ada.agent", "agent"))


class RecordingWorkspace:
    """Answers every action with a published event and remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        async def action(*args: Any, **kwargs: Any) -> Published:
            self.calls.append((name, args[1:], kwargs))  # without the person
            return Published("requests.actions.v1", "E-1", name, "REQ-1", {})

        return action


async def act(action: str, form: dict[str, str]) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    workspace = RecordingWorkspace()
    await perform(cast(Workspace, workspace), ADA, "REQ-1", action, form)
    [call] = workspace.calls
    return call


async def test_every_form_the_request_page_posts_has_its_action_and_no_action_is_unused() -> None:
    templates = "\n".join(path.read_text() for path in (WORKSPACE / "templates").glob("*.html"))
    posted = set(re.findall(r'form_start\("([a-z-]+)"\)', templates))
    posted |= set(re.findall(r"/do/([a-z-]+)\"", templates))
    assert posted == set(CONSOLE_ACTIONS)


async def test_an_action_there_is_not_is_refused_as_not_found() -> None:
    with pytest.raises(Refusal) as refused:
        await perform(cast(Workspace, RecordingWorkspace()), ADA, "REQ-1", "delete-everything", {})
    assert (refused.value.reason, refused.value.status_code) == ("unknown_action", 404)


async def test_a_blank_required_field_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="reason code is required"):
        await act("close", {"reason_code": "  "})


async def test_a_form_is_taken_as_the_api_takes_it() -> None:
    assert await act("reroute", {"queue": "ar", "reason": "wrong team", "action_id": "A1"}) == (
        "reroute",
        ("REQ-1", "ar", "wrong team", None),
        {"action_id": "A1"},
    )
    assert await act("reject", {"role": "team_lead", "comment": "", "action_id": "A2"}) == (
        "decide_approval",
        ("REQ-1", "reject"),
        {"role": "team_lead", "comment": None},
    )
    name, (_, fields), _ = await act(
        "resolution",
        {"kind": "credit_memo", "invoice_id": "INV-1", "amount": "12.50", "reason": "overbilled"},
    )
    assert name == "decide_resolution"
    assert fields["amount"] == {"amount": Decimal("12.50"), "currency": "USD"}


def test_the_workspace_handlers_fit_on_a_screen() -> None:
    long = [
        f"{path.relative_to(WORKSPACE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in [WORKSPACE / "web.py", *(WORKSPACE / "routes").glob("*.py")]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 50
    ]
    assert long == []


def test_the_page_says_what_was_done_in_words_for_every_action() -> None:
    assert set(_DONE) == OWNED_BY_WORKSPACE | set(OWNER_OF)
    assert not any(name in sentence for name in _DONE for sentence in _DONE.values())
