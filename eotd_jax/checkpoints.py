"""Orbax checkpoints of the training state, the data position and the config, in `<workdir>/checkpoints`
(local or gs://: Orbax goes through epath, which `eotd_jax.paths` sets to fsspec, and tensorstore).

Saves are asynchronous; the last `keep` steps and the `keep_best` steps with
the highest eval accuracy are kept. Restoring gives back exactly the saved
state (sharded as asked) and the position of the input stream. The parameters
and the optimizer state are separate items of a step, so eval and export read
the parameters alone (the Adam moments are twice their size).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from eotd_jax import paths


def make_manager(workdir: str, keep: int, keep_best: int, asynchronous: bool = True) -> ocp.CheckpointManager:
    policies = [checkpoint_managers.LatestN(n=keep)]
    if keep_best:
        policies.append(checkpoint_managers.BestN(get_metric_fn=_accuracy, n=keep_best,
                                                  keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
        best_fn=_accuracy if keep_best else None, best_mode="max",  # without best_fn Orbax drops the metrics
        enable_async_checkpointing=asynchronous, create=True)
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
    """Saves `state` ({params, opt_state, step}; its step is `step`), the input position and the config."""
    manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(state["params"]),
                                               opt_state=ocp.args.StandardSave(state["opt_state"]),
                                               data=ocp.args.JsonSave(position),
                                               config=ocp.args.JsonSave(config)),
                 metrics=metrics, force=force)


def restore(manager: ocp.CheckpointManager, step: int, abstract_state) -> tuple[object, dict]:
    """(state placed like `abstract_state`'s shardings, data position) of a saved step."""
    _check_layout(manager, step)
    restored = manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_state["params"]),
        opt_state=ocp.args.StandardRestore(abstract_state["opt_state"]), data=ocp.args.JsonRestore()))
    step_array = jax.device_put(jnp.int32(step), abstract_state["step"].sharding)
    return {"params": restored["params"], "opt_state": restored["opt_state"], "step": step_array}, restored["data"]


def restore_params(manager: ocp.CheckpointManager, step: int, abstract_params):
    """The parameters of a saved step alone, placed like `abstract_params`'s shardings."""
    _check_layout(manager, step)
    return manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract_params)))["params"]


def _check_layout(manager: ocp.CheckpointManager, step: int) -> None:
    if not (manager.directory / str(step) / "params").exists():
        raise ValueError(f"{manager.directory}/{step} was saved by an older eotd_jax (one 'state' item); "
                         "restore it with that version, or train again")


def restore_config(manager: ocp.CheckpointManager, step: int) -> dict:
    """The training config saved with a step."""
    return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]


def state_shapes(params_shape, optimizer) -> dict:
    """Shapes of the saved training state: {params, opt_state, step}, as the trainer's step function carries it."""
    return {"params": params_shape, "opt_state": jax.eval_shape(optimizer.init, params_shape),
            "step": jax.ShapeDtypeStruct((), jnp.int32)}


def abstract_like(tree, shardings):
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
