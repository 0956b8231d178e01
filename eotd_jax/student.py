"""A trained student for eval and export: a training workdir's checkpoint, or a Hugging Face model directory.

    student = load_student("workdir/quickstart/train", step="best")   # .model, .tokenizer, .student_input, .step
    student = load_student("/models/etd-codet5p-770m-py")             # config.json + weights + tokenizer

A workdir's config comes from the checkpoint itself unless one is given; the
student's input template and selectors come with it (an HF directory's from
its `student_input.json`, written by the export, else the paper's defaults).
Only the parameters are read (not the optimizer state), sharded FSDP-style over
every local device, so a model that trained on a slice fits one host. Both may
be local or gs://.
"""

from __future__ import annotations

import dataclasses

import jax
from absl import logging
from flax import nnx
from ml_collections import ConfigDict

from eotd_jax import checkpoints, paths
from eotd_jax.input import student_input
from eotd_jax.input.student_input import StudentInput
from eotd_jax.model.hf_io import import_hf
from eotd_jax.model.sharding import make_mesh, param_shardings
from eotd_jax.model.t5 import T5
from eotd_jax.tokenizer import Tokenizer, load_tokenizer
from eotd_jax.trainer import model_and_params, pretrained_dir


@dataclasses.dataclass
class Student:
    model: T5
    tokenizer: Tokenizer
    student_input: StudentInput  # the input template and selectors it was trained with
    step: int | None  # the checkpoint's step; None for a Hugging Face directory


def is_hf_model_dir(path: str) -> bool:
    return (paths.path(path) / "config.json").is_file() and not (paths.path(path) / "checkpoints").is_dir()


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


def load_student(checkpoint_dir: str, config: ConfigDict | None = None, step: str = "latest") -> Student:
    """The model and tokenizer of a Hugging Face directory or of one checkpoint of a workdir (params sharded)."""
    if is_hf_model_dir(checkpoint_dir):
        _, model = import_hf(checkpoint_dir)
        return Student(model, load_tokenizer(checkpoint_dir), student_input.load(checkpoint_dir), None)
    if not paths.path(checkpoint_dir).is_dir():
        raise FileNotFoundError(f"{checkpoint_dir}: no such directory")
    manager = checkpoints.make_manager(checkpoint_dir, keep=1, keep_best=1, asynchronous=False)
    try:
        chosen = checkpoint_step(manager, step)
        config = config if config is not None else ConfigDict(checkpoints.restore_config(manager, chosen))
        _, graphdef, state, _ = model_and_params(config)
        shardings = param_shardings(state, make_mesh((1, -1, 1), jax.local_devices()))
        params = checkpoints.restore_params(manager, chosen,
                                            checkpoints.abstract_like(nnx.to_pure_dict(state), shardings))
    finally:
        manager.close()
    logging.warning("loaded step %d of %s", chosen, checkpoint_dir)
    tokenizer = load_tokenizer(config.tokenizer or pretrained_dir(config) or "byte")
    return Student(nnx.merge(graphdef, params), tokenizer, StudentInput.from_config(config), chosen)
