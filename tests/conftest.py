"""Where the tests find a real Kafka-protocol broker and a real MongoDB-protocol server.

In this order: explicit ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` in the environment win;
else testcontainers' Kafka and MongoDB when a Docker daemon answers; else the local servers
(tansu and SecantusDB) started on free ports for the session and stopped after it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crs.stack import SERVICES, StackConfig, find_free_port, stack_down, stack_up
from tests.support import Servers


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
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

        with KafkaContainer().with_kraft() as kafka_container, MongoDbContainer("mongo:7") as mongo_container:
            yield Servers(
                bootstrap_servers=kafka_container.get_bootstrap_server(),
                mongodb_uri=mongo_container.get_connection_url(),
                local_stack=None,
            )
        return
    config = StackConfig(
        home=Path(tmp_path_factory.mktemp("crs-stack")),
        kafka_port=find_free_port(),
        mongo_port=find_free_port(),
        health_ports={name: find_free_port() for name in SERVICES},
    )
    asyncio.run(stack_up(config, include_services=False, timeout=90))
    try:
        yield Servers(
            bootstrap_servers=config.bootstrap_servers, mongodb_uri=config.mongodb_uri, local_stack=config
        )
    finally:
        asyncio.run(stack_down(config))
