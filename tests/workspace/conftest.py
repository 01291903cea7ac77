"""One running workspace per test module, on the session's real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import Servers
from tests.workspace.support import Owners, RunningWorkspace, running_owners, running_workspace, write_users


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_users(tmp_path_factory.mktemp("workspace-users"))


@pytest.fixture(scope="module")
async def workspace(servers: Servers, users_file: Path) -> AsyncIterator[RunningWorkspace]:
    async with running_workspace(servers, users_file) as running:
        yield running


@pytest.fixture
async def routing(servers: Servers) -> AsyncIterator[Owners]:
    """Routing, for a test of the actions it carries out (re-route, reclassify)."""
    async with running_owners(servers, routing=True, resolution=False) as running:
        yield running


@pytest.fixture
async def resolution(servers: Servers) -> AsyncIterator[Owners]:
    """Resolution, for a test of the actions it carries out (decide, retry a posting, close)."""
    async with running_owners(servers, routing=False, resolution=True) as running:
        yield running
