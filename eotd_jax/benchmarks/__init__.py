"""Loaders for GSM8K, SVAMP, ASDiv and MultiArith: files in their original formats (local or gs://), or
hub copies through `datasets` (the hub itself, or copies kept anywhere); and the synthetic source. All
return `Problem`s; `load_problems` is the one entry for every source.

    load_problems("synthetic/test_unseen", limit=200)  # `name` or `name/split` (default split: test)
    load_problems("synthetic/two_unknowns/test_compositional")  # synthetic: `synthetic[/family][/split]`
    load("svamp", data_dir="../shared/datasets")
    load("asdiv", data_dir="gs://bucket/benchmarks", subset="full")   # 2,305 instead of 2,096
    load_from_hub("gsm8k", split="test")
    load_from("hub:/data/hub_copies", "gsm8k")                        # /data/hub_copies/gsm8k
"""

from __future__ import annotations

from eotd_jax import paths
from eotd_jax.benchmarks import asdiv, gsm8k, multiarith, svamp
from eotd_jax.benchmarks.problem import DatasetFormatError, Problem
from eotd_jax.benchmarks.synthetic_families import family_problems, parse_dataset

__all__ = ["BENCHMARKS", "DATASETS", "HUB_SOURCE", "DatasetFormatError", "Problem", "load", "load_from",
           "load_from_hub", "load_problems"]

BENCHMARKS = {"gsm8k": gsm8k, "svamp": svamp, "asdiv": asdiv, "multiarith": multiarith}
HUB_SOURCE = "hub"
SYNTHETIC = "synthetic"
DATASETS = (SYNTHETIC, *BENCHMARKS)
SYNTHETIC_EVAL_COUNT = 200  # synthetic problems drawn when no limit is given


def load_problems(dataset: str, data_dir: str = "", limit: int = 0, seed: int = 0) -> list[Problem]:
    """The first `limit` (0: all; synthetic: 200) answerable problems of `name` or `name/split` (default: test).

    Synthetic problems are drawn with `seed`, from the family `synthetic/<family>/<split>` names (default:
    forward, whose splits are also `synthetic/<split>`); benchmarks are read from `data_dir` (a directory,
    local or gs://, `hub` or `hub:<dir>`: see `load_from`).
    """
    name, _, split = dataset.partition("/")
    if name == SYNTHETIC:
        family, split = parse_dataset(split)
        return family_problems(family, limit or SYNTHETIC_EVAL_COUNT, seed, split)
    split = split or "test"
    if name not in BENCHMARKS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    problems = [p for p in load_from(data_dir, name, split) if p.answer is not None]
    return problems[:limit] if limit else problems


def _module(name: str):
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def load_from(source: str, name: str, split: str = "test") -> list[Problem]:
    """A benchmark from wherever `source` says (the eval binary's `--data_dir`, the trainer's `eval.data_dir`):

    a directory in the original layout, local or gs:// (`load`); `hub`: its usual hub copy (`load_from_hub`);
    `hub:<dir>`: a hub-format copy at `<dir>/<name>`, local or gs:// (what `save_to_disk` writes, or a
    downloaded hub repository). A directory holding such a saved copy at `<dir>/<name>` is read as one
    (what `python -m eotd_jax.stage_benchmarks --source=hub` stages).
    """
    if source == HUB_SOURCE:
        return load_from_hub(name, split)
    if source.startswith(HUB_SOURCE + ":"):
        return load_from_hub(name, split, path=f"{source[len(HUB_SOURCE) + 1:].rstrip('/')}/{name}")
    staged = paths.path(source) / name
    if (staged / "dataset_dict.json").is_file() or (staged / "state.json").is_file():  # stage_benchmarks --source=hub
        return load_from_hub(name, split, path=str(staged))
    return load(name, source, split)


def load(name: str, data_dir: str, split: str = "test", subset: str = "standard") -> list[Problem]:
    """Reads a benchmark from `data_dir` (local or gs://) laid out as in shared/datasets/README.md.

    `subset` matters for ASDiv only: "standard" (the 2,096 problems of the ID list beside the file,
    `asdiv/standard_2096_ids.txt`, else of the list shipped in this package) or "full".
    """
    module = _module(name)
    if split not in module.FILES:
        raise ValueError(f"{name} has splits {sorted(module.FILES)}, not {split!r}")
    path = paths.path(data_dir) / module.FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"{name}/{split}: no file at {path}")
    if name != "asdiv":
        return module.load(str(path), split)
    if subset not in ("standard", "full"):
        raise ValueError(f"ASDiv subset must be 'standard' or 'full', not {subset!r}")
    if subset == "full":
        return asdiv.load(str(path), split)
    beside = paths.path(data_dir) / asdiv.STANDARD_IDS
    return asdiv.load(str(path), split, str(beside) if beside.is_file() else asdiv.packaged_standard_ids())


def load_from_hub(name: str, split: str = "test", path: str | None = None, config: str | None = None) -> list[Problem]:
    """Loads a hub copy through `datasets`: the usual hub id, or a copy at `path` (local or gs://).

    Without `path`, the usual hub copy is used (e.g. `openai/gsm8k`, config `main`). A `path` holds what
    `save_to_disk` wrote (a Dataset or a DatasetDict), or files `datasets.load_dataset` reads (a downloaded
    hub repository, JSON lines, parquet).
    """
    import datasets  # heavy; only this path needs it

    module = _module(name)
    if path is None:
        path, config = module.HUB
        return _problems(module, datasets.load_dataset(path, config, split=module.HUB_SPLITS.get(split, split)),
                         split, path)
    with paths.local_copy(path) as local:
        directory = paths.path(local)
        if (directory / "dataset_dict.json").is_file() or (directory / "state.json").is_file():
            rows = datasets.load_from_disk(local)
            if isinstance(rows, datasets.DatasetDict):
                if split not in rows:
                    raise ValueError(f"{path}: no split {split!r}; it has {', '.join(rows)}")
                rows = rows[split]
        else:
            rows = datasets.load_dataset(local, config, split=split)
        return _problems(module, rows, split, path)


def _problems(module, rows, split: str, path: str) -> list[Problem]:
    return [module.from_hub_row(row, index, split, path) for index, row in enumerate(rows)]
