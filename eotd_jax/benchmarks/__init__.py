"""Loaders for GSM8K, SVAMP, ASDiv and MultiArith: local files in their original
formats, or the Hugging Face hub copies through `datasets`; and the synthetic
source. All return `Problem`s; `load_problems` is the one entry for every source.

    load_problems("synthetic/test_unseen", limit=200)  # `name` or `name/split` (default split: test)
    load("svamp", data_dir="../shared/datasets")
    load("asdiv", data_dir=..., subset="full")       # 2,305 instead of 2,096
    load_from_hub("gsm8k", split="test")
"""

from __future__ import annotations

import os

from eotd_jax.benchmarks import asdiv, gsm8k, multiarith, svamp
from eotd_jax.benchmarks.problem import DatasetFormatError, Problem
from eotd_jax.benchmarks.synthetic import synthetic_problems

__all__ = ["BENCHMARKS", "DATASETS", "DatasetFormatError", "Problem", "load", "load_from_hub", "load_problems"]

BENCHMARKS = {"gsm8k": gsm8k, "svamp": svamp, "asdiv": asdiv, "multiarith": multiarith}
SYNTHETIC = "synthetic"
DATASETS = (SYNTHETIC, *BENCHMARKS)
SYNTHETIC_EVAL_COUNT = 200  # synthetic problems drawn when no limit is given


def load_problems(dataset: str, data_dir: str = "", limit: int = 0, seed: int = 0) -> list[Problem]:
    """The first `limit` (0: all; synthetic: 200) answerable problems of `name` or `name/split` (default: test).

    Synthetic problems are drawn with `seed`; benchmarks are read from `data_dir`.
    """
    name, _, split = dataset.partition("/")
    split = split or "test"
    if name == SYNTHETIC:
        return synthetic_problems(limit or SYNTHETIC_EVAL_COUNT, seed, split)
    if name not in BENCHMARKS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    problems = [p for p in load(name, data_dir, split) if p.answer is not None]
    return problems[:limit] if limit else problems


def _module(name: str):
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def load(name: str, data_dir: str, split: str = "test", subset: str = "standard") -> list[Problem]:
    """Reads a benchmark from `data_dir` laid out as in shared/datasets/README.md.

    `subset` matters for ASDiv only: "standard" (the 2,096 listed IDs) or "full".
    """
    module = _module(name)
    if split not in module.FILES:
        raise ValueError(f"{name} has splits {sorted(module.FILES)}, not {split!r}")
    path = os.path.join(data_dir, module.FILES[split])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}/{split}: no file at {path}")
    if name != "asdiv":
        return module.load(path, split)
    if subset not in ("standard", "full"):
        raise ValueError(f"ASDiv subset must be 'standard' or 'full', not {subset!r}")
    ids_path = os.path.join(data_dir, asdiv.STANDARD_IDS) if subset == "standard" else None
    if ids_path and not os.path.isfile(ids_path):
        raise FileNotFoundError(f"asdiv standard subset: no ID list at {ids_path}")
    return asdiv.load(path, split, ids_path)


def load_from_hub(name: str, split: str = "test", path: str | None = None, config: str | None = None) -> list[Problem]:
    """Loads a hub copy with `datasets.load_dataset` (a hub id or a local directory).

    Without `path`, the usual hub copy is used (e.g. `openai/gsm8k`, config `main`).
    """
    import datasets  # heavy; only this path needs it

    module = _module(name)
    if path is None:
        path, config = module.HUB
    rows = datasets.load_dataset(path, config, split=split)
    return [module.from_hub_row(row, index, split, path) for index, row in enumerate(rows)]
