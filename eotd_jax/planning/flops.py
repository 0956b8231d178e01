"""The FLOPs of a program as the planner and the trainer's MFU count them: its matrix multiplies, 2 per multiply-add,
a scanned body once per iteration (XLA's cost analysis counts a loop body once, so it cannot count a model whose
layers are scanned; and it gives no count on GPUs)."""

from __future__ import annotations

import jax
import jax.extend
import numpy as np


def matmul_flops(jaxpr: jax.core.Jaxpr) -> float:
    """The matrix-multiply FLOPs of a program (`traced.jaxpr.jaxpr` of a jitted function), every scan iteration
    counted; a remat'd region's recomputation counts as the work it is."""
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * np.prod(eqn.outvars[0].aval.shape, dtype=float) * np.prod([lhs[d] for d in contracting])
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += matmul_flops(sub) * (eqn.params["length"] if eqn.primitive.name == "scan" else 1)
    return total
