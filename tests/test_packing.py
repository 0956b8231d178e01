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


def _best_fit(examples, order, source_length, target_length, window):
    """The packing rule, example by example in plain Python: each example joins the open row it leaves with the
    least free share on the fuller side (the first such row on a tie); with none, a new row, after closing the
    fullest row when `window` rows are open."""
    def room(row, source, target):
        return min(1 - (row[0] + source) / source_length, 1 - (row[1] + target) / target_length)

    closed, open_rows = [], []
    for i in order:
        source, target = len(examples[i].source), len(examples[i].target)
        fitting = [r for r in open_rows if r[0] + source <= source_length and r[1] + target <= target_length]
        row = min(fitting, key=lambda r: room(r, source, target), default=None)
        if row is None:
            if len(open_rows) == window:
                closed.append(open_rows.pop(min(range(window), key=lambda r: room(open_rows[r], 0, 0)))[2])
            row = [0, 0, []]
            open_rows.append(row)
        row[0], row[1] = row[0] + source, row[1] + target
        row[2].append(int(i))
    return closed + [r[2] for r in open_rows]


@pytest.mark.parametrize("window", [1, 3, 512])
def test_rows_follow_the_best_fit_rule(monkeypatch, window):
    monkeypatch.setattr("eotd_jax.input.packing._OPEN_ROWS", window)
    examples = _examples(count=700, seed=window)
    batches = PackedBatches(examples, batch_size=4, source_length=96, target_length=48, seed=3)
    order = np.random.default_rng([3, 1]).permutation(len(examples))
    assert batches.rows(1) == _best_fit(examples, order, 96, 48, window)
