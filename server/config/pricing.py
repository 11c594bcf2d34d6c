"""Model prices and the cost of a call.

The table is USD per million tokens, from Anthropic's pricing pages (platform.claude.com/docs, "Pricing"
and each model's overview page) as read on 2026-11-24. Prices change: check claude.com/pricing and
override entries with ``--prices FILE`` (JSON, the same shape as ``PRICES`` below:
``{"model-id": {"input": 2.0, "output": 10.0, "cache_write": 2.5, "cache_read": 0.1}}``; the two cache
fields are optional and default to 1.25x and 0.1x of input).

A model id matches an entry when it equals the entry's key, or is the key plus a snapshot date or a
context variant (``claude-haiku-4-5-20251001`` and ``claude-sonnet-5-5[1m]`` match their models). A
model with no entry has an unknown cost: ``None``, never a guess.

``cache_write`` is the 5-minute cache write; ``long_prompt`` holds the rates that apply to every token of
a request whose prompt (input + cache reads + cache writes) exceeds ``long_prompt_tokens``. A request of a
Message Batch costs ``BATCH_DISCOUNT`` times as much (``batch_cost``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from ..core.models import Tokens
from ..intake.patterns import Regex


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


@dataclass(frozen=True, slots=True)
class Price:
    """A model's rates, with an optional higher tier for long prompts."""

    base: Rates
    long_prompt: Rates | None = None
    long_prompt_tokens: int | None = None


def _rates(inp: float, out: float, write: float | None = None, read: float | None = None) -> Rates:
    return Rates(inp, out, inp * 1.25 if write is None else write, inp * 0.1 if read is None else read)


PRICES: Final[Mapping[str, Price]] = {
    "claude-fable-5-1": Price(_rates(10, 50, 12.5, 0.25)),
    "claude-mythos-5-1": Price(_rates(10, 50, 12.5, 0.25)),
    "claude-fable-5": Price(_rates(10, 50, 12.5, 1.0)),
    "claude-mythos-5": Price(_rates(10, 50, 12.5, 1.0)),
    "claude-opus-5-5": Price(_rates(4, 20, 5.0, 0.2)),
    "claude-opus-5": Price(_rates(5, 25, 6.25, 0.5)),
    "claude-opus-4-8": Price(_rates(5, 25, 6.25, 0.5)),
    "claude-opus-4-7": Price(_rates(5, 25, 6.25, 0.5)),
    "claude-opus-4-6": Price(_rates(5, 25, 6.25, 0.5)),
    "claude-opus-4-5": Price(_rates(5, 25, 6.25, 0.5)),
    "claude-sonnet-5-5": Price(_rates(2, 10, 2.5, 0.1)),
    "claude-sonnet-5": Price(_rates(2, 10, 2.5, 0.2)),
    "claude-sonnet-4-6": Price(_rates(3, 15, 3.75, 0.3)),
    "claude-sonnet-4-5": Price(_rates(3, 15, 3.75, 0.3)),
    "claude-haiku-5-5": Price(
        _rates(0.1, 0.5, 0.125, 0.01), long_prompt=_rates(0.5, 2.5, 0.625, 0.05), long_prompt_tokens=100_000
    ),
    "claude-haiku-4-5": Price(_rates(1, 5, 1.25, 0.1)),
}


# Message Batches bill half the standard prices. The discount stacks with the other modifiers (cache
# writes and reads, long-prompt rates), so it scales the whole cost of a request.
BATCH_DISCOUNT: Final = 0.5


# A dated snapshot ("-20251001") or a context variant ("[1m]") is priced as its model. RE2, since a model
# name can come from a client (sampling) and Python's re takes n**2 steps on "[[[[...".
_SNAPSHOT: Final = Regex(r"^(.+?)(?:-\d{8})?(?:\[[^\]]*\])?$")


class PriceTable:
    """Looks up a model's price and turns token counts into dollars."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)

    @classmethod
    def load(cls, path: Path | None) -> PriceTable:
        """The built-in table, extended or overridden by a JSON file.

        Raises:
            ValueError: the file cannot be read or an entry is malformed (the message says which).
        """
        prices = dict(PRICES)
        if path is not None:
            prices.update(_read_price_file(path))
        return cls(prices)

    def price(self, model: str) -> Price | None:
        return self._prices.get(_SNAPSHOT.first(model, 1) or model)

    def cost(self, model: str, tokens: Tokens) -> float | None:
        """Dollars for one call, or ``None`` when the model's price is unknown."""
        price = self.price(model)
        if price is None:
            return None
        rates = price.base
        prompt = tokens.input_tokens + tokens.cache_read_tokens + tokens.cache_write_tokens
        if price.long_prompt and price.long_prompt_tokens is not None and prompt > price.long_prompt_tokens:
            rates = price.long_prompt
        micro = (
            tokens.input_tokens * rates.input
            + tokens.output_tokens * rates.output
            + tokens.cache_write_tokens * rates.cache_write
            + tokens.cache_read_tokens * rates.cache_read
        )
        return micro / 1_000_000

    def batch_cost(self, model: str, tokens: Tokens) -> float | None:
        """Dollars for one request of a Message Batch, or ``None`` when the model's price is unknown."""
        cost = self.cost(model, tokens)
        return None if cost is None else cost * BATCH_DISCOUNT


def _read_price_file(path: Path) -> dict[str, Price]:
    try:
        raw: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"price file {str(path)!r}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"price file {str(path)!r}: expected a JSON object of model id -> rates")
    entries = cast(dict[str, Any], raw)
    return {model: Price(_parse_rates(path, model, entry)) for model, entry in entries.items()}


def _parse_rates(path: Path, model: str, entry: Any) -> Rates:
    where = f"price file {str(path)!r}, model {model!r}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with input and output prices")
    fields = cast(dict[str, Any], entry)
    values: dict[str, float] = {}
    for key in ("input", "output", "cache_write", "cache_read"):
        value = fields.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{where}: {key} must be a non-negative number, got {value!r}")
        values[key] = float(value)
    if "input" not in values or "output" not in values:
        raise ValueError(f"{where}: input and output prices are required")
    return _rates(values["input"], values["output"], values.get("cache_write"), values.get("cache_read"))
