"""The user directory: one identity per person whatever the spelling, roles, teams, passwords."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.routing.rules import load_rules
from shared.directory import (
    EXAMPLE_DIRECTORY_PATH,
    DirectoryError,
    DirectorySettings,
    DirectoryUser,
    FileUserDirectory,
    Role,
    Team,
    UserDirectory,
    build_user_directory,
    hash_password,
    needs_rehash,
    verify_password,
)

EXAMPLE = FileUserDirectory.load(EXAMPLE_DIRECTORY_PATH)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "users.toml"
    path.write_text('version = "test"\n' + text)
    return path


async def test_every_name_of_a_person_leads_to_one_identity_in_any_case() -> None:
    names = ["bob", "Bob.Smith", " BOB.SMITH@crs.example ", "bob.smith"]
    found = [await EXAMPLE.find(name) for name in names]
    assert {user.id for user in found if user is not None} == {"bob.smith"}
    assert None not in found
    assert await EXAMPLE.find("nobody") is None


def test_the_example_has_one_demo_user_per_role_and_no_passwords() -> None:
    for role in Role:
        assert any(role in user.roles and len(user.roles) == 1 for user in EXAMPLE.users), role
    assert all(user.password_hash is None for user in EXAMPLE.users)
    assert (
        "password_hash" not in EXAMPLE_DIRECTORY_PATH.read_text().replace("# ", "").split("[[users]]", 1)[1]
    )


def test_teams_are_routings_queues() -> None:
    assert {team.value for team in Team} == set(load_rules().queues)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (
            '[[users]]\nid = "a"\ndisplay_name = "A"\naliases = ["x"]\n'
            '[[users]]\nid = "b"\ndisplay_name = "B"\naliases = ["X"]\n',
            "the name 'x' belongs to both a and b",
        ),
        (
            '[[users]]\nid = "a"\ndisplay_name = "A"\n[[users]]\nid = "a"\ndisplay_name = "A again"\n',
            "users listed twice: a",
        ),
        ('[[users]]\nid = "a"\ndisplay_name = "A"\nroles = ["ceo"]\n', "users.0.roles"),
        ('[[users]]\nid = "a"\ndisplay_name = "A"\nteams = ["treasury"]\n', "users.0.teams"),
        ('[[users]]\nid = "a"\ndisplay_name = "A"\nrole = ["agent"]\n', "users.0.role"),
        ('[[users]]\nid = "a"\ndisplay_name = "A"\npassword_hash = "secret"\n', "users.0.password_hash"),
        ('[[users]]\nid = "a b"\ndisplay_name = "A"\n', "users.0.id"),
        ("[[users]\n", "not valid TOML"),
    ],
)
def test_a_bad_directory_file_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DirectoryError) as raised:
        build_user_directory(DirectorySettings(user_directory_path=path))
    assert str(path) in str(raised.value)
    assert complaint in str(raised.value)


def test_a_missing_directory_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="cannot read it"):
        FileUserDirectory.load(tmp_path / "absent.toml")


def test_passwords_are_argon2_hashes_verified_never_shown() -> None:
    hashed = hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    user = DirectoryUser(id="ada", display_name="Ada", roles=frozenset({Role.AGENT}), password_hash=hashed)
    assert verify_password(user, "correct horse battery staple")
    assert not verify_password(user, "Correct horse battery staple")
    assert not verify_password(user.model_copy(update={"disabled": True}), "correct horse battery staple")
    assert not verify_password(user.model_copy(update={"password_hash": None}), "")
    assert not needs_rehash(user)
    assert hashed not in repr(user)
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_a_disabled_user_holds_no_role() -> None:
    user = DirectoryUser(id="x", display_name="X", roles=frozenset({Role.TEAM_LEAD}), disabled=True)
    assert not user.holds("team_lead")
    assert user.model_copy(update={"disabled": False}).holds("team_lead")


class CompanyDirectory:
    """What a company's directory adapter looks like (here: one fixed person)."""

    async def find(self, name: str) -> DirectoryUser | None:
        return DirectoryUser(id="c.lead", display_name="C", roles=frozenset({Role.TEAM_LEAD}))


def company_directory(settings: DirectorySettings) -> UserDirectory:
    return CompanyDirectory()


async def test_the_companys_directory_plugs_in_by_a_factory_named_in_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRS_USER_DIRECTORY_FACTORY", f"{__name__}:company_directory")
    directory = build_user_directory()
    assert isinstance(directory, CompanyDirectory)
    found = await directory.find("anyone")
    assert found is not None
    assert found.id == "c.lead"
    monkeypatch.setenv("CRS_USER_DIRECTORY_FACTORY", f"{__name__}:nothing_here")
    with pytest.raises(DirectoryError, match="nothing_here"):
        build_user_directory()
