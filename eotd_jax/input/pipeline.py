"""Shards -> tokenized examples -> packed batches: the trainer's whole input side.

A config's `data.sources` lists datasets with a weight and the thoughts to
keep, e.g. ETD = one source with thoughts cot,pot,eot; a weight of 2.0 puts
every example of that source in each epoch twice, 0.5 a seeded half of them.
"""

from __future__ import annotations

import numpy as np

from eotd_jax.input.packing import PackedBatches, TokenizedExample
from eotd_jax.input.records import read_records
from eotd_jax.input.student_input import StudentInput
from eotd_jax.tokenizer import Tokenizer


def tokenize(records: list[dict], tokenizer: Tokenizer, source_length: int, target_length: int,
             student_input: StudentInput) -> list[TokenizedExample]:
    """Source: the question with its thought's selector; target: the rationale; both in the tokenizer's template."""
    sources = tokenizer.encode_batch([student_input.text(r["question"], r["thought"]) for r in records],
                                     source_length)
    targets = tokenizer.encode_batch([r["rationale"] for r in records], target_length)
    return [TokenizedExample(np.asarray(s, np.int32), np.asarray(t, np.int32))
            for s, t in zip(sources, targets, strict=True)]


def mixture(sources: list[dict], seed: int) -> list[dict]:
    """Records of all sources, each repeated / subsampled by its weight."""
    records = []
    for number, source in enumerate(sources):
        thoughts = tuple(t.strip() for t in source["thoughts"].split(",")) if source.get("thoughts") else None
        found = read_records(source["dir"], thoughts)
        held = {r["thought"] for r in found}
        missing = [t for t in thoughts or () if t not in held]
        if missing:
            raise ValueError(f"data dir {source['dir']} holds no {', '.join(missing)} rationales (train on the "
                             "thoughts it holds, or build the others with python -m data_gen.build --thoughts=...)")
        weight = float(source.get("weight", 1.0))
        whole, fraction = int(weight), weight - int(weight)
        records.extend(found * whole)
        if fraction:
            keep = np.random.default_rng([seed, number]).permutation(len(found))[: round(fraction * len(found))]
            records.extend(found[i] for i in sorted(keep))
    return records


def make_batches(sources: list[dict], tokenizer: Tokenizer, batch_size: int, source_length: int,
                 target_length: int, seed: int, process_index: int = 0, process_count: int = 1,
                 student_input: StudentInput | None = None) -> PackedBatches:
    examples = tokenize(mixture(sources, seed), tokenizer, source_length, target_length,
                        student_input or StudentInput())
    return PackedBatches(examples, batch_size, source_length, target_length, seed, process_index, process_count)
