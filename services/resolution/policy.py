"""The approval policy: which approvals a posting needs, read from a TOML file at start.

The file (``approval_policy.toml`` next to this module unless ``CRS_RESOLUTION_APPROVAL_POLICY_PATH``
says otherwise) is validated into frozen models; anything wrong stops the service at start with a
:class:`PolicyError` naming the file and the field, rather than letting it approve by accident.

The tiers and the write-off tolerance amount are in the policy's own ``currency``: a posting in
another currency is converted at the file's ``rates`` before its tier is chosen, so a yen credit
is measured in dollars and a dinar credit is not measured as if dinars were dollars. A currency
without a rate takes the highest tier of its kind (and is never within the tolerance amount):
without a rate nobody can tell it is small, so it must not get fewer approvals than it should.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from shared.contract import ResolutionKind
from shared.delivery import describe_validation_error
from shared.money import Amount, CurrencyCode, Money, format_amount, round_to_minor_units

DEFAULT_POLICY_PATH = Path(__file__).with_name("approval_policy.toml")

_CONVERSION_PRECISION = 60
"""Digits kept when converting: an amount (up to 10^12, 4 decimals) times a rate is never rounded."""


class PolicyError(Exception):
    """The approval policy file cannot be used."""


def parse_rate(value: Any) -> Decimal:
    """A conversion rate from the file: a positive decimal string (a TOML number may be a float)."""
    if not isinstance(value, str | Decimal):
        raise ValueError('rates must be decimal strings such as "0.0067", not TOML numbers')
    try:
        rate = Decimal(value.strip()) if isinstance(value, str) else value
    except InvalidOperation as error:
        raise ValueError(f"{value!r} is not a decimal rate") from error
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"{value!r} is not a rate: it must be a positive decimal")
    return rate


Rate = Annotated[Decimal, BeforeValidator(parse_rate)]
"""How many units of the policy's currency one unit of another currency is worth."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalTier(_Frozen):
    """Postings of at most ``up_to`` (no bound: everything above the previous tier) need ``roles``."""

    up_to: Amount | None = None
    roles: tuple[str, ...] = ()


class WriteOffLimits(_Frozen):
    """The ``[write_off]`` section: a write-off within both limits is automatic.

    ``tolerance_amount`` is in the policy's currency; ``tolerance_share`` is a share of the
    invoice total, in the invoice's own currency.
    """

    tolerance_amount: Amount = Field(ge=0)
    tolerance_share: Amount = Field(ge=0, le=1)


@dataclass(frozen=True)
class PolicyAmount:
    """An amount as the policy measures it: ``converted`` into the policy's ``currency`` at ``rate``
    (the rate is 1 for the policy's own currency), or ``None`` when the file has no rate for it."""

    original: Money
    currency: str
    rate: Decimal | None
    converted: Decimal | None

    def describe(self) -> str:
        """``4,000 JPY (26.80 USD at 0.0067)``; ``1,500.00 USD``; ``4,000 XYZ`` when there is no rate."""
        if self.converted is None or self.original.currency == self.currency:
            return str(self.original)
        assert self.rate is not None  # converted implies a rate
        return f"{self.original} ({_policy_figure(self.converted, self.currency)} at {self.rate:f})"


def _policy_figure(amount: Decimal, currency: str) -> str:
    """A converted amount for people: in minor units when it has no more decimals than that, else
    exactly (``1,000.0018 USD``), so that the figure never looks on the other side of a bound."""
    rounded = round_to_minor_units(amount, currency)
    figure = format_amount(rounded, currency) if rounded == amount else f"{amount.normalize():,f}"
    return f"{figure} {currency}"


@dataclass(frozen=True)
class ApprovalRequirement:
    """The approvals a posting needs and, in words for the approver and the auditor, why."""

    roles: tuple[str, ...]
    basis: str
    """``4,000 JPY (26.80 USD at 0.0067) is at most 1,000.00 USD``, or why the highest tier applies."""


@dataclass(frozen=True)
class ToleranceCheck:
    """Whether a write-off is within the automatic tolerance, and the computation in words."""

    within: bool
    explanation: str


