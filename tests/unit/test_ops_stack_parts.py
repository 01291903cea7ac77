"""Small parts of the stack's operation: the log pipe rotates, the drain reads the services'
backlog from their metrics, the ERP stand-in answers by resolution id."""

from __future__ import annotations

import os
from pathlib import Path

from crs.drain import Backlog, backlog_of
from crs.erp import ack_for, answer_for
from crs.logpipe import copy


def test_the_log_pipe_rotates_at_its_limit_and_keeps_its_backups(tmp_path: Path) -> None:
    log = tmp_path / "intake.log"
    read, write = os.pipe()
    os.write(write, b"x" * 2500)
    os.close(write)
    copy(read, log, max_bytes=1000, backups=2)
    os.close(read)
    sizes = {path.name: path.stat().st_size for path in tmp_path.iterdir()}
    assert sizes == {"intake.log": 500, "intake.log.1": 1000, "intake.log.2": 1000}


def test_the_backlog_is_read_from_the_services_metrics() -> None:
    text = "\n".join(
        [
            "# HELP crs_consumer_lag lag",
            "# TYPE crs_consumer_lag gauge",
            'crs_consumer_lag{group="g",partition="0",service="validation",topic="t"} 3.0',
            'crs_consumer_lag{group="g",partition="1",service="validation",topic="t"} 4.0',
            "# HELP crs_outbox_unpublished outbox",
            "# TYPE crs_outbox_unpublished gauge",
            'crs_outbox_unpublished{service="validation"} 2.0',
            "",
        ]
    )
    assert backlog_of(text) == (7, 2)
    backlog = Backlog(lag={"validation": 7, "audit": 0}, outbox={"validation": 2}, silent=("routing",))
    assert backlog.total == 9
    assert backlog.describe() == (
        "7 records not consumed (validation 7), 2 events not published (validation 2), "
        "no metrics from routing"
    )
    assert Backlog().describe() == "nothing waiting"


def test_the_erp_answers_a_resolution_by_its_id_alone() -> None:
    assert answer_for("RES-1", failure_share=0.0) == answer_for("RES-1", failure_share=0.0)
    assert answer_for("RES-1", failure_share=0.0).status == "posted"
    assert answer_for("RES-1", failure_share=1.0).status == "failed"
    shares = [answer_for(f"RES-{n}", failure_share=0.3).status for n in range(1000)]
    assert 200 < shares.count("failed") < 400
    from datetime import UTC, datetime

    ack = ack_for(
        {"resolution_id": "RES-1", "request_id": "REQ-1"},
        failure_share=0.0,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert ack is not None
    assert (ack["status"], ack["posted_at"]) == ("posted", "2026-01-01T00:00:00Z")
    assert ack_for({"request_id": "REQ-1"}, failure_share=0.0, now=datetime(2026, 1, 1, tzinfo=UTC)) is None
