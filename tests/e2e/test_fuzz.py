"""`crs chaos fuzz`, small: bad messages on every inbound topic of a running local stack.

Every bad message dead-lettered (once) with a reason by every service that reads its topic, every
valid one on the same keys processed, no partition stalled, no service restarted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crs.chaos_fuzz import INBOUND_TOPICS, FuzzTarget, run_fuzz
from crs.stack import StackConfig, stack_down, stack_on_free_ports, stack_up

pytestmark = pytest.mark.e2e

PER_TOPIC = 40


@pytest.fixture
async def local_stack(tmp_path: Path) -> AsyncIterator[StackConfig]:
    config = stack_on_free_ports(home=tmp_path / "crs-home")
    try:
        await stack_up(config, timeout=120)
        yield config
    finally:
        await stack_down(config)


@pytest.mark.timeout(600)
async def test_every_bad_message_is_dead_lettered_and_every_valid_one_processed(
    local_stack: StackConfig,
) -> None:
    report = await run_fuzz(FuzzTarget.of(local_stack), per_topic=PER_TOPIC, seed=11, timeout=240)
    print(report.render())
    assert [figures.topic for figures in report.topics] == list(INBOUND_TOPICS)
    for figures in report.topics:
        assert figures.bad_sent == PER_TOPIC
        assert figures.dead_lettered == figures.bad_sent, figures.not_dead_lettered
        assert figures.dead_lettered_twice == 0
        assert figures.valid_sent == PER_TOPIC // 4
        assert figures.processed == figures.valid_sent, figures.not_processed
        assert sum(figures.reasons.values()) >= figures.bad_sent
    crm = report.topics[0]
    assert crm.rejected > 0  # senders of unreadable cases were told, where they could be identified
    assert report.stalled == []
    assert report.restarts == []
    assert report.pids_checked
    assert report.ok
