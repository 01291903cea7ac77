"""The local stack's database servers: which services share one, on which port, as which part."""

from __future__ import annotations

from pathlib import Path

import pytest

from crs.stack import (
    MEASURED_DATABASE_GROUPS,
    MEASURED_VIEW_NICENESS,
    SERVICES,
    StackConfig,
    _launch,
    find_free_ports,
    format_database_groups,
    parse_database_groups,
    stack_on_free_ports,
)


def test_the_groups_read_from_the_environment_put_each_service_on_its_server() -> None:
    config = StackConfig.from_env(
        environ={
            "CRS_MONGO_PORT": "27100",
            "CRS_DATABASE_SERVERS": "audit,workspace/intake/validation,resolution/routing",
        }
    )
    servers = {server.part: (server.port, server.services) for server in config.database_servers}
    assert servers == {
        "mongodb": (27100, ("audit", "workspace")),
        "mongodb-2": (27101, ("intake",)),
        "mongodb-3": (27102, ("validation", "resolution")),
        "mongodb-4": (27103, ("routing",)),
    }
    assert config.mongodb_uri_for("resolution").startswith("mongodb://127.0.0.1:27102/?")
    assert config.parts[:5] == ("kafka", "mongodb", "mongodb-2", "mongodb-3", "mongodb-4")


def test_the_local_stack_defaults_to_the_measured_grouping_and_code_to_one_server() -> None:
    assert StackConfig.from_env(environ={}).database_groups == MEASURED_DATABASE_GROUPS
    assert StackConfig().database_groups == (SERVICES,)
    assert StackConfig.from_env(environ={"CRS_DATABASE_SERVERS": "one"}).database_parts == ("mongodb",)


def test_a_pool_size_goes_into_the_services_uris_not_the_tools() -> None:
    config = StackConfig.from_env(environ={"CRS_DATABASE_POOL_SIZE": "3"})
    assert config.mongodb_uri_for("intake").endswith("&maxPoolSize=3")
    assert "maxPoolSize" not in config.mongodb_uri


@pytest.mark.parametrize(
    ("groups", "said"),
    [
        ("intake/validation", "every service once"),
        ("intake,intake/validation,routing,resolution,audit,workspace", "every service once"),
    ],
)
def test_a_grouping_that_misses_or_repeats_a_service_is_refused(groups: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        StackConfig(database_groups=parse_database_groups(groups))


def test_groups_read_back_as_written() -> None:
    text = "audit,workspace/intake/validation,resolution/routing"
    assert format_database_groups(parse_database_groups(text)) == text


def test_every_database_server_acknowledges_only_commits_on_disk_whatever_options_are_added() -> None:
    config = StackConfig.from_env(
        environ={
            "CRS_DATABASE_SERVERS": "audit,workspace/intake,validation,routing,resolution",
            "CRS_DATABASE_OPTIONS": "--cache-size 256M",
        }
    )
    for part in config.database_parts:
        argv = _launch(config, part).argv
        assert "--sync-on-commit" in argv, argv
        assert argv[-2:] == ("--cache-size", "256M")


def test_a_stack_on_free_ports_gets_distinct_ports_for_every_part(tmp_path: Path) -> None:
    # A CI run once drew the same port twice for one stack, when each port was asked for alone.
    groups = (("audit", "workspace"), ("intake", "routing"), ("validation", "resolution"))
    config = stack_on_free_ports(tmp_path, database_servers=3, database_groups=groups)
    ports = [
        config.kafka_port,
        *(server.port for server in config.database_servers),
        *config.health_ports.values(),
    ]
    assert len(ports) == 2 + 2 + len(SERVICES)
    assert len(set(ports)) == len(ports)
    assert [server.services for server in config.database_servers] == list(groups)
    assert len(set(find_free_ports(200))) == 200


def test_the_views_and_a_database_server_only_they_use_run_at_the_view_niceness() -> None:
    config = StackConfig.from_env(environ={})
    assert config.view_niceness == MEASURED_VIEW_NICENESS > 0
    niceness = {part: config.niceness_of(part) for part in (*config.parts, "audit@b", "intake@b")}
    assert niceness == {
        "kafka": 0,
        "mongodb": MEASURED_VIEW_NICENESS,  # audit's and the workspace's server
        "mongodb-2": 0,
        "mongodb-3": 0,
        "mongodb-4": 0,
        "intake": 0,
        "validation": 0,
        "routing": 0,
        "resolution": 0,
        "audit": MEASURED_VIEW_NICENESS,
        "workspace": MEASURED_VIEW_NICENESS,
        "audit@b": MEASURED_VIEW_NICENESS,
        "intake@b": 0,
    }
    assert _launch(config, "workspace").niceness == MEASURED_VIEW_NICENESS
    assert _launch(config, "mongodb-3").niceness == 0
    # A server the request path shares with the views runs at the request path's priority.
    shared = StackConfig.from_env(environ={"CRS_DATABASE_SERVERS": "one"})
    assert shared.niceness_of("mongodb") == 0
    assert shared.niceness_of("audit") == MEASURED_VIEW_NICENESS


@pytest.mark.parametrize(
    ("text", "niceness"), [("0", 0), ("19", 19), (" 5 ", 5), ("", MEASURED_VIEW_NICENESS)]
)
def test_the_view_niceness_is_read_from_the_environment(text: str, niceness: int) -> None:
    config = StackConfig.from_env(environ={"CRS_VIEW_NICENESS": text})
    assert config.view_niceness == niceness
    assert config.niceness_of("audit") == niceness


@pytest.mark.parametrize("text", ["20", "-1", "low"])
def test_a_view_niceness_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"CRS_VIEW_NICENESS|view_niceness"):
        StackConfig.from_env(environ={"CRS_VIEW_NICENESS": text})


def test_a_stack_built_in_code_runs_everything_at_one_priority() -> None:
    assert {StackConfig().niceness_of(part) for part in StackConfig().parts} == {0}
