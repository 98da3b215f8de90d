"""benchmarks/time_popularity.py (docs/benchmarks/ranking.md section 14): the recent counts see only the fit data
and nothing after the user's moment."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from time_popularity import DAY, rating_times, recent_counts


def test_recent_counts_hold_out_the_last_items_and_stop_at_the_moment():
    sequences = (np.array([1, 2, 3]), np.array([2, 1, 2]))
    stamps = (np.array([1, 5, 9]) * DAY, np.array([2, 4, 8]) * DAY)
    times = rating_times(sequences, stamps, drop=1)  # each user's last rating is not fit data
    assert {k: list(v // DAY) for k, v in times.items()} == {1: [1, 4], 2: [2, 5]}
    assert list(recent_counts(times, [1, 2, 3], 4 * DAY, days=0)) == [2, 1, 0]  # up to day 4 included
    assert list(recent_counts(times, [1, 2, 3], 5 * DAY, days=2)) == [1, 1, 0]  # days 4 and 5 only
    assert list(recent_counts(times, [2], 1 * DAY, days=0)) == [0]  # nothing from after the moment