class ApprovalPolicy(_Frozen):
    """The whole policy: its currency and rates, tiers for every kind of posting, the write-off
    tolerance, the preparer."""

    version: str
    currency: CurrencyCode
    """The currency of every ``up_to`` and of the write-off ``tolerance_amount``."""
    rates: dict[CurrencyCode, Rate] = Field(default_factory=dict)
    """Units of ``currency`` per unit of each other currency; ``currency`` itself is 1."""
    preparer: str = Field(min_length=1)
    write_off: WriteOffLimits
    kinds: dict[ResolutionKind, tuple[ApprovalTier, ...]]

    @model_validator(mode="after")
    def _tiers_are_complete(self) -> Self:
        missing = sorted(kind.value for kind in ResolutionKind if kind not in self.kinds)
        if missing:
            raise ValueError(f"no tiers for {', '.join(missing)}")
        for kind, tiers in self.kinds.items():
            if not tiers or tiers[-1].up_to is not None:
                raise ValueError(f"{kind.value}: the last tier must have no up_to (it covers the rest)")
            bounds = [tier.up_to for tier in tiers[:-1]]
            if any(bound is None for bound in bounds):
                raise ValueError(f"{kind.value}: only the last tier may omit up_to")
            if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):  # type: ignore[type-var]
                raise ValueError(f"{kind.value}: up_to must increase from tier to tier")
        own = self.rates.get(self.currency)
        if own is not None and own != 1:
            raise ValueError(
                f"rates.{self.currency}: {self.currency} is the policy's own currency, "
                f"its rate is 1 (not {own:f})"
            )
        return self

    def convert(self, amount: Money) -> PolicyAmount:
        """``amount`` in the policy's currency, exactly (no rounding), or without a figure when the
        file has no rate for its currency."""
        if amount.currency == self.currency:
            return PolicyAmount(amount, self.currency, Decimal(1), amount.amount)
        rate = self.rates.get(amount.currency)
        if rate is None:
            return PolicyAmount(amount, self.currency, None, None)
        with localcontext(prec=_CONVERSION_PRECISION):
            converted = amount.amount * rate
        return PolicyAmount(amount, self.currency, rate, converted)

    def requirement(self, kind: ResolutionKind, amount: Money) -> ApprovalRequirement:
        """The roles that must approve a posting of ``kind`` and ``amount`` (its size counts,
        converted into the policy's currency), and why in words."""
        measured = self.convert(Money(amount=abs(amount.amount), currency=amount.currency))
        if measured.converted is None:
            return self._highest_tier(kind, [amount.currency])
        return self._tier_for(kind, measured.converted, measured.describe())

    def requirement_for_sum(self, kind: ResolutionKind, amounts: Sequence[Money]) -> ApprovalRequirement:
        """The approvals for postings approved together: the policy applies to their sum, so that
        splitting a claim never needs fewer approvals. Postings in several currencies are summed in
        the policy's currency (each converted); one without a rate takes the highest tier."""
        currencies = {amount.currency for amount in amounts}
        if len(currencies) == 1:
            together = sum((amount.amount for amount in amounts), Decimal(0))
            return self.requirement(kind, Money(amount=together, currency=amounts[0].currency))
        measured, total = self._converted_sum(
            [Money(amount=abs(amount.amount), currency=amount.currency) for amount in amounts]
        )
        if total is None:
            unknown = sorted({one.original.currency for one in measured if one.converted is None})
            return self._highest_tier(kind, unknown)
        parts = " + ".join(one.describe() for one in measured)
        return self._tier_for(kind, total, f"{parts}, together {_policy_figure(total, self.currency)},")

    def measured_total(self, totals: Sequence[Money]) -> Money | None:
        """What :meth:`requirement_for_sum` reads the tiers against: totals of one currency as they
        are, of several summed in the policy's currency (each converted exactly); None when one of
        several has no rate."""
        if len({total.currency for total in totals}) == 1:
            return Money(
                amount=sum((total.amount for total in totals), Decimal(0)), currency=totals[0].currency
            )
        _, total = self._converted_sum(totals)
        if total is None:
            return None
        # Money keeps four decimals: rounded away from zero, a total above a tier's bound never
        # reads as at or below it.
        return Money(amount=total.quantize(Decimal("0.0001"), rounding=ROUND_UP), currency=self.currency)

    def _converted_sum(self, amounts: Sequence[Money]) -> tuple[list[PolicyAmount], Decimal | None]:
        """Each amount in the policy's currency, and their exact sum (None when one has no rate)."""
        measured = [self.convert(amount) for amount in amounts]
        converted = [one.converted for one in measured if one.converted is not None]
        if len(converted) < len(measured):
            return measured, None
        with localcontext(prec=_CONVERSION_PRECISION):
            return measured, sum(converted, Decimal(0))

    def _highest_tier(self, kind: ResolutionKind, unknown: Sequence[str]) -> ApprovalRequirement:
        """Without a rate nobody can tell an amount is small: it must not get fewer approvals."""
        currencies = " or ".join(unknown)
        return ApprovalRequirement(
            self.kinds[kind][-1].roles,
            f"there is no rate for {currencies} in policy {self.version}: the highest tier applies",
        )

    def _tier_for(self, kind: ResolutionKind, size: Decimal, described: str) -> ApprovalRequirement:
        """The tier of ``size`` (in the policy's currency), ``described`` for people."""
        lower: Decimal | None = None
        for tier in self.kinds[kind]:
            if tier.up_to is None or size <= tier.up_to:
                return ApprovalRequirement(tier.roles, f"{described} is {self._range(lower, tier.up_to)}")
            lower = tier.up_to
        raise AssertionError("the last tier is unbounded")  # guaranteed by the validator

    def required_roles(self, kind: ResolutionKind, amount: Money) -> tuple[str, ...]:
        """The roles that must approve a posting of ``kind`` and ``amount`` (see :meth:`requirement`)."""
        return self.requirement(kind, amount).roles

    def _range(self, above: Decimal | None, up_to: Decimal | None) -> str:
        def bound(amount: Decimal) -> str:
            return f"{format_amount(amount, self.currency)} {self.currency}"

        if above is None and up_to is None:
            return "in the only tier"
        if above is None:
            assert up_to is not None
            return f"at most {bound(up_to)}"
        if up_to is None:
            return f"above {bound(above)}"
        return f"above {bound(above)} and at most {bound(up_to)}"

    @property
    def write_off_tolerance(self) -> WriteOffTolerance:
        """The write-off tolerance, measuring amounts in the policy's currency."""
        return WriteOffTolerance(self)


