"""The kills half of the fault suite, small: services SIGKILLed during a stream of disputes.

`crs chaos kills` on a stack of its own (the database server is killed too, so it cannot share
the test session's): 150 disputes, a random service killed every 3 s, the database server killed
and restarted once, resolution run twice for a while. Nothing may be lost, no request may get two
resolutions, and audit's chains must verify. Repeats of a resolution id are what at-least-once
publishing allows (the ERP's idempotency key absorbs them); they are printed, and must be rare.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crs.chaos_kills import KillsPlan, chaos_stack, run_kills
from crs.stack import replica_part, stack_down, stop_part

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1_800)]


async def test_killed_services_lose_no_request_and_post_none_twice(tmp_path: Path) -> None:
    plan = KillsPlan(
        requests=150, rate=5.0, kill_every=3.0, session_timeout_ms=3_000, settle_timeout=900.0, seed=7
    )
    config = chaos_stack(tmp_path / "chaos", session_timeout_ms=plan.session_timeout_ms)
    try:
        report = await run_kills(config, plan, say=print)
    finally:
        await stop_part(config, replica_part(plan.replica_service, "2"))
        await stack_down(config)
    print(report.format())

    assert sum(report.timeline.kills.values()) >= 3
    assert report.timeline.database_restarts == 1
    assert report.sent == 150
    assert report.lost == []
    assert report.two_resolutions == []
    assert report.resolved == 150
    assert report.repeated_records <= report.sent // 10
    assert report.audit_intact, report.audit_lines
