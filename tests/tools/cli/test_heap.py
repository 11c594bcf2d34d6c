"""The console script exempts its start-up heap from garbage collection."""

from __future__ import annotations

import gc

from tools.cli.heap import freeze_startup_heap


def test_freezing_moves_every_object_alive_now_out_of_the_collectors_generations() -> None:
    kept: list[list[int]] = [[] for _ in range(100)]  # lists: objects the collector tracks
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= before + len(kept)
    finally:
        gc.unfreeze()  # the test process's collector as it was
