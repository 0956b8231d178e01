"""Tokenized examples -> packed, shuffled, per-host batches that resume exactly from a saved position.

Several examples share a row (segment ids 1, 2, ... mark them, 0 is padding)
so little of each batch is padding. The order is a pure function of (seed,
epoch): every host computes the same global batches and keeps its own rows,
and a position {"epoch", "index"} saved with a checkpoint restores the stream
exactly, with no state beyond those two numbers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_OPEN_ROWS = 512  # best-fit window: rows still accepting examples


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
    source: np.ndarray  # int32 ids, ending in EOS
    target: np.ndarray


class PackedBatches:
    def __init__(self, examples: list[TokenizedExample], batch_size: int, source_length: int, target_length: int,
                 seed: int, process_index: int = 0, process_count: int = 1):
        if not examples:
            raise ValueError("no training examples")
        if batch_size % process_count:
            raise ValueError(f"batch size {batch_size} is not divisible by {process_count} processes")
        self.examples, self.batch_size = examples, batch_size
        self.source_length, self.target_length, self.seed = source_length, target_length, seed
        self.process_index, self.process_count = process_index, process_count
        self.position = {"epoch": 0, "index": 0}
        self._rows: tuple[int, list[list[int]]] | None = None

    def rows(self, epoch: int) -> list[list[int]]:
        """Example indices of every row of an epoch, best-fit packed (the open row left fullest) in a seeded
        random order."""
        if self._rows is None or self._rows[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
            closed, open_rows = [], []  # open: [source used, target used, indices]
            for i in order:
                example = self.examples[i]
                need = (len(example.source), len(example.target))
                fits = [r for r in open_rows if r[0] + need[0] <= self.source_length
                        and r[1] + need[1] <= self.target_length]
                row = min(fits, key=lambda r: self._room(r, need), default=None)  # best fit
                if row is None:
                    if len(open_rows) == _OPEN_ROWS:  # close the fullest row
                        fullest = min(range(len(open_rows)), key=lambda r: self._room(open_rows[r], (0, 0)))
                        closed.append(open_rows.pop(fullest)[2])
                    row = [0, 0, []]
                    open_rows.append(row)
                row[0], row[1] = row[0] + need[0], row[1] + need[1]
                row[2].append(int(i))
            closed.extend(r[2] for r in open_rows)
            self._rows = (epoch, closed)
        return self._rows[1]

    def _room(self, row: list, need: tuple[int, int]) -> float:
        """Free share of a row after adding `need`, on its fuller side (lower is a tighter fit)."""
        return min(1 - (row[0] + need[0]) / self.source_length, 1 - (row[1] + need[1]) / self.target_length)

    def batches_per_epoch(self, epoch: int = 0) -> int:
        return len(self.rows(epoch)) // self.batch_size

    def batch(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        """This process's rows of global batch `index` of `epoch`."""
        per_process = self.batch_size // self.process_count
        start = index * self.batch_size + self.process_index * per_process
        rows = self.rows(epoch)[start:start + per_process]
        arrays = {name: np.zeros((per_process, length), np.int32) for name, length in
                  (("inputs", self.source_length), ("input_segments", self.source_length),
                   ("targets", self.target_length), ("target_segments", self.target_length))}
        for r, row in enumerate(rows):
            source_at = target_at = 0
            for segment, i in enumerate(row, 1):
                example = self.examples[i]
                s, t = len(example.source), len(example.target)
                arrays["inputs"][r, source_at:source_at + s] = example.source
                arrays["input_segments"][r, source_at:source_at + s] = segment
                arrays["targets"][r, target_at:target_at + t] = example.target
                arrays["target_segments"][r, target_at:target_at + t] = segment
                source_at, target_at = source_at + s, target_at + t
        return arrays

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        epoch, index = self.position["epoch"], self.position["index"]
        if index >= self.batches_per_epoch(epoch):
            epoch, index = epoch + 1, 0
        batch = self.batch(epoch, index)
        self.position = {"epoch": epoch, "index": index + 1}
        return batch

    def padding_fraction(self, epoch: int = 0) -> float:
        """Share of input + target slots that are padding over one epoch's full batches."""
        used = sum(len(self.examples[i].source) + len(self.examples[i].target)
                   for row in self.rows(epoch)[: self.batches_per_epoch(epoch) * self.batch_size] for i in row)
        total = self.batches_per_epoch(epoch) * self.batch_size * (self.source_length + self.target_length)
        return 1.0 - used / total
