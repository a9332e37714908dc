"""Flag behaves as asyncio.Event where the engine and the output hub use it, and holds no
waiter queue while nobody waits (issue 16: a run in flight kept three Events, about 2 KiB of
its memory; bench/README.md has the measure)."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from vmexec.execution.flag import Flag

KINDS = [asyncio.Event, Flag]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
async def test_set_wakes_every_waiter_and_wait_returns_at_once_while_set(kind: type) -> None:
    flag = kind()
    woken: list[int] = []

    async def waiter(n: int) -> None:
        assert await flag.wait() is True
        woken.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert not flag.is_set() and woken == []
    flag.set()
    await asyncio.gather(*tasks)
    assert sorted(woken) == [0, 1, 2] and flag.is_set()
    async with asyncio.timeout(1):
        assert await flag.wait() is True  # set: at once


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
async def test_clear_makes_the_next_wait_block_until_set_again(kind: type) -> None:
    flag = kind()
    flag.set()
    flag.clear()
    waiting = asyncio.create_task(flag.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    flag.set()
    assert await waiting is True


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
async def test_a_wait_given_up_by_a_timeout_leaves_the_others_waiting(kind: type) -> None:
    flag = kind()
    other = asyncio.create_task(flag.wait())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await flag.wait()
    later = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    assert not other.done() and not later.done()
    flag.set()
    assert await other is True and await later is True


async def test_a_flag_forgets_its_waiters_once_they_are_woken_or_gone() -> None:
    flag = Flag()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await flag.wait()
    assert not flag._waiters
    waiting = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    flag.set()
    await waiting
    assert not flag._waiters


def test_a_thousand_idle_flags_take_a_fraction_of_a_thousand_events() -> None:
    def allocated(kind: type) -> int:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [kind() for _ in range(1000)]
            size = tracemalloc.get_traced_memory()[0] - before
            del kept
            return size
        finally:
            tracemalloc.stop()

    assert allocated(Flag) * 5 < allocated(asyncio.Event)
