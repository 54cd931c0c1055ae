"""The heap's free pages go back to the system after a job (training_agent.heap)."""

from __future__ import annotations

import gc
import sys

import psutil
import pytest

from training_agent import heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_small_blocks_are_returned_to_the_system() -> None:
    process = psutil.Process()
    blocks = [bytes(2000) for _ in range(40_000)]  # 80 MB from the C heap, not Python's arenas
    survivor = bytes(2000)  # above them, so the heap's top cannot simply shrink
    del blocks
    gc.collect()
    before = process.memory_info().rss

    returned = heap.give_back()

    after = process.memory_info().rss
    assert returned
    assert before - after > 20 * 2**20, (before, after)
    assert survivor


def test_without_malloc_trim_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    heap._malloc_trim.cache_clear()
    try:
        assert heap.give_back() is False
    finally:
        heap._malloc_trim.cache_clear()
