"""The Docker path of the test servers (tests/conftest.py), checked without a Docker engine.

No Docker engine runs on the development machines (testcontainers' containers connect to one as
soon as they are built), so the containers are never created here; what can be checked is how they
would be started: MongoDB as a replica set (the services' transactions need one), reached directly.
"""

from __future__ import annotations

from tests.conftest import INITIATE_REPLICA_SET, MONGO_COMMAND, replica_set_uri


def test_mongodb_in_docker_starts_as_a_single_member_replica_set() -> None:
    assert MONGO_COMMAND == ("--replSet", "rs0", "--bind_ip_all")


def test_the_replica_set_is_initiated_with_a_member_the_container_reaches_and_reached_directly() -> None:
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]})" in INITIATE_REPLICA_SET
    assert "isWritablePrimary" in INITIATE_REPLICA_SET
    assert replica_set_uri("127.0.0.1", 32768) == "mongodb://127.0.0.1:32768/?directConnection=true"
