"""The user directory: who the people are, the roles they hold and the teams they work in.

Approvals (resolution) check an approver against it, and the workspace (issue 12) signs people in
with it. Every way of naming a person (user id, email, aliases: ``bob``, ``Bob.Smith``,
``bob.smith@corp.example``) leads, case-insensitively, to ONE canonical identity, so that
segregation of duties compares people, not spellings.

Plugging in the company's directory: implement :class:`UserDirectory` (one coroutine, ``find``)
over it (LDAP, SCIM, the identity provider's API...), expose a function that takes
:class:`DirectorySettings` and returns it, and name that function in ``CRS_USER_DIRECTORY_FACTORY``
(``package.module:function``). :func:`build_user_directory` is the one place every service gets
its directory from. Without it, the directory is a TOML file (:class:`FileUserDirectory`,
``CRS_USER_DIRECTORY_PATH``); the committed ``users.example.toml`` has demo users and no passwords.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = structlog.get_logger(__name__)

EXAMPLE_DIRECTORY_PATH = Path(__file__).with_name("users.example.toml")


class Role(StrEnum):
    """What a person may do. Approval policies name roles; the directory says who holds them."""

    AGENT = "agent"
    TEAM_LEAD = "team_lead"
    FINANCE_MANAGER = "finance_manager"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Team(StrEnum):
    """The teams people work in: routing's queues (``services/routing/rules.toml``)."""

    ACCOUNTS_RECEIVABLE = "accounts_receivable"
    CASH_APPLICATION = "cash_application"
    CREDIT_CONTROL = "credit_control"
    COLLECTIONS = "collections"
    MASTER_DATA = "master_data"
    CUSTOMER_SERVICE = "customer_service"


def name_key(name: str) -> str:
    """How names are compared: case-insensitively, surrounding blanks ignored."""
    return name.strip().casefold()


class DirectoryUser(BaseModel):
    """One person: a canonical id, how else they are named, their roles and teams."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, pattern=r"^\S+$", description="The canonical user id")
    display_name: str = Field(min_length=1)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    aliases: tuple[str, ...] = Field(default=(), description="Other names of the same person")
    roles: frozenset[Role] = frozenset()
    teams: frozenset[Team] = frozenset()
    # An argon2 hash (never a password): repr and logs leave it out.
    password_hash: str | None = Field(default=None, repr=False, pattern=r"^\$argon2(id|i|d)\$")
    disabled: bool = False

    @field_validator("aliases")
    @classmethod
    def _aliases_are_names(cls, aliases: tuple[str, ...]) -> tuple[str, ...]:
        if any(not alias.strip() for alias in aliases):
            raise ValueError("an alias must not be blank")
        return aliases

    @property
    def names(self) -> frozenset[str]:
        """Every name the person goes by, as compared (:func:`name_key`)."""
        return frozenset(name_key(name) for name in (self.id, self.email, *self.aliases) if name)

    def holds(self, role: str) -> bool:
        """Whether the person, if not disabled, holds ``role``."""
        return not self.disabled and role in {held.value for held in self.roles}


@runtime_checkable
class UserDirectory(Protocol):
    """Where people are looked up. The company's directory plugs in by implementing this."""

    async def find(self, name: str) -> DirectoryUser | None:
        """The one person ``name`` (user id, email or alias, any case) names; None if nobody."""


class DirectoryError(Exception):
    """The user directory cannot be used (the file is missing, not TOML, or inconsistent)."""


class _DirectoryFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1)
    users: tuple[DirectoryUser, ...]

    @model_validator(mode="after")
    def _one_person_per_name(self) -> Self:
        owner: dict[str, str] = {}
        for user in self.users:
            for name in user.names:
                other = owner.setdefault(name, user.id)
                if other != user.id:
                    raise ValueError(f"the name {name!r} belongs to both {other} and {user.id}")
        ids = [user.id for user in self.users]
        duplicates = sorted({user_id for user_id in ids if ids.count(user_id) > 1})
        if duplicates:
            raise ValueError(f"users listed twice: {', '.join(duplicates)}")
        return self


