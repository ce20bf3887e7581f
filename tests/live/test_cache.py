"""RefreshingCache: served from memory, refreshed by one background thread."""

from __future__ import annotations

import threading

import pytest
from live.cache import RefreshingCache

from tests.support.servers import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """A compute function returning 1, 2, 3, ...; it can be set to fail or to block."""

    def __init__(self, clock: FakeClock, duration_s: float = 0.0) -> None:
        self.calls = 0
        self.attempts = 0
        self.clock = clock
        self.duration_s = duration_s
        self.fail = False
        self.release = threading.Event()
        self.release.set()

    def __call__(self) -> int:
        self.release.wait(timeout=10)
        self.attempts += 1
        if self.fail:
            raise RuntimeError("store down")
        self.calls += 1
        self.clock.now += self.duration_s
        return self.calls


def test_cache_first_get_computes():
    clock = FakeClock()
    compute = Counting(clock)
    cache = RefreshingCache(compute, ttl_s=2.0, clock=clock)

    assert cache.get() == 1
    assert cache.get() == 1
    assert compute.calls == 1


def test_cache_stale_value_served_while_refreshing():
    clock = FakeClock()
    compute = Counting(clock)
    cache = RefreshingCache(compute, ttl_s=2.0, clock=clock)
    cache.get()
    clock.now += 2.5
    compute.release.clear()

    assert cache.get() == 1  # Stale, and the refresh is blocked.
    assert cache.get() == 1
    compute.release.set()

    wait_until(lambda: cache.get() == 2, "the background refresh")
    assert compute.calls == 2


def test_cache_one_refresh_at_a_time():
    clock = FakeClock()
    compute = Counting(clock)
    cache = RefreshingCache(compute, ttl_s=1.0, clock=clock)
    cache.get()
    clock.now += 5
    compute.release.clear()

    assert cache.refresh_in_background() is True
    assert cache.refresh_in_background() is False
    compute.release.set()
    wait_until(lambda: cache.refresh_in_background(), "the refresh to finish")


def test_cache_slow_compute_stays_fresh_longer():
    clock = FakeClock()
    compute = Counting(clock, duration_s=10.0)
    cache = RefreshingCache(compute, ttl_s=2.0, clock=clock)
    cache.get()

    # It took 10 s, so the value stays fresh for 10 s, not for the 2 s TTL.
    clock.now += 9
    cache.get()
    assert compute.calls == 1
    clock.now += 1.5
    cache.get()
    wait_until(lambda: compute.calls == 2, "a refresh after 10 s")


def test_cache_failed_refresh_keeps_value():
    clock = FakeClock()
    compute = Counting(clock)
    cache = RefreshingCache(compute, ttl_s=2.0, clock=clock)
    cache.get()
    compute.fail = True
    clock.now += 3

    assert cache.get() == 1
    wait_until(lambda: compute.attempts == 2, "the failing refresh")
    assert cache.get() == 1
    # The failure is retried only after the TTL, not on the next request.
    assert compute.attempts == 2


def test_cache_first_failure_raises():
    clock = FakeClock()
    compute = Counting(clock)
    compute.fail = True
    cache = RefreshingCache(compute, ttl_s=2.0, clock=clock)

    with pytest.raises(RuntimeError, match="store down"):
        cache.get()
    compute.fail = False
    assert cache.get() == 1
