"""A trained student for eval and export: a run directory's checkpoint, or a Hugging Face model directory.

    student = load_student("workdir/quickstart/train", step="best")   # .model, .tokenizer, .student_input, .step
    student = load_student("/models/etd-codet5p-770m-py")             # config.json + weights + tokenizer

A run directory (`eotd_jax.run_dir`) gives the architecture, the tokenizer and
the student input; the checkpoint gives the parameters alone (not the optimizer
state), sharded FSDP-style over every device of the run (`mesh`), so a model that
trained on a slice is evaluated on that slice, or on one host. An HF directory's
student input comes from its `student_input.json` (written by the export), else
the paper's defaults. Both may be local or gs://.
"""

from __future__ import annotations

import dataclasses

import jax
from absl import logging
from flax import nnx
from ml_collections import ConfigDict

from eotd_jax import checkpoints, paths, run_dir
from eotd_jax.input import student_input
from eotd_jax.input.student_input import StudentInput
from eotd_jax.model import build
from eotd_jax.model.hf_io import import_hf
from eotd_jax.model.sharding import make_mesh, param_shardings, shard_model
from eotd_jax.model.t5 import T5
from eotd_jax.tokenizer import Tokenizer, load_tokenizer


@dataclasses.dataclass
class Student:
    model: T5
    tokenizer: Tokenizer
    student_input: StudentInput  # the input template and selectors it was trained with
    step: int | None  # the checkpoint's step; None for a Hugging Face directory
    config: ConfigDict | None  # the training config; None for a Hugging Face directory


def is_hf_model_dir(path: str) -> bool:
    directory = paths.path(path)
    return (directory / "config.json").is_file() and not (directory / run_dir.MODEL).is_file() \
        and not (directory / "checkpoints").is_dir()


def checkpoint_step(manager, which: str) -> int:
    """`which` is latest, best (highest in-training eval accuracy; latest when none was measured) or a step."""
    steps = manager.all_steps()
    if not steps:
        raise FileNotFoundError(f"{manager.directory}: no checkpoint (and not a Hugging Face model directory)")
    if which == "best" and manager.best_step() is None:
        logging.warning("no checkpoint of %s was scored by an in-training eval (config.eval.every_steps); "
                        "--step=best takes the latest, step %d", manager.directory, manager.latest_step())
        which = "latest"
    step = {"latest": manager.latest_step(), "best": manager.best_step()}.get(which)
    if step is None and not which.isdigit():
        raise ValueError(f"checkpoint step must be latest, best or a step number, not {which!r}")
    step = step if step is not None else int(which)
    if step not in steps:
        raise FileNotFoundError(f"{manager.directory}: no checkpoint at step {step}; saved: {sorted(steps)}")
    return step


def load_student(directory: str, step: str = "latest", mesh: jax.sharding.Mesh | None = None) -> Student:
    """The student of a Hugging Face directory or of one checkpoint of a run directory, its parameters sharded
    over `mesh` (default: every device of the run, FSDP)."""
    mesh = mesh if mesh is not None else make_mesh((1, -1, 1))
    if is_hf_model_dir(directory):
        _, model = import_hf(directory)
        return Student(shard_model(model, mesh), load_tokenizer(directory), student_input.load(directory), None, None)
    if not paths.path(directory).is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    files = run_dir.read(directory)
    manager = checkpoints.make_manager(directory, keep=1, keep_best=1, asynchronous=False)
    try:
        chosen = checkpoint_step(manager, step)
        graphdef, state = build.abstract_model(files.model_config)
        params = checkpoints.restore_params(manager, chosen, checkpoints.abstract_like(
            nnx.to_pure_dict(state), param_shardings(state, mesh)))
    finally:
        manager.close()
    logging.warning("loaded step %d of %s", chosen, directory)
    return Student(nnx.merge(graphdef, params), files.tokenizer, files.student_input, chosen, files.config)
