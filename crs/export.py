"""`crs audit export --from --to`: audit's entries recorded in a time window, for auditors, as JSON
Lines and CSV.

Both files hold the same entries in the global chain's order, each with its place in both chains
and its hash, so an auditor can check the chain outside our systems (`services/audit/chain.py`
says how an entry's hash is computed). The window is on ``recorded_at`` (when audit stored the
entry), from inclusive, to exclusive.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crs.progress import Progress
from services.audit.reader import AuditReader

CSV_COLUMNS = (
    "global_sequence",
    "sequence",
    "request_id",
    "customer_id",
    "topic",
    "partition",
    "offset",
    "key",
    "event_type",
    "status",
    "published_at",
    "recorded_at",
    "entry_hash",
    "text",
)
JSON_COLUMNS = (*CSV_COLUMNS[:-1], "previous_hash", "global_previous_hash", "text")


@dataclass(frozen=True)
class ExportResult:
    entries: int
    jsonl: Path
    csv: Path


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or date-time; one without a zone is UTC."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


def export_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as exported: the JSON columns, datetimes as RFC 3339 UTC with microseconds."""
    return {column: _iso(entry.get(column)) for column in JSON_COLUMNS}


def file_names(start: datetime, end: datetime) -> tuple[str, str]:
    """``audit-<from>-<to>.jsonl`` and ``.csv``."""
    stem = f"audit-{_stamp(start)}-{_stamp(end)}"
    return f"{stem}.jsonl", f"{stem}.csv"


async def export_audit(
    reader: AuditReader,
    *,
    start: datetime,
    end: datetime,
    out: Path,
    progress: bool | None = None,
) -> ExportResult:
    """Write the entries recorded in [start, end) to JSON Lines and CSV under ``out``."""
    if end <= start:
        raise ValueError("--to must be after --from")
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    jsonl_name, csv_name = file_names(start, end)
    written = 0
    counter = Progress(
        "export", total=await reader.count_recorded_between(start, end), unit="entries", enabled=progress
    )
    with (
        (out / jsonl_name).open("w", encoding="utf-8") as jsonl,
        (out / csv_name).open("w", encoding="utf-8", newline="") as table,
    ):
        writer = csv.DictWriter(table, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        async for entry in reader.recorded_between(start, end):
            row = export_row(entry)
            jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")
            writer.writerow({name: "" if row[name] is None else row[name] for name in CSV_COLUMNS})
            written += 1
            counter.advance()
    counter.finish()
    return ExportResult(written, out / jsonl_name, out / csv_name)
