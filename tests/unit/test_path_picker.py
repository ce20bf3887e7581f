"""Path choice by weight: seeded, proportional, and weight 0 never chosen."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from router.forward import PathPicker

PICKS = 20_000


def picks(weights: dict, seed: int = 1, count: int = PICKS) -> Counter:
    picker = PathPicker(weights, random.Random(seed))
    return Counter(picker.pick() for _ in range(count))


def test_same_seed_same_sequence():
    first = PathPicker({"grpc": 50, "redis": 50}, random.Random(42))
    second = PathPicker({"grpc": 50, "redis": 50}, random.Random(42))

    assert [first.pick() for _ in range(100)] == [second.pick() for _ in range(100)]


@pytest.mark.parametrize(
    ("weights", "grpc_share"),
    [
        ({"grpc": 50, "redis": 50}, 0.5),
        ({"grpc": 80, "redis": 20}, 0.8),
        ({"grpc": 1, "redis": 3}, 0.25),
    ],
)
def test_split_follows_weights(weights, grpc_share):
    counts = picks(weights)

    # Tolerance: 0.02 is over 5 standard deviations of a binomial share at
    # n=20,000 (0.0035 at p=0.5), so a correct picker essentially never fails.
    assert abs(counts["grpc"] / PICKS - grpc_share) < 0.02
    assert counts["grpc"] + counts["redis"] == PICKS


@pytest.mark.parametrize(
    ("weights", "only"),
    [({"grpc": 0, "redis": 100}, "redis"), ({"grpc": 100, "redis": 0}, "grpc")],
)
def test_zero_weight_never_picked(weights, only):
    counts = picks(weights)

    assert counts == Counter({only: PICKS})


def test_all_zero_rejected():
    with pytest.raises(ValueError):
        PathPicker({"grpc": 0, "redis": 0})
