"""Packed batches: every example exactly once per epoch, exact resume, per-process split."""

from __future__ import annotations

import numpy as np
import pytest

from eotd_jax.input.packing import PackedBatches, TokenizedExample


def _examples(count=300, seed=0):
    rng = np.random.default_rng(seed)
    return [TokenizedExample(rng.integers(4, 260, rng.integers(5, 60)).astype(np.int32),
                             rng.integers(4, 260, rng.integers(3, 30)).astype(np.int32)) for _ in range(count)]


def test_rows_hold_each_example_once_and_segments_match():
    batches = PackedBatches(_examples(), batch_size=4, source_length=128, target_length=64, seed=1)
    rows = batches.rows(0)
    assert sorted(i for row in rows for i in row) == list(range(300))
    batch = batches.batch(0, 0)
    for r in range(4):
        for segment in range(1, batch["input_segments"][r].max() + 1):
            source = batch["inputs"][r][batch["input_segments"][r] == segment]
            target = batch["targets"][r][batch["target_segments"][r] == segment]
            example = batches.examples[rows[r][segment - 1]]
            np.testing.assert_array_equal(source, example.source)
            np.testing.assert_array_equal(target, example.target)
    assert batches.padding_fraction() < 0.2


def test_a_restored_position_continues_the_same_stream_across_epochs():
    make = lambda: PackedBatches(_examples(), batch_size=4, source_length=128, target_length=64, seed=1)  # noqa: E731
    reference = make()
    stream = [next(reference) for _ in range(2 * reference.batches_per_epoch() + 3)]
    resumed = make()
    for _ in range(5):
        next(resumed)
    position = dict(resumed.position)
    fresh = make()
    fresh.position = position
    for expected in stream[5:]:
        got = next(fresh)
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])
    assert fresh.position["epoch"] == 2


def test_processes_split_each_global_batch():
    whole = PackedBatches(_examples(), 4, 128, 64, seed=2).batch(0, 3)
    parts = [PackedBatches(_examples(), 4, 128, 64, seed=2, process_index=i, process_count=2).batch(0, 3)
             for i in range(2)]
    for name in whole:
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), whole[name])
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        PackedBatches(_examples(), 4, 128, 64, seed=2, process_index=0, process_count=3)
