"""Sharing a character budget fairly among several texts."""

from __future__ import annotations

from collections.abc import Sequence


def fair_shares(sizes: Sequence[int], budget: int) -> list[int]:
    """Water-filling: texts smaller than an equal share keep everything; the rest split what is left.

    The shares never exceed the sizes, and add up to at most ``budget``.
    """
    shares = [0] * len(sizes)
    remaining = max(budget, 0)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for position, index in enumerate(order):
        fair = remaining // (len(sizes) - position)
        shares[index] = min(sizes[index], fair)
        remaining -= shares[index]
    return shares
