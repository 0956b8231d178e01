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
        self._lengths = np.array([(len(e.source), len(e.target)) for e in examples], np.int64)
        self._rows: tuple[int, list[list[int]]] | None = None

    def rows(self, epoch: int) -> list[list[int]]:
        """Example indices of every row of an epoch, best-fit packed (the open row left fullest) in a seeded
        random order; the open rows' fill is one array, so each example's fit is a few vector operations."""
        if self._rows is None or self._rows[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
            limits = np.array([self.source_length, self.target_length])
            used = np.zeros((_OPEN_ROWS, 2), np.int64)  # source and target tokens of each open row
            closed, members = [], []  # members[r]: the example indices of open row r
            for i in order:
                need = self._lengths[i]
                room = (1 - (used[:len(members)] + need) / limits).min(axis=1)  # free share on the fuller side
                room[room < 0] = np.inf  # over a limit: no fit
                r = int(room.argmin()) if len(members) else None  # best fit: the least room left
                if r is None or room[r] == np.inf:
                    if len(members) == _OPEN_ROWS:  # close the fullest row
                        fullest = int(np.argmin(np.min(1 - used / limits, axis=1)))
                        closed.append(members.pop(fullest))
                        used[fullest:-1] = used[fullest + 1:].copy()
                    r = len(members)
                    members.append([])
                    used[r] = 0
                used[r] += need
                members[r].append(int(i))
            closed.extend(members)
            self._rows = (epoch, closed)
        return self._rows[1]

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
