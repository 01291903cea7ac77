"""The team lead's dashboard: figures over a period, as tables, CSV and server-rendered SVG. Pure.

How things are counted (the page says it too):

- **Backlog**: open requests now, by queue and age band (since received: <1 d, 1-3 d, 3-7 d, >7 d).
- **SLA attainment**: requests resolved (``resolved`` or ``closed``) in the period, by queue: met
  when resolved within their SLA in business hours (paused while on hold), breached otherwise or
  when routing flagged ``sla_breached``; and open requests past their due time now.
- **Time to resolution**: business hours from received to the first ``resolved``/``closed``, of the
  requests resolved in the period, by type: median and 90th percentile (nearest rank).
- **Amount in dispute**: the disputed amounts of open requests, per currency.
- **Top reasons**: reason codes of the statuses of requests received in the period, each once per request.
- **Customers who dispute most**: billing disputes and invoice corrections received in the period.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from services.workspace.domain import parse_time, sla_now
from shared.business_time import BusinessCalendar, working_time_between

AGE_BANDS: tuple[tuple[str, timedelta], ...] = (
    ("<1d", timedelta(days=1)),
    ("1-3d", timedelta(days=3)),
    ("3-7d", timedelta(days=7)),
    (">7d", timedelta.max),
)
DISPUTE_TYPES = frozenset({"billing_dispute", "invoice_correction"})
TABLES = ("backlog", "sla", "resolution_times", "amount_in_dispute", "reasons", "customers")


@dataclass(frozen=True)
class Table:
    """One table of the dashboard: its title, column names and rows (all text, ready for CSV)."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]] = field(default_factory=list)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()


@dataclass(frozen=True)
class Figures:
    start: datetime
    end: datetime
    now: datetime
    tables: dict[str, Table]
    charts: dict[str, str]


def age_band(age: timedelta) -> str:
    return next(name for name, below in AGE_BANDS if age < below)


def nearest_rank(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.5: median) of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:.1f}"


def compute(
    summaries: Iterable[Mapping[str, Any]],
    *,
    calendar: BusinessCalendar,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Figures:
    """Every table and chart of the dashboard for the requests ``summaries`` (with ``_statuses``)."""
    tally = _Tally(calendar=calendar, start=start, end=end, now=now)
    for summary in summaries:
        tally.count(summary)
    tables = {
        "backlog": _backlog_table(tally),
        "sla": _sla_table(tally),
        "resolution_times": _resolution_times_table(tally),
        "amount_in_dispute": _amount_in_dispute_table(tally),
        "reasons": _reasons_table(tally),
        "customers": _customers_table(tally),
    }
    return Figures(start, end, now, tables, _charts(tally))


@dataclass
class _Tally:
    """The counts the tables are made of, gathered in one pass over the requests."""

    calendar: BusinessCalendar
    start: datetime
    end: datetime
    now: datetime
    backlog: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    sla: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    durations: dict[str, list[timedelta]] = field(default_factory=lambda: defaultdict(list))
    in_dispute: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    in_dispute_count: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, summary: Mapping[str, Any]) -> None:
        created = parse_time(summary.get("created_at"))
        queue = summary.get("queue") or "(not routed)"
        if summary.get("open"):
            self._count_open(summary, queue, created)
        self._count_sla_and_duration(summary, queue, created)
        if created is not None and self.start <= created < self.end:
            self._count_received(summary)

    def _count_open(self, summary: Mapping[str, Any], queue: str, created: datetime | None) -> None:
        if created is not None:
            self.backlog[queue][age_band(self.now - created)] += 1
        disputed = summary.get("disputed_amount")
        if disputed:
            self.in_dispute[disputed["currency"]] += Decimal(str(disputed["amount"]))
            self.in_dispute_count[disputed["currency"]] += 1

    def _count_sla_and_duration(
        self, summary: Mapping[str, Any], queue: str, created: datetime | None
    ) -> None:
        resolved = parse_time(summary.get("resolved_at"))
        clock = sla_now(
            self.calendar,
            routed_at=parse_time(summary.get("routed_at")),
            sla_due_at=parse_time(summary.get("sla_due_at")),
            statuses=summary.get("_statuses") or [],
            now=self.now,
        )
        if resolved is not None and self.start <= resolved < self.end:
            if clock is not None:
                self.sla[queue]["breached" if clock.breached else "met"] += 1
            if created is not None:
                self.durations[summary.get("request_type") or "unclassified"].append(
                    working_time_between(self.calendar, created, resolved)
                )
        elif summary.get("open") and clock is not None and clock.breached:
            self.sla[queue]["open_overdue"] += 1

    def _count_received(self, summary: Mapping[str, Any]) -> None:
        for reason in summary.get("reasons") or ():
            self.reasons[reason] += 1
        if summary.get("request_type") in DISPUTE_TYPES and summary.get("customer_id"):
            entry = self.customers.setdefault(
                summary["customer_id"],
                {
                    "name": summary.get("customer_name") or "",
                    "disputes": 0,
                    "open": 0,
                    "amounts": defaultdict(Decimal),
                },
            )
            entry["disputes"] += 1
            entry["open"] += 1 if summary.get("open") else 0
            disputed = summary.get("disputed_amount")
            if disputed:
                entry["amounts"][disputed["currency"]] += Decimal(str(disputed["amount"]))


