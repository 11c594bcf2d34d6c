from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from server import Tokens
from server.config.pricing import PriceTable


def test_cost_uses_input_output_and_cache_rates() -> None:
    table = PriceTable.load(None)
    tokens = Tokens(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_write_tokens=1_000_000,
        cache_read_tokens=1_000_000,
    )
    assert table.cost("claude-sonnet-5-5", tokens) == pytest.approx(2 + 10 + 2.5 + 0.1)
    assert table.cost("claude-opus-4-6", tokens) == pytest.approx(5 + 25 + 6.25 + 0.5)


def test_the_longest_matching_entry_wins_and_dated_snapshots_match() -> None:
    table = PriceTable.load(None)
    one_in = Tokens(input_tokens=1_000_000)
    assert table.cost("claude-sonnet-5", one_in) == pytest.approx(2)
    assert table.cost("claude-haiku-4-5-20251001", one_in) == pytest.approx(1)
    assert table.cost("claude-sonnet-5-5", Tokens(cache_read_tokens=1_000_000)) == pytest.approx(0.1)
    assert table.cost("claude-sonnet-5", Tokens(cache_read_tokens=1_000_000)) == pytest.approx(0.2)


def test_an_unknown_model_costs_none_not_a_guess() -> None:
    assert PriceTable.load(None).cost("gpt-something", Tokens(input_tokens=10)) is None
    assert PriceTable.load(None).cost("claude-sonnet-5-5x", Tokens(input_tokens=10)) is None


def test_long_prompts_switch_to_the_higher_tier() -> None:
    table = PriceTable.load(None)
    short = table.cost("claude-haiku-5-5", Tokens(input_tokens=100_000, output_tokens=0))
    long = table.cost("claude-haiku-5-5", Tokens(input_tokens=100_001, output_tokens=0))
    assert short == pytest.approx(0.01)
    assert long == pytest.approx(100_001 * 0.5 / 1_000_000)


def test_a_price_file_extends_the_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"my-model": {"input": 1, "output": 2}, "claude-sonnet-5-5": {"input": 9, "output": 9}})
    )
    table = PriceTable.load(path)
    assert table.cost(
        "my-model", Tokens(input_tokens=1_000_000, cache_write_tokens=1_000_000)
    ) == pytest.approx(2.25)
    assert table.cost("claude-sonnet-5-5", Tokens(output_tokens=1_000_000)) == pytest.approx(9)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "price file"),
        ("[1, 2]", "expected a JSON object"),
        ('{"m": 3}', "expected an object with input and output"),
        ('{"m": {"input": 1}}', "input and output prices are required"),
        ('{"m": {"input": -1, "output": 1}}', "input must be a non-negative number"),
        ('{"m": {"input": "cheap", "output": 1}}', "input must be a non-negative number"),
    ],
)
def test_a_bad_price_file_is_rejected_with_the_entry_and_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        PriceTable.load(path)


def test_context_variants_are_priced_as_their_model() -> None:
    assert PriceTable.load(None).cost(
        "claude-sonnet-5-5[1m]", Tokens(input_tokens=1_000_000)
    ) == pytest.approx(2)


async def test_a_model_name_a_client_made_up_is_priced_in_time_linear_in_it() -> None:
    # A sampling client names the model its answer came from; Python's re took n**2 steps on this one
    # (and held the GIL, so the loop could not even time out).
    table = PriceTable.load(None)
    with anyio.fail_after(5):
        price = await anyio.to_thread.run_sync(table.price, "[" * 300_000, abandon_on_cancel=True)
    assert price is None
    assert table.price("claude-sonnet-5-20260101[1m]") == table.price("claude-sonnet-5")
