"""The local stack's users: the example directory with a password generated once per stack.

``crs stack up`` (and so ``make run``) calls :func:`prepare_local_users` before it starts the
services: the first time, it writes ``<CRS_HOME>/workspace/users.toml`` (the example users with
argon2 hashes of new random passwords; the passwords themselves are never stored) and
``secret_key`` (signs the workspace's sessions and tokens), both readable by the owner only, and
returns the passwords so they are printed once. Later calls find the files and return no
passwords. Delete the folder to get new ones.

The stack then runs every service with ``CRS_USER_DIRECTORY_PATH`` pointing at that file (approvals
and sign-in agree on who is who) and the workspace with ``CRS_WORKSPACE_SECRET_KEY`` from the key.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.directory import EXAMPLE_DIRECTORY_PATH, FileUserDirectory, hash_password

DEMO_USERS = ("ada.agent", "lena.lead", "fred.finance", "audrey.auditor", "adam.admin", "bob.smith")
"""One per role (agent, team lead, finance manager, auditor, admin), and Bob (lead and finance manager)."""


@dataclass(frozen=True)
class LocalUsers:
    users_file: Path
    secret_key_file: Path
    passwords: Mapping[str, str] = field(default_factory=dict)  # empty: made by an earlier run

    def environment(self) -> dict[str, str]:
        """What the stack gives the services (every one: the directory; the workspace: the key)."""
        return {
            "CRS_USER_DIRECTORY_PATH": str(self.users_file),
            "CRS_WORKSPACE_SECRET_KEY": self.secret_key_file.read_text(encoding="utf-8").strip(),
        }

    def announcement(self, url: str = "http://127.0.0.1:8080") -> str:
        """The lines ``make run`` prints: the console's address and, the first time, the passwords."""
        lines = [f"workspace: {url} (API docs at {url}/docs)"]
        if self.passwords:
            lines.append(
                "demo users (passwords shown once; delete the workspace folder of CRS_HOME for new ones):"
            )
            lines += [f"  {user:<16} {password}" for user, password in self.passwords.items()]
        else:
            lines.append(
                f"demo users: {', '.join(DEMO_USERS)} (passwords as printed when {self.users_file} was made)"
            )
        return "\n".join(lines)


def prepare_local_users(home: Path, *, example: Path = EXAMPLE_DIRECTORY_PATH) -> LocalUsers:
    """The stack's users file and secret key under ``home/workspace``, made the first time only."""
    folder = home / "workspace"
    users_file, key_file = folder / "users.toml", folder / "secret_key"
    if users_file.exists() and key_file.exists():
        return LocalUsers(users_file, key_file)
    folder.mkdir(parents=True, exist_ok=True)
    raw = tomllib.loads(example.read_text(encoding="utf-8"))
    passwords: dict[str, str] = {}
    for user in raw["users"]:
        password = secrets.token_urlsafe(12)
        user["password_hash"] = hash_password(password)
        if user["id"] in DEMO_USERS:
            passwords[user["id"]] = password
    _write_private(users_file, _toml(raw))
    FileUserDirectory.load(users_file)  # what we wrote reads back
    _write_private(key_file, secrets.token_urlsafe(48) + "\n")
    return LocalUsers(users_file, key_file, passwords)


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)


def _toml(raw: Mapping[str, Any]) -> str:
    """The directory file's shape (a version and ``[[users]]`` of strings, lists and booleans) as TOML."""
    out = [f"version = {json.dumps(raw['version'])}", ""]
    for user in raw["users"]:
        out.append("[[users]]")
        for name, value in user.items():
            out.append(f"{name} = {_value(value)}")
        out.append("")
    return "\n".join(out)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
