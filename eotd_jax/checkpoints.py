"""Orbax checkpoints of the training state, the data position and the config, in `<workdir>/checkpoints`
(local or gs://: Orbax goes through epath, which `eotd_jax.paths` sets to fsspec, and tensorstore).

Saves are asynchronous; the last `keep` steps and the `keep_best` steps with
the highest eval accuracy are kept. Restoring gives back exactly the saved
state (sharded as asked) and the position of the input stream. The parameters
and the optimizer state are separate items of a step, so eval and export read
the parameters alone (the Adam moments are twice their size).

Failures are one line (`CheckpointError`), never Orbax's tracebacks: a save that failed, in the background or
not (a full disk), stops the run at the next save; a damaged latest step is set aside as `<step>.damaged` and
the run resumes from the step before, saying so; checkpoints of another model are refused by their shapes.
"""

from __future__ import annotations

import logging as python_logging
import os
import sys

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint import checkpoint_managers

from eotd_jax import cli, paths

DAMAGED_SUFFIX = ".damaged"  # a step set aside by `restore_latest`; Orbax lists only integer names
_NOT_DAMAGE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED")


class CheckpointError(cli.Error):
    """A save or a restore that cannot be done, said in one line."""


class _OrbaxTracebacks(python_logging.Filter):
    """Drops the tracebacks of a failed save: Orbax's threads log them (absl), and asyncio logs the exceptions
    of the save's other writes when their tasks are collected; the failure reaches the caller, which says it in
    one line (a full disk logged one per thread and array, dozens)."""

    def filter(self, record: python_logging.LogRecord) -> bool:
        if record.name == "asyncio":
            return "orbax" not in record.getMessage()
        return not (record.exc_info and "orbax" in record.pathname)


def _quiet_closed_loops(unraisable) -> None:
    """sys.unraisablehook: drops the "Event loop is closed" of tensorstore finishing a write for a save that
    Orbax gave up on (it closed that save's event loop at the first failure); the rest goes to Python's hook."""
    if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"):
        sys.__unraisablehook__(unraisable)


def _quiet_failed_saves() -> None:
    for name in ("absl", "asyncio"):
        logger = python_logging.getLogger(name)
        if not any(isinstance(f, _OrbaxTracebacks) for f in logger.filters):
            logger.addFilter(_OrbaxTracebacks())
    sys.unraisablehook = _quiet_closed_loops


def make_manager(workdir: str, keep: int, keep_best: int, asynchronous: bool = True) -> ocp.CheckpointManager:
    policies = [checkpoint_managers.LatestN(n=keep)]
    if keep_best:
        policies.append(checkpoint_managers.BestN(get_metric_fn=_accuracy, n=keep_best,
                                                  keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
        best_fn=_accuracy if keep_best else None, best_mode="max",  # without best_fn Orbax drops the metrics
        enable_async_checkpointing=asynchronous, create=True)
    _quiet_failed_saves()
    return _Manager(os.fspath(paths.path(paths.absolute(workdir)) / "checkpoints"), options=options)


class _Manager(ocp.CheckpointManager):
    """Orbax's manager without its own calls to JAX's preemption sync point.

    `eotd_jax.preemption` numbers those calls (each training step, each eval batch); a save that called it
    with its step number would reset the count the sync protocol reads, and no process would reach the point.
    """

    def reached_preemption(self, step: int) -> bool:
        return False


def _accuracy(metrics: dict) -> float:
    return metrics["accuracy"]


def save(manager: ocp.CheckpointManager, step: int, state, position: dict, config: dict,
         metrics: dict | None = None, force: bool = False) -> None:
    """Saves `state` ({params, opt_state, step}; its step is `step`), the input position and the config.

    Raises CheckpointError for this save or an earlier background one that failed."""
    try:
        manager.check_for_errors()
        manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(state["params"]),
                                                   opt_state=ocp.args.StandardSave(state["opt_state"]),
                                                   data=ocp.args.JsonSave(position),
                                                   config=ocp.args.JsonSave(config)),
                     metrics=metrics, force=force)
    except Exception as error:  # noqa: BLE001  Orbax and tensorstore raise anything; the run stops on each
        raise _save_failed(manager, error) from None


def close(manager: ocp.CheckpointManager) -> None:
    """Waits for the background save and closes the manager; CheckpointError if that save failed."""
    try:
        manager.wait_until_finished()
        manager.check_for_errors()
    except Exception as error:  # noqa: BLE001
        raise _save_failed(manager, error) from None
    finally:
        manager.close()


def _save_failed(manager: ocp.CheckpointManager, error: Exception) -> CheckpointError:
    manager.reload()  # the failed step is not a checkpoint
    message = _first_line(error)
    if "RESOURCE_EXHAUSTED" in message or "No space left" in message:
        message = f"no space left on the device ({message[:200]})"
    resume = (f"the run resumes from step {manager.latest_step()}" if manager.latest_step() is not None
              else "no checkpoint was saved yet")
    return CheckpointError(f"saving a checkpoint to {manager.directory} failed: {message} (fix that, then run "
                           f"the same command again: {resume})")


