"""Signing in checks the password (argon2, most of a second of CPU) off the event loop."""

from __future__ import annotations

import threading

import pytest

from services.workspace import auth
from services.workspace.settings import WorkspaceSettings
from shared.directory import DirectoryUser, FileUserDirectory, hash_password, verify_password


@pytest.mark.parametrize("username", ["ada.agent", "nobody.known"])
async def test_the_password_is_checked_on_a_worker_thread_not_on_the_event_loop(
    username: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = DirectoryUser(id="ada.agent", display_name="Ada", password_hash=hash_password("right"))
    authenticator = auth.Authenticator(
        WorkspaceSettings(secret_key="s" * 40),
        FileUserDirectory([ada]),
    )
    loop_thread = threading.get_ident()
    checked_on: list[int] = []

    def recording(user: DirectoryUser, password: str) -> bool:
        checked_on.append(threading.get_ident())
        return verify_password(user, password)

    monkeypatch.setattr(auth, "verify_password", recording)

    found = await authenticator.sign_in(username, "right")

    assert (found is not None) is (username == "ada.agent")
    assert checked_on, "the password was checked"
    assert loop_thread not in checked_on