class FileUserDirectory:
    """The directory as a TOML file (``[[users]]`` tables), read and checked once at start."""

    def __init__(self, users: Iterable[DirectoryUser], *, version: str = "", source: str = "") -> None:
        self.version = version
        self.source = source
        self._users = tuple(users)
        self._by_name = {name: user for user in self._users for name in user.names}

    @classmethod
    def load(cls, path: Path) -> FileUserDirectory:
        """Read and check ``path``, or raise :class:`DirectoryError` saying what is wrong."""
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise DirectoryError(f"user directory {path}: cannot read it: {error}") from error
        except tomllib.TOMLDecodeError as error:
            raise DirectoryError(f"user directory {path}: not valid TOML: {error}") from error
        try:
            checked = _DirectoryFile.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(step) for step in issue['loc']) or 'file'}: {issue['msg']}"
                for issue in error.errors(include_url=False, include_input=False)
            )
            raise DirectoryError(f"user directory {path}: {problems}") from error
        return cls(checked.users, version=checked.version, source=str(path))

    @property
    def users(self) -> tuple[DirectoryUser, ...]:
        return self._users

    async def find(self, name: str) -> DirectoryUser | None:
        return self._by_name.get(name_key(name))


class DirectorySettings(BaseSettings):
    """Which directory the services use."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    user_directory_path: Path = Field(
        default=EXAMPLE_DIRECTORY_PATH,
        validation_alias="CRS_USER_DIRECTORY_PATH",
        description="The users file (TOML); the default is the example with demo users",
    )
    user_directory_factory: str | None = Field(
        default=None,
        validation_alias="CRS_USER_DIRECTORY_FACTORY",
        description="package.module:function returning the company's UserDirectory; overrides the file",
    )


def build_user_directory(settings: DirectorySettings | None = None) -> UserDirectory:
    """The directory every service uses: the company's (``CRS_USER_DIRECTORY_FACTORY``) or the file.

    Raises :class:`DirectoryError` if it cannot be had, so a service does not start without one.
    """
    settings = settings or DirectorySettings()
    if settings.user_directory_factory:
        factory = _import_factory(settings.user_directory_factory)
        directory = factory(settings)
        if not isinstance(directory, UserDirectory):
            raise DirectoryError(f"{settings.user_directory_factory} did not return a UserDirectory")
        return directory
    directory = FileUserDirectory.load(settings.user_directory_path)
    if settings.user_directory_path.resolve() == EXAMPLE_DIRECTORY_PATH.resolve():
        log.warning(
            "user_directory.example_in_use",
            detail="demo users only; point CRS_USER_DIRECTORY_PATH at the real directory",
        )
    return directory


def _import_factory(spec: str) -> Callable[[DirectorySettings], Any]:
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise DirectoryError(f"CRS_USER_DIRECTORY_FACTORY must be package.module:function, not {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as error:
        raise DirectoryError(f"CRS_USER_DIRECTORY_FACTORY {spec}: {error}") from error
    if not callable(factory):
        raise DirectoryError(f"CRS_USER_DIRECTORY_FACTORY {spec} is not callable")
    return factory  # type: ignore[no-any-return]


# --- Passwords ------------------------------------------------------------------------------------

_HASHER = PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``, for a user's ``password_hash``."""
    if not password:
        raise ValueError("a password must not be empty")
    return _HASHER.hash(password)


def verify_password(user: DirectoryUser, password: str) -> bool:
    """Whether ``password`` is the user's: False for a disabled user or one without a password."""
    if user.disabled or user.password_hash is None:
        return False
    try:
        return _HASHER.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(user: DirectoryUser) -> bool:
    """Whether the user's hash was made with weaker parameters than today's (rehash at sign-in)."""
    return user.password_hash is not None and _HASHER.check_needs_rehash(user.password_hash)


__all__: Sequence[str] = (
    "EXAMPLE_DIRECTORY_PATH",
    "DirectoryError",
    "DirectorySettings",
    "DirectoryUser",
    "FileUserDirectory",
    "Role",
    "Team",
    "UserDirectory",
    "build_user_directory",
    "hash_password",
    "name_key",
    "needs_rehash",
    "verify_password",
)
