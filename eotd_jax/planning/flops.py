"""The FLOPs of a program as the planner and the trainer's MFU count them: its matrix multiplies, 2 per multiply-add,
a scanned body once per iteration (XLA's cost analysis counts a loop body once, so it cannot count a model whose
layers are scanned; and it gives no count on GPUs)."""

from __future__ import annotations

import collections

import jax
import jax.extend
import numpy as np


def dot_generals(jaxpr: jax.core.Jaxpr) -> collections.Counter:
    """{(lhs shape, rhs shape, dimension numbers): how often the program runs it} of a program's `dot_general`s,
    every scan iteration counted; a remat'd region's recomputation counts as the work it is."""
    found = collections.Counter()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found[eqn.invars[0].aval.shape, eqn.invars[1].aval.shape, eqn.params["dimension_numbers"]] += 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            for dot, count in dot_generals(sub).items():
                found[dot] += count * (eqn.params["length"] if eqn.primitive.name == "scan" else 1)
    return found


def matmul_flops(jaxpr: jax.core.Jaxpr) -> float:
    """The matrix-multiply FLOPs of a program (`traced.jaxpr.jaxpr` of a jitted function)."""
    total = 0.0
    for (lhs, rhs, ((_, rhs_contracting), (_, rhs_batch))), count in dot_generals(jaxpr).items():
        # 2 x (batch x lhs free x contracting) x rhs free: every lhs element meets every rhs free element
        rhs_free = np.prod([n for d, n in enumerate(rhs) if d not in (*rhs_contracting, *rhs_batch)], dtype=float)
        total += 2 * count * np.prod(lhs, dtype=float) * rhs_free
    return total