def restore_latest(manager: ocp.CheckpointManager, abstract_state) -> tuple[int, object, dict] | None:
    """(step, state, data position) of the newest step that restores, placed like `abstract_state`; None when
    there is no checkpoint. A damaged step is renamed `<step>.damaged`, with a warning, and the one before it
    is tried; checkpoints of another model (other parameter shapes) are a CheckpointError."""
    damaged = []
    for step in sorted(manager.all_steps(), reverse=True):
        _check_same_model(manager, step, abstract_state["params"])
        try:
            return (step, *restore(manager, step, abstract_state))
        except Exception as error:  # noqa: BLE001  a damaged step fails in tensorstore, Orbax or JSON
            message = _first_line(error)
            if any(status in message for status in _NOT_DAMAGE):
                raise CheckpointError(f"cannot read step {step} of {manager.directory}: {message} (check access "
                                      "to it and run the same command again)") from None
            _set_aside(manager, step, message)
            damaged.append(step)
    if damaged:
        raise CheckpointError(f"every checkpoint in {manager.directory} is damaged (steps {damaged}, set aside as "
                              f"<step>{DAMAGED_SUFFIX}) (train afresh in another --workdir)")
    return None


def restore(manager: ocp.CheckpointManager, step: int, abstract_state) -> tuple[object, dict]:
    """(state placed like `abstract_state`'s shardings, data position) of a saved step."""
    restored = manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_state["params"]),
        opt_state=ocp.args.StandardRestore(abstract_state["opt_state"]), data=ocp.args.JsonRestore()))
    step_array = jax.device_put(jnp.int32(step), abstract_state["step"].sharding)
    return {"params": restored["params"], "opt_state": restored["opt_state"], "step": step_array}, restored["data"]


def _check_same_model(manager: ocp.CheckpointManager, step: int, abstract_params) -> None:
    """CheckpointError when the saved parameters' names or shapes are not those of `abstract_params`."""
    try:
        saved = _shapes(ocp.StandardCheckpointHandler().metadata(manager.directory / str(step) / "params"))
    except Exception:  # noqa: BLE001  unreadable metadata: the restore finds the step damaged
        return
    wanted = _shapes(abstract_params)
    if saved == wanted:
        return
    differing = sorted(name for name in saved.keys() & wanted.keys() if saved[name] != wanted[name])
    if differing:
        what = f"{differing[0]} is {saved[differing[0]]} there and {wanted[differing[0]]} in this config"
    else:
        only = sorted(saved.keys() ^ wanted.keys())[0]
        what = f"{only} is {'only in the checkpoints' if only in saved else 'only in this config'}"
    raise CheckpointError(f"{manager.directory} holds checkpoints of another model: {what} (use the model that run "
                          "was trained with, or another --workdir for this one)")


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(key, "key", key)) for key in path): tuple(leaf.shape) for path, leaf in leaves}


def _set_aside(manager: ocp.CheckpointManager, step: int, message: str) -> None:
    """Renames a damaged step `<step>.damaged` (kept for a look, out of Orbax's listing) and says so."""
    directory = manager.directory / str(step)
    target = directory.parent / f"{step}{DAMAGED_SUFFIX}"
    for number in range(1, 100):  # a step damaged again after an earlier one was set aside
        if not target.exists():
            break
        target = directory.parent / f"{step}{DAMAGED_SUFFIX}.{number}"
    if jax.process_index() == 0:
        directory.rename(target)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"checkpoint {step} set aside")
    manager.reload()
    fallback = max((s for s in manager.all_steps() if s < step), default=None)
    logging.warning("checkpoint step %d is damaged (%s); moved it to %s and %s", step, message, target,
                    f"resuming from step {fallback}" if fallback is not None else "no step is left")


def _first_line(error: BaseException) -> str:
    """The first line of the innermost cause (Orbax wraps tensorstore's precise message in vaguer ones)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = lines[0].split(" [tensorstore_spec", 1)[0] if lines else type(error).__name__
    return line if len(line) <= 400 else line[:400] + " ..."


def restore_params(manager: ocp.CheckpointManager, step: int, abstract_params):
    """The parameters of a saved step alone, placed like `abstract_params`'s shardings."""
    _check_same_model(manager, step, abstract_params)
    try:
        return manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract_params)))["params"]
    except Exception as error:  # noqa: BLE001  a damaged step fails in tensorstore or Orbax
        raise CheckpointError(f"step {step} of {manager.directory} cannot be read: {_first_line(error)} (pick "
                              f"another of the saved steps {sorted(manager.all_steps())})") from None


def restore_config(manager: ocp.CheckpointManager, step: int) -> dict:
    """The training config saved with a step."""
    return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]


def state_shapes(params_shape, optimizer) -> dict:
    """Shapes of the saved training state: {params, opt_state, step}, as the trainer's step function carries it."""
    return {"params": params_shape, "opt_state": jax.eval_shape(optimizer.init, params_shape),
            "step": jax.ShapeDtypeStruct((), jnp.int32)}


def abstract_like(tree, shardings):
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
