"""One pass over a training config before any work: every field's type and range, the fields' consistency, the
thoughts each data dir holds, and the places the run writes.

    validation.check_training(config, workdir)   # the trainer, before it takes the workdir
    validation.check_fields(config)              # eotd_jax.aot, which reads no data and writes nothing

Every problem found is reported together, one line each, `<what> (<how to fix>)`, in one ConfigError. The
checks that need the devices (the mesh, the batch split over them) or the model stay with the trainer.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import uuid
from collections.abc import Callable

from ml_collections import ConfigDict

from eotd_jax import cli, paths
from eotd_jax.benchmarks import DATASETS
from eotd_jax.configs import default
from eotd_jax.input import records
from eotd_jax.thoughts import THOUGHTS


class ConfigError(cli.Error, ValueError):
    """A config that cannot work, found before anything is compiled; one problem a line."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\nerror: ".join(self.problems))


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number field may take, said as `requirement` (with `why` when it is not obvious)."""

    test: Callable[[float], bool]
    requirement: str
    why: str = ""


def at_least(minimum: int) -> Range:
    return Range(lambda value: value >= minimum, f"at least {minimum}")


def fraction(upper_open: bool = False) -> Range:
    if upper_open:
        return Range(lambda value: 0 <= value < 1, "in [0, 1)")
    return Range(lambda value: 0 <= value <= 1, "in [0, 1]")


RANGES: dict[str, Range] = {
    "log_every_steps": at_least(1),
    "data.source_length": at_least(2),
    "data.target_length": at_least(2),
    "train.per_device_batch_size": at_least(0),
    "train.steps": at_least(1),
    "train.learning_rate": Range(lambda value: 0 < value < math.inf, "a positive number"),
    "train.warmup_steps": at_least(0),
    "train.final_lr_fraction": fraction(),
    "train.weight_decay": at_least(0),
    "train.adam_b1": fraction(upper_open=True),
    "train.adam_b2": fraction(upper_open=True),
    "train.max_grad_norm": at_least(0),
    "train.grad_accum_steps": at_least(1),
    "train.peak_flops_per_device": at_least(0),
    "eval.every_steps": at_least(0),
    "eval.limit": at_least(0),
    "eval.max_new_tokens": at_least(1),
    "eval.batch_size": at_least(1),
    "eval.workers": at_least(0),
    "checkpoint.every_steps": at_least(1),
    "checkpoint.keep": Range(lambda value: value >= 1, "at least 1", "the latest checkpoint is always kept"),
    "checkpoint.keep_best": at_least(0),
}
SCHEDULES = ("cosine", "linear", "constant")


def check_fields(config: ConfigDict) -> None:
    """Raises ConfigError listing every field of the wrong type or out of range, unknown fields, and fields that
    contradict each other."""
    problems = _field_problems(config)
    if problems:
        raise ConfigError(problems)


def check_training(config: ConfigDict, workdir: str) -> None:
    """`check_fields`, the thoughts each data dir holds (from its manifest), and the writability of the workdir
    and the compilation cache; raises ConfigError listing every problem."""
    problems = _field_problems(config)
    if not problems:  # the data and the outputs are read from fields known to be sound
        problems += _data_problems(config) + _output_problems(config, workdir)
    if problems:
        raise ConfigError(problems)


def _field_problems(config: ConfigDict) -> list[str]:
    problems = []
    known = {name for name, _, _ in default.FIELDS}
    for name in _leaf_names(config, known):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            problems.append(f"config.{name} is not a training field ({f'did you mean {close[0]}? ' if close else ''}"
                            "eotd_jax/configs/default.py lists every field)")
    for name, default_value, _ in default.FIELDS:
        value = _get(config, name)
        if value is _MISSING:
            problems.append(f"config.{name} is missing (start the config from eotd_jax/configs/default.py's "
                            "get_config())")
        elif not _same_type(value, default_value):
            problems.append(f"config.{name} is {value!r}, a {type(value).__name__}; it must be a "
                            f"{type(default_value).__name__} (like its default, {default_value!r})")
    if problems:  # the checks below read the fields as their types
        return problems
    for name, bound in RANGES.items():
        value = _get(config, name)
        if not bound.test(value):
            problems.append(f"config.{name} is {value!r}; it must be {bound.requirement}"
                            f"{': ' + bound.why if bound.why else ''} (pass --config.{name}=<{bound.requirement}>)")
    train = config.train
    if train.per_device_batch_size == 0 and train.batch_size < 1:
        problems.append(f"config.train.batch_size is {train.batch_size}; it must be at least 1 (pass "
                        "--config.train.batch_size=<rows per step>, or set config.train.per_device_batch_size)")
    if train.schedule not in SCHEDULES:
        problems.append(f"config.train.schedule is {train.schedule!r} (use one of {', '.join(SCHEDULES)})")
    for number, source in enumerate(_sources(config)):
        problems += _source_problems(config, number, source)
    if config.eval.thoughts:
        problems += _thought_problems("config.eval.thoughts", config.eval.thoughts)
    if config.eval.every_steps:
        unknown = [d for d in config.eval.datasets.split(",") if d.split("/", 1)[0] not in DATASETS]
        if unknown or not config.eval.datasets:
            problems.append(f"config.eval.datasets: unknown {', '.join(unknown) or '(none given)'} (choose from "
                            f"{', '.join(DATASETS)}, each optionally /split; or config.eval.every_steps=0)")
    return problems


def _source_problems(config: ConfigDict, number: int, source) -> list[str]:
    where = f"config.data.sources[{number}]" if config.data.sources else "config.data"
    if not isinstance(source, (dict, ConfigDict)) or not isinstance(source.get("dir"), str) or not source["dir"]:
        return [f"{where} needs a data dir (a mapping with 'dir', 'weight' and 'thoughts')"]
    problems = _thought_problems(f"{where}.thoughts" if config.data.sources else "config.data.thoughts",
                                 source.get("thoughts") or "")
    weight = source.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 < weight < math.inf:
        problems.append(f"{where}.weight is {weight!r}; it must be a positive number (1.0: every example once an "
                        "epoch)")
    return problems


def _thought_problems(where: str, spec: str) -> list[str]:
    asked = [t.strip() for t in spec.split(",")]
    unknown = [t for t in asked if t not in THOUGHTS]
    if unknown:
        return [f"{where} is {spec!r}: {', '.join(repr(t) for t in unknown)} is no thought (a comma list of "
                f"{', '.join(THOUGHTS)})"]
    return []


def _data_problems(config: ConfigDict) -> list[str]:
    """Each data dir's manifest (where it has one) lists the thoughts the config asks of it; a missing dir is the
    trainer's to say, after the config's requirements of the machine."""
    problems = []
    for source in _sources(config):
        directory = source["dir"]
        if not paths.path(directory).is_dir():
            continue
        try:
            manifest = records.read_manifest(directory)
        except ValueError as error:
            problems.append(str(error))
            continue
        if manifest is None or not source.get("thoughts"):  # hand-made shards: the pipeline checks the records
            continue
        asked = [t.strip() for t in source["thoughts"].split(",")]
        held = records.held_thoughts(manifest)
        missing = [t for t in asked if t not in held]
        if missing:
            problems.append(f"the config asks for {','.join(asked)} rationales, but {directory} holds "
                            f"{','.join(held) or 'none'} (its {records.MANIFEST}), so there is no {', '.join(missing)} "
                            f"to train on (train on --config.data.thoughts={','.join(held)}, or build the rest with "
                            f"python -m data_gen.build --thoughts={','.join(missing)})")
    return problems


def _output_problems(config: ConfigDict, workdir: str) -> list[str]:
    places = {"--workdir": workdir}
    cache = config.compilation_cache_dir.replace("{workdir}", workdir)
    if cache:
        places["config.compilation_cache_dir"] = cache
    return [problem for name, place in places.items() if (problem := _unwritable(name, place))]


def _unwritable(name: str, place: str) -> str:
    """"" when a file can be written in the directory `place` (made if missing), else the problem."""
    probe = paths.path(place) / f".write-probe-{uuid.uuid4().hex}"
    try:
        paths.path(place).mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        return f"{name} {place} is not writable: {error.strerror or error} (pick a directory this user can write)"
    return ""


def _sources(config: ConfigDict) -> list:
    if config.data.sources:
        return list(config.data.sources)
    return [{"dir": config.data.dir, "weight": 1.0, "thoughts": config.data.thoughts}]


_MISSING = object()


def _get(config: ConfigDict, name: str):
    node = config
    for part in name.split("."):
        if not isinstance(node, (ConfigDict, dict)) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaf_names(config: ConfigDict, known: set[str], prefix: str = "") -> list[str]:
    """Dotted names of the config's fields; a field known as a whole (a mapping like model_overrides) is one."""
    names = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, ConfigDict) and name not in known:
            names += _leaf_names(value, known, f"{name}.")
        else:
            names.append(name)
    return names


def _same_type(value, default_value) -> bool:
    if isinstance(default_value, bool):
        return isinstance(value, bool)
    if isinstance(default_value, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default_value, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default_value, str):
        return isinstance(value, str)
    if isinstance(default_value, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default_value, dict):
        return isinstance(value, (dict, ConfigDict))
    return True
