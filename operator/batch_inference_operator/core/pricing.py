"""Estimated batch cost of what a job consumed, from a price table (defaults below, `BIJ_PRICES` overrides).

Batch pays half the standard price; cached input pays 10 % instead of (not on top of) that half.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import orjson

from ..api import Estimate, Usage
from .tokens import Tally


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens at the standard (online) price."""

    input: Decimal
    output: Decimal


# Gemini list prices per million tokens (standard, text, prompts up to 200k tokens). Operators
# override them with BIJ_PRICES; a model missing here gets no cost estimate rather than a wrong one.
DEFAULT_PRICES: dict[str, Price] = {
    "gemini-2.5-pro": Price(Decimal("1.25"), Decimal("10.00")),
    "gemini-2.5-flash": Price(Decimal("0.30"), Decimal("2.50")),
    "gemini-2.5-flash-lite": Price(Decimal("0.10"), Decimal("0.40")),
    "gemini-2.0-flash-001": Price(Decimal("0.15"), Decimal("0.60")),
    "gemini-2.0-flash-lite-001": Price(Decimal("0.075"), Decimal("0.30")),
}
BATCH_DISCOUNT = Decimal("0.5")  # batch pays half
CACHED_INPUT_FACTOR = Decimal("0.1")  # cached input pays 10 %, instead of (not on top of) the batch half


def model_id(model: str) -> str:
    return model.rsplit("/", 1)[-1].split("@", 1)[0]


def estimate_cost(usage: Usage, model: str, prices: dict[str, Price]) -> str | None:
    """Batch price of the billed (successful) rows: uncached input at half price, cached input at 10 %,
    output and thoughts at half price. None when the model has no price."""
    price = prices.get(model_id(model))
    if price is None:
        return None
    million = Decimal(1_000_000)
    uncached = Decimal(usage.prompt_tokens - usage.cached_tokens)
    output = Decimal(usage.candidates_tokens + usage.thoughts_tokens)
    cost = (
        uncached * price.input * BATCH_DISCOUNT
        + Decimal(usage.cached_tokens) * price.input * CACHED_INPUT_FACTOR
        + output * price.output * BATCH_DISCOUNT
    ) / million
    return str(cost.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def parse_prices(text: str) -> dict[str, Price]:
    """`BIJ_PRICES`: JSON `{"model": {"input": 0.30, "output": 2.50}, ...}` in dollars per million tokens."""
    raw = orjson.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("BIJ_PRICES must be a JSON object of model -> {input, output}")
    prices = {}
    for model, entry in raw.items():
        try:
            prices[model] = Price(Decimal(str(entry["input"])), Decimal(str(entry["output"])))
        except (KeyError, TypeError, ArithmeticError) as error:
            raise ValueError(f"BIJ_PRICES[{model!r}] needs numeric input and output prices ({error})") from None
    return prices


def estimate_input(tally: Tally, model: str, prices: dict[str, Price]) -> Estimate:
    """The estimate at the batch price; no cost when the model has no price."""
    price = prices.get(model_id(model))
    cost = None
    if price is not None:
        dollars = (
            (Decimal(tally.input_tokens) * price.input + Decimal(tally.output_bound) * price.output)
            * BATCH_DISCOUNT
            / Decimal(1_000_000)
        )
        cost = str(dollars.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
    return Estimate(input_tokens=tally.input_tokens, cost_usd=cost, method=tally.method())


def cost_problem(estimated: Estimate, limit: str | None, model: str) -> str | None:
    """The refusal when the estimate is over `spec.maxEstimatedCostUSD` (or cannot be made)."""
    if limit is None:
        return None
    if estimated.cost_usd is None:
        return (
            f"spec.maxEstimatedCostUSD is {limit} but the operator has no price for {model_id(model)}, so the cost "
            "cannot be estimated: add the model to the operator's price table (BIJ_PRICES) or remove the limit"
        )
    if Decimal(estimated.cost_usd) <= Decimal(limit):
        return None
    return (
        f"the estimated cost ${estimated.cost_usd} ({estimated.input_tokens} input tokens, {estimated.method}) is "
        f"over spec.maxEstimatedCostUSD ${limit}: nothing was submitted. Raise the limit, or split the input"
    )