@dataclass(frozen=True)
class WriteOffTolerance:
    """A write-off is automatic when at most the tolerance amount (in the policy's currency, the
    write-off converted) and at most the tolerance share of the invoice total (in the invoice's
    currency, no conversion: a share is a share)."""

    policy: ApprovalPolicy

    @property
    def limits(self) -> WriteOffLimits:
        """The ``[write_off]`` section of the policy."""
        return self.policy.write_off

    def covers(self, amount: Money, invoice_total: Money) -> bool:
        """Whether a write-off of ``amount`` on an invoice of ``invoice_total`` is automatic."""
        return self.check(amount, invoice_total).within

    def check(self, amount: Money, invoice_total: Money) -> ToleranceCheck:
        """Whether a write-off is within the tolerance, with the computation spelled out."""
        limits, currency = self.limits, self.policy.currency
        share_limit = limits.tolerance_share * invoice_total.amount
        measured = self.policy.convert(amount)
        within = (
            amount.amount <= share_limit
            and measured.converted is not None
            and measured.converted <= limits.tolerance_amount
        )
        verdict = "within it" if within else "above it"
        shown_share_limit = round_to_minor_units(share_limit, invoice_total.currency)
        share = f"{limits.tolerance_share * 100:,.2f}% of the invoice total {invoice_total}"
        tolerance = format_amount(limits.tolerance_amount, currency)
        if amount.currency == currency and invoice_total.currency == currency:
            lowest = format_amount(min(limits.tolerance_amount, shown_share_limit), currency)
            return ToleranceCheck(
                within,
                f"the automatic tolerance is the lower of {tolerance} and {share}, here {lowest}: {verdict}",
            )
        if measured.converted is None:
            measure = (
                f"there is no rate for {amount.currency} in policy {self.policy.version}, "
                f"so {amount} cannot count as within {tolerance} {currency}"
            )
        else:
            measure = f"{measured.describe()} against {tolerance} {currency}"
        return ToleranceCheck(
            within,
            f"the automatic tolerance is at most {tolerance} {currency} and at most {share}, here "
            f"{Money(amount=shown_share_limit, currency=invoice_total.currency)}; {measure}: {verdict}",
        )


def load_policy(path: Path = DEFAULT_POLICY_PATH) -> ApprovalPolicy:
    """Read and validate the policy file, or raise :class:`PolicyError` saying what is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError(f"approval policy {path}: cannot read it: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"approval policy {path}: not valid TOML: {error}") from error
    try:
        return ApprovalPolicy.model_validate(raw)
    except ValidationError as error:
        raise PolicyError(f"approval policy {path}: {describe_validation_error(error)}") from error
