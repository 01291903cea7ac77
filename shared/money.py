"""Money: a Decimal amount and an ISO 4217 currency, never a float.

On the wire the amount is a decimal string (``{"amount": "12500.00", "currency": "USD"}``).
A JSON number is refused because a float has already lost the cents by the time we see it.
Each currency has its own minor units (ISO 4217, from the pinned ``iso4217`` package): two for
USD, none for JPY, three for BHD. An amount never carries zeros beyond them (``"100000.00"`` JPY
is ``"100000"``) and is shown with exactly as many decimals (``100,000 JPY``, ``96.60 USD``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from typing import Annotated, Any

from iso4217 import Currency
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_ABSOLUTE_AMOUNT = Decimal("1000000000000")  # 10^12: above any real invoice, below nonsense
MAX_DECIMAL_PLACES = 4


def parse_decimal_amount(value: Any) -> Decimal:
    """Turn a wire value into a Decimal, refusing floats, non-finite values and absurd sizes."""
    if isinstance(value, bool | float):
        raise ValueError('amounts must be decimal strings such as "12500.00", not JSON numbers')
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | str):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation as error:
            raise ValueError(f"{value!r} is not a decimal amount") from error
    else:
        raise ValueError('amounts must be decimal strings such as "12500.00"')
    if not amount.is_finite():
        raise ValueError("amounts must be finite")
    if abs(amount) >= MAX_ABSOLUTE_AMOUNT:
        raise ValueError("amount is implausibly large")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise ValueError(f"amounts have at most {MAX_DECIMAL_PLACES} decimal places")
    return amount


Amount = Annotated[
    Decimal,
    BeforeValidator(parse_decimal_amount),
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
]
"""A Decimal read from a decimal string and written back as one."""

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["USD"])]


DEFAULT_MINOR_UNITS = 2
"""The minor units of a code ISO 4217 does not know, or gives none (``XXX``): cents."""


@cache
def minor_units(currency: str) -> int:
    """How many decimals an amount of ``currency`` has (ISO 4217): USD 2, JPY 0, BHD 3."""
    try:
        exponent = Currency(currency).exponent
    except ValueError:
        return DEFAULT_MINOR_UNITS
    return DEFAULT_MINOR_UNITS if exponent is None else exponent


def round_to_minor_units(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half up to the minor units of ``currency`` (whole yen, cents of a dollar)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def format_amount(amount: Decimal, currency: str) -> str:
    """``amount`` for people: thousands grouped, as many decimals as ``currency`` has (``100,000``)."""
    return f"{amount:,.{minor_units(currency)}f}"


def _without_zeros_beyond_minor_units(amount: Decimal, currency: str) -> Decimal:
    exponent = amount.as_tuple().exponent
    places = minor_units(currency)
    if not isinstance(exponent, int) or -exponent <= places:
        return amount
    shortened = amount.quantize(Decimal(1).scaleb(-places))
    return shortened if shortened == amount else amount  # a real fraction of a minor unit stays


class Money(BaseModel):
    """An amount of one currency. Arithmetic refuses to mix currencies.

    Zeros beyond the currency's minor units are dropped as it is read (``"100000.00"`` JPY is
    ``100000``); a real fraction of a minor unit is kept, never rounded away here.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    amount: Amount = Field(description="Decimal string, never a float", examples=["12500.00"])
    currency: CurrencyCode

    @model_validator(mode="after")
    def _in_minor_units(self) -> Money:
        shortened = _without_zeros_beyond_minor_units(self.amount, self.currency)
        if shortened is not self.amount:
            # Frozen: set once, while the instance is being built.
            object.__setattr__(self, "amount", shortened)
        return self

    def __sub__(self, other: Money) -> Money:
        self._require_same_currency(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __add__(self, other: Money) -> Money:
        self._require_same_currency(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def _require_same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        return f"{format_amount(self.amount, self.currency)} {self.currency}"


CURRENCY_MISMATCH = "currency_mismatch"
"""The error type of an amount given as a money object in another currency than its document's."""

_DECIMAL_STRING_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^-?\d+(\.\d+)?$",
    "description": "a decimal string, in the document's currency",
    "examples": ["12500.00"],
}
_MONEY_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "string", "description": "decimal string, never a float"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "must be the document's"},
    },
    "required": ["amount", "currency"],
}
DOCUMENT_AMOUNT_SCHEMA: dict[str, Any] = {
    "anyOf": [_DECIMAL_STRING_SCHEMA, _MONEY_OBJECT_SCHEMA],
    "description": "An amount in the document's currency: a decimal string, or a money object in "
    "that currency (a money object in another currency is refused)",
}


def amount_in(value: Any, currency: str | None, *, document: str, item: str = "") -> Decimal:
    """An amount of a reference document, as ERPs send it: a decimal string or a money object.

    A decimal string (or a Decimal) is read in the document's ``currency``; a money object must be
    in that currency, else the error says so (type :data:`CURRENCY_MISMATCH`): converting it is
    not ours to do, and taking its figure as if it were the document's currency would be wrong.
    """
    if isinstance(value, Money):
        value = {"amount": value.amount, "currency": value.currency}
    what = f"{item} is " if item else ""
    if isinstance(value, dict):
        given = value.get("currency")
        if currency is not None and given != currency:
            raise PydanticCustomError(
                CURRENCY_MISMATCH,
                "{what}a money object in {given}, but the {document} is in {currency}: its amounts "
                "are decimal strings or money objects in {currency}",
                {"given": str(given), "document": document, "currency": currency, "what": what},
            )
        return parse_decimal_amount(value.get("amount"))
    return parse_decimal_amount(value)


def money_in(value: Any, currency: str | None, *, document: str) -> Money:
    """:func:`amount_in` as :class:`Money` of the document's currency."""
    if currency is None:
        if isinstance(value, dict | Money):
            return Money.model_validate(value)
        raise ValueError(f"an amount given as a decimal string needs the {document}'s currency")
    return Money(amount=amount_in(value, currency, document=document), currency=currency)


def _json_number_as_decimal(value: Any) -> Any:
    if isinstance(value, float) and not isinstance(value, bool):
        return str(value)  # the shortest text that reads back as this float: what the sender wrote
    return value


Quantity = Annotated[
    Decimal,
    BeforeValidator(lambda value: parse_decimal_amount(_json_number_as_decimal(value))),
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}, {"type": "number"}],
            "description": "a decimal string, or a JSON number (a quantity is not money)",
        }
    ),
]
"""A quantity: a decimal string like an amount, but a JSON number is accepted too, since ERPs send
quantities as numbers and a quantity of 1.5 read through its shortest text loses nothing."""
