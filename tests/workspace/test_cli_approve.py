"""`crs approve` and `crs reject` decide through the workspace with a bearer token."""

from __future__ import annotations

import asyncio

import pytest

from crs.cli import main
from crs.stack import find_free_port
from shared.topics import APPROVALS
from tests.support import Servers, wait_for_records
from tests.workspace.support import RunningWorkspace
from tests.workspace.test_api import credit_limit_awaiting_approval

pytestmark = pytest.mark.integration


async def crs(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_crs_approve_decides_as_the_tokens_user(
    servers: Servers, workspace: RunningWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = await credit_limit_awaiting_approval(servers, workspace)
    token = await workspace.token("lena.lead")
    where = ("--workspace-url", workspace.url, "--no-check")
    # The token says who decides: another name is refused, nothing is published.
    assert await crs("approve", request_id, "--approver", "bob.smith", "--token", token, *where) == 2
    assert "the token is lena.lead's" in capsys.readouterr().err
    assert await crs("approve", request_id, "--token", token, "--comment", "within policy", *where) == 0
    assert f"published approve of {request_id} by lena.lead through the workspace" in capsys.readouterr().out
    (decision,) = await wait_for_records(servers, [APPROVALS], lambda r: r.key == request_id)
    assert (decision.value["approver"], decision.value["role"], decision.value["comment"]) == (
        "lena.lead",
        "team_lead",
        "within policy",
    )


async def test_crs_reject_is_refused_with_the_workspaces_reason(
    servers: Servers, workspace: RunningWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = await credit_limit_awaiting_approval(servers, workspace)
    token = await workspace.token("ada.agent")
    code = await crs(
        "reject",
        request_id,
        "--comment",
        "no",
        "--token",
        token,
        "--workspace-url",
        workspace.url,
        "--no-check",
    )
    assert code == 2
    assert "cannot approve or reject" in capsys.readouterr().err


async def test_crs_approve_says_when_the_workspace_is_not_up_or_no_token_is_given(
    workspace: RunningWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"http://127.0.0.1:{find_free_port()}"
    assert await crs("approve", "REQ-1", "--token", "t", "--workspace-url", nowhere, "--no-check") == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert f"the workspace at {nowhere} does not answer" in line
    assert "crs stack up" in line
    assert await crs("approve", "REQ-1", "--workspace-url", workspace.url, "--no-check") == 2
    assert "no token" in capsys.readouterr().err
