"""One running workspace per test module, on the session's real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import Servers
from tests.workspace.support import RunningWorkspace, running_workspace, write_users


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_users(tmp_path_factory.mktemp("workspace-users"))


@pytest.fixture(scope="module")
async def workspace(servers: Servers, users_file: Path) -> AsyncIterator[RunningWorkspace]:
    async with running_workspace(servers, users_file) as running:
        yield running
