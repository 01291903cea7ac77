"""Money: a Decimal amount and an ISO 4217 currency, never a float.

On the wire the amount is a decimal string (``{"amount": "12500.00", "currency": "USD"}``).
A JSON number is refused because a float has already lost the cents by the time we see it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

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


class Money(BaseModel):
    """An amount of one currency. Arithmetic refuses to mix currencies."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    amount: Amount = Field(description="Decimal string, never a float", examples=["12500.00"])
    currency: CurrencyCode

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
        return f"{self.amount:,.2f} {self.currency}"
