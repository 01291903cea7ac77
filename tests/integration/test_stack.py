"""The local-stack supervisor against the real local servers (tansu and SecantusDB).

Every test uses its own home and free ports, so it never touches a stack the developer runs.
Only Kafka and MongoDB are started for real: the services are the other modules' business, and
a service that dies at start is played by a fake interpreter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from crs.stack import (
    INFRA,
    SERVICES,
    PortInUseError,
    StackConfig,
    StackStartError,
    running_pid,
    stack_down,
    stack_on_free_ports,
    stack_status,
    stack_up,
)

pytestmark = pytest.mark.integration


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def config(tmp_path: Path) -> Iterator[StackConfig]:
    """A stack of its own: a temporary home and free ports; whatever is left is stopped."""
    stack = stack_on_free_ports(home=tmp_path / "crs-home")
    yield stack
    # A failing assertion must not leave a broker or a database behind.
    asyncio.run(stack_down(stack))


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_infra_comes_up_once_reports_healthy_and_goes_down_without_leftovers(
    config: StackConfig,
) -> None:
    progress: list[str] = []

    started = await stack_up(config, include_services=False, on_progress=progress.append)

    assert [part.name for part in started] == list(INFRA)
    assert all(part.running and part.healthy for part in started)
    pids = {part.name: part.pid for part in started}
    for name, pid in pids.items():
        assert pid is not None
        assert config.pid_path(name).read_text().strip() == str(pid)
        assert config.log_path(name).is_file()
    assert any(message.startswith("topics:") for message in progress)

    status = {part.name: part for part in await stack_status(config)}
    assert status["kafka"].healthy
    assert status["mongodb"].healthy
    assert status["kafka"].address == f"127.0.0.1:{config.kafka_port}"
    assert not any(status[name].running for name in SERVICES)

    again = await stack_up(config, include_services=False)

    assert {part.name: part.pid for part in again} == pids
    assert all(part.healthy for part in again)

    stopped = await stack_down(config)

    assert stopped == ["mongodb", "kafka"]
    for name, pid in pids.items():
        assert pid is not None
        assert not _process_exists(pid), f"{name} (pid {pid}) is still alive"
        assert not config.pid_path(name).exists()
    after = await stack_status(config)
    assert not any(part.running or part.healthy or part.pid for part in after)
    assert await stack_down(config) == []


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_service_that_dies_at_start_is_named_with_its_log_and_infra_stays_up(
    config: StackConfig, tmp_path: Path
) -> None:
    fake_python = tmp_path / "fake-python"
    fake_python.write_text('#!/bin/sh\necho "boom: cannot start $2"\nexit 3\n')
    fake_python.chmod(0o755)
    infra = await stack_up(config, include_services=False)
    broken = dataclasses.replace(config, python=str(fake_python))

    with pytest.raises(StackStartError) as raised:
        await stack_up(broken, timeout=30)

    assert raised.value.part == "intake"
    assert "exited with code 3" in str(raised.value)
    assert "boom: cannot start services.intake" in str(raised.value)
    status = {part.name: part for part in await stack_status(config)}
    assert {name: status[name].pid for name in INFRA} == {p.name: p.pid for p in infra}
    assert all(status[name].healthy for name in INFRA)
    assert not any(config.pid_path(name).exists() for name in SERVICES)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_port_held_by_a_foreign_process_is_refused_before_anything_starts(
    config: StackConfig,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", config.mongo_port))
        squatter.listen()

        with pytest.raises(PortInUseError) as raised:
            await stack_up(config, include_services=False)

    assert raised.value.part == "mongodb"
    assert f"127.0.0.1:{config.mongo_port}" in str(raised.value)
    assert "CRS_MONGO_PORT" in str(raised.value)
    assert not any(config.pid_path(name).exists() for name in INFRA)


@pytest.mark.timeout(60)
def test_a_recycled_pid_is_never_signalled_and_its_stale_pid_file_is_dropped(
    config: StackConfig,
) -> None:
    # A live process that is not ours, named by the pid file as if its pid had been recycled.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        config.pid_path("kafka").parent.mkdir(parents=True)
        config.pid_path("kafka").write_text(f"{stranger.pid}\n")

        status = {part.name: part for part in asyncio.run(stack_status(config))}
        stopped = asyncio.run(stack_down(config))

        assert not status["kafka"].running
        assert status["kafka"].pid is None
        assert stopped == []
        assert stranger.poll() is None, "an unrelated process was signalled"
        assert not config.pid_path("kafka").exists()
    finally:
        stranger.send_signal(signal.SIGKILL)
        stranger.wait()


@pytest.mark.timeout(60)
def test_down_stops_the_replicas_started_beside_the_services(config: StackConfig) -> None:
    """A replica left running joins the next stack's consumer groups (found after a benchmark
    whose replicas outlived ``crs stack down`` and took half of every partition of the next run)."""
    # A process that runs as a replica of resolution does (``-m services.resolution``), idle.
    replica = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-m", "services.resolution"]
    )
    try:
        config.pid_path("resolution@2").parent.mkdir(parents=True)
        config.pid_path("resolution@2").write_text(f"{replica.pid}\n")

        stopped = asyncio.run(stack_down(config, timeout=10))

        assert stopped == ["resolution@2"]
        assert replica.wait(timeout=10) is not None
        assert not config.pid_path("resolution@2").exists()
    finally:
        if replica.poll() is None:
            replica.send_signal(signal.SIGKILL)
            replica.wait()


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_services_get_their_own_database_servers_which_status_lists_and_down_stops(
    tmp_path: Path,
) -> None:
    config = stack_on_free_ports(
        home=tmp_path / "crs-home",
        database_groups=(("audit", "workspace", "intake", "routing"), ("validation", "resolution")),
        database_servers=2,
    )
    try:
        started = await stack_up(config, include_services=False)
        assert [part.name for part in started] == ["kafka", "mongodb", "mongodb-2"]
        assert all(part.healthy for part in started)
        status = {part.name: part for part in await stack_status(config)}
        assert "(validation, resolution)" in status["mongodb-2"].address
        assert config.storage_path_of("mongodb-2").is_dir()
        second_port = config.database_ports[0]
        assert f":{second_port}/" in config.mongodb_uri_for("resolution")
        assert f":{config.mongo_port}/" in config.mongodb_uri  # the crs tool reads audit's server

        # Stopped whole even by a configuration that no longer names the second server.
        one = dataclasses.replace(config, database_groups=(tuple(SERVICES),), database_ports=())
        assert await stack_down(one) == ["mongodb", "mongodb-2", "kafka"]
    finally:
        await stack_down(config)


def _autogroup_niceness(pid: int) -> int | None:
    """The niceness of the process's autogroup (``/autogroup-N nice K``), None where there are none."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text(encoding="ascii")
    except OSError:
        return None
    return int(text.split()[-1])


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_database_server_only_the_views_use_runs_at_their_lower_priority(tmp_path: Path) -> None:
    config = stack_on_free_ports(
        home=tmp_path / "crs-home",
        database_groups=(("audit", "workspace"), ("intake", "validation", "routing", "resolution")),
        database_servers=2,
        view_niceness=7,
    )
    try:
        await stack_up(config, include_services=False)
        pids = {part: running_pid(config, part) for part in ("kafka", "mongodb", "mongodb-2")}
        niceness = {part: os.getpriority(os.PRIO_PROCESS, pid) for part, pid in pids.items() if pid}
        assert niceness == {"kafka": 0, "mongodb": 7, "mongodb-2": 0}
        # The threads the server started for its clients run at its niceness too.
        threads = psutil.Process(pids["mongodb"]).threads()
        assert {os.getpriority(os.PRIO_PROCESS, thread.id) for thread in threads} == {7}
        autogroups = {part: _autogroup_niceness(pid) for part, pid in pids.items() if pid}
        if None not in autogroups.values():  # where the kernel groups by session, that counts first
            assert autogroups == {"kafka": 0, "mongodb": 7, "mongodb-2": 0}
    finally:
        await stack_down(config)