def _backlog_table(tally: _Tally) -> Table:
    return Table(
        "backlog",
        "Backlog by queue and age",
        ("queue", *(band for band, _ in AGE_BANDS), "total"),
        [
            (queue, *(str(bands[band]) for band, _ in AGE_BANDS), str(sum(bands.values())))
            for queue, bands in sorted(tally.backlog.items())
        ],
    )


def _sla_table(tally: _Tally) -> Table:
    return Table(
        "sla",
        "SLA attainment in business hours (resolved in the period)",
        ("queue", "met", "breached", "attainment_percent", "open_overdue_now"),
        [
            (
                queue,
                str(counts["met"]),
                str(counts["breached"]),
                _percent(counts["met"], counts["met"] + counts["breached"]),
                str(counts["open_overdue"]),
            )
            for queue, counts in sorted(tally.sla.items())
        ],
    )


def _resolution_times_table(tally: _Tally) -> Table:
    return Table(
        "resolution_times",
        "Time to resolution in business hours (resolved in the period)",
        ("type", "resolved", "median_hours", "p90_hours"),
        [
            (
                kind,
                str(len(spans)),
                hours(timedelta(seconds=nearest_rank([s.total_seconds() for s in spans], 0.5))),
                hours(timedelta(seconds=nearest_rank([s.total_seconds() for s in spans], 0.9))),
            )
            for kind, spans in sorted(tally.durations.items())
        ],
    )


def _amount_in_dispute_table(tally: _Tally) -> Table:
    return Table(
        "amount_in_dispute",
        "Amount in dispute (open requests)",
        ("currency", "amount", "requests"),
        [
            (currency, f"{amount:.2f}", str(tally.in_dispute_count[currency]))
            for currency, amount in sorted(tally.in_dispute.items())
        ],
    )


def _reasons_table(tally: _Tally) -> Table:
    return Table(
        "reasons",
        "Top reasons (requests received in the period)",
        ("reason", "requests"),
        [
            (reason, str(count))
            for reason, count in sorted(tally.reasons.items(), key=lambda item: (-item[1], item[0]))
        ][:15],
    )


def _customers_table(tally: _Tally) -> Table:
    by_disputes = sorted(tally.customers.items(), key=lambda item: (-item[1]["disputes"], item[0]))
    return Table(
        "customers",
        "Customers who dispute most (received in the period)",
        ("customer", "name", "disputes", "open", "disputed"),
        [
            (
                customer,
                entry["name"],
                str(entry["disputes"]),
                str(entry["open"]),
                "; ".join(
                    f"{amount:.2f} {currency}" for currency, amount in sorted(entry["amounts"].items())
                ),
            )
            for customer, entry in by_disputes
        ][:15],
    )


def _charts(tally: _Tally) -> dict[str, str]:
    return {
        "backlog": stacked_bars(
            "Open requests by queue and age",
            [
                (queue, [bands[band] for band, _ in AGE_BANDS])
                for queue, bands in sorted(tally.backlog.items())
            ],
            [band for band, _ in AGE_BANDS],
        ),
        "sla": stacked_bars(
            "SLA met and breached by queue",
            [(queue, [counts["met"], counts["breached"]]) for queue, counts in sorted(tally.sla.items())],
            ["met", "breached"],
            colours=("#2f7d4f", "#b3261e"),
        ),
        "resolution_times": stacked_bars(
            "Median time to resolution by type (business hours)",
            [
                (kind, [round(nearest_rank([s.total_seconds() for s in spans], 0.5) / 3600, 1)])
                for kind, spans in sorted(tally.durations.items())
            ],
            ["median hours"],
        ),
    }


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else ""


_PALETTE = ("#1b6ca8", "#4f9d69", "#e0a458", "#c0504d", "#7a5195")


def stacked_bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[str],
    colours: Sequence[str] = _PALETTE,
) -> str:
    """A horizontal stacked bar chart as SVG text: one bar per row, one colour per series, a legend."""
    label_width, bar_width, row_height = 170, 260, 26
    height = 40 + row_height * max(len(rows), 1) + 30
    largest = max((sum(values) for _, values in rows), default=0) or 1
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {label_width + bar_width + 60} {height}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="0" y="18" class="chart-title">{escape(title)}</text>',
    ]
    if not rows:
        parts.append('<text x="0" y="52">No requests in this view.</text>')
    for index, (label, values) in enumerate(rows):
        y = 32 + index * row_height
        parts.append(f'<text x="0" y="{y + 15}">{escape(label)}</text>')
        x = float(label_width)
        for number, value in enumerate(values):
            width = bar_width * value / largest
            if width > 0:
                colour = colours[number % len(colours)]
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{row_height - 8}" '
                    f'fill="{colour}">'
                    f"<title>{escape(label)}: {escape(series[number])} {value:g}</title></rect>"
                )
            x += width
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{sum(values):g}</text>')
    legend_y = height - 12
    for number, name in enumerate(series):
        x = number * 120
        parts.append(
            f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" '
            f'fill="{colours[number % len(colours)]}"/>'
        )
        parts.append(f'<text x="{x + 16}" y="{legend_y}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
