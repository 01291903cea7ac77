"""The local stack's database servers: which services share one, on which port, as which part."""

from __future__ import annotations

from pathlib import Path

import pytest

from crs.stack import (
    MEASURED_DATABASE_GROUPS,
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
