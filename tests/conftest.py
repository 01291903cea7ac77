"""Where the tests find a real Kafka-protocol broker and a real MongoDB-protocol server.

In this order: explicit ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` in the environment win;
else testcontainers' Kafka and MongoDB when a Docker daemon answers; else the local servers
(tansu and SecantusDB) started on free ports for the session and stopped after it.

The Docker path runs MongoDB as a single-member replica set (transactions need one). It has never
run on the development machines, which have no Docker engine; ``tests/unit/test_test_servers.py``
checks only how the container would be started.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from crs.stack import stack_down, stack_on_free_ports, stack_up
from tests.support import Servers

MONGO_IMAGE = "mongo:7"
REPLICA_SET = "rs0"
MONGO_PORT = 27017
# No MONGO_INITDB_ROOT_* user: with --replSet, authentication would also need a key file.
MONGO_COMMAND = ("--replSet", REPLICA_SET, "--bind_ip_all")
# Run inside the container: initiate the one-member set once, then say whether this member is the
# writable primary yet (an election takes a moment after rs.initiate()).
INITIATE_REPLICA_SET = (
    f"try {{ rs.status(); }} catch (e) {{ rs.initiate({{_id: '{REPLICA_SET}', "
    f"members: [{{_id: 0, host: 'localhost:{MONGO_PORT}'}}]}}); }} "
    "quit(db.hello().isWritablePrimary ? 0 : 1);"
)


def mongo_replica_set_container(image: str = MONGO_IMAGE) -> Any:
    """A ``mongo`` container that runs as a single-member replica set, not started yet.

    The services use multi-document transactions, which MongoDB refuses on a standalone
    ``mongod``. testcontainers' ``MongoDbContainer`` starts a standalone server with a root user,
    and a replica set with authentication would also need a key file; so this is a plain container
    with ``--replSet`` and no authentication (a throw-away server for tests only).
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    return (
        DockerContainer(image)
        .with_command(list(MONGO_COMMAND))
        .with_exposed_ports(MONGO_PORT)
        .waiting_for(LogMessageWaitStrategy(re.compile(r"waiting for connections", re.IGNORECASE)))
    )


def replica_set_uri(host: str, port: int) -> str:
    """How the tests reach the container's set from outside: directly, since the member is
    advertised as ``localhost:27017`` inside the container, which the host may not resolve to it."""
    return f"mongodb://{host}:{port}/?directConnection=true"


def initiate_replica_set(container: Any, *, timeout: float = 60.0) -> None:
    """``rs.initiate()`` the container's set and wait until its member is primary."""
    deadline = time.monotonic() + timeout
    while True:
        result = container.exec(["mongosh", "--quiet", "--eval", INITIATE_REPLICA_SET])
        if result.exit_code == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"MongoDB replica set not primary within {timeout}s: {result.output!r}")
        time.sleep(0.5)


@contextmanager
def mongo_replica_set(image: str = MONGO_IMAGE) -> Iterator[str]:
    """Start a single-member replica set in Docker and yield its connection string.

    NOT RUN on the development machines (no Docker engine there): written from testcontainers'
    4.15 source (``DockerContainer``, ``LogMessageWaitStrategy``, ``exec``) and the ``mongo``
    image's documentation.
    """
    with mongo_replica_set_container(image) as container:
        initiate_replica_set(container)
        yield replica_set_uri(container.get_container_host_ip(), int(container.get_exposed_port(MONGO_PORT)))


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # noqa: BLE001 - any failure means no usable daemon
        return False
    return True


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The broker and database server every integration and end-to-end test uses."""
    kafka, mongodb = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URI")
    if kafka and mongodb:
        yield Servers(bootstrap_servers=kafka, mongodb_uri=mongodb, local_stack=None)
        return
    if os.environ.get("CRS_TESTS_USE_DOCKER", "auto") != "never" and _docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka_container, mongo_replica_set() as mongodb_uri:
            yield Servers(
                bootstrap_servers=kafka_container.get_bootstrap_server(),
                mongodb_uri=mongodb_uri,
                local_stack=None,
            )
        return
    config = stack_on_free_ports(home=Path(tmp_path_factory.mktemp("crs-stack")))
    asyncio.run(stack_up(config, include_services=False, timeout=90))
    try:
        yield Servers(
            bootstrap_servers=config.bootstrap_servers, mongodb_uri=config.mongodb_uri, local_stack=config
        )
    finally:
        asyncio.run(stack_down(config))
