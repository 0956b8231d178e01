"""Splitting work over the processes of a run and bringing the results together: eval on a slice or a cluster.

Every process holds the same list; `share` gives each an equal slice (the last ones
padded, so every process runs the same number of decode batches, as SPMD programs must);
`all_gather_json` and `broadcast_json` move JSON-able records between processes through
JAX's own collectives (no shared filesystem needed). With one process they return at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils


def share(count: int, process: int | None = None, processes: int | None = None) -> tuple[range, int]:
    """(the indices of `count` items this process takes, the rows every process decodes: its share, padded)."""
    process = jax.process_index() if process is None else process
    processes = jax.process_count() if processes is None else processes
    per_process = -(-count // processes)
    start = min(process * per_process, count)
    return range(start, min(start + per_process, count)), per_process


def _encoded(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value, ensure_ascii=True).encode("ascii"), np.uint8)


def all_gather_json(items: list) -> list:
    """Every process's `items`, concatenated in process order, on every process."""
    if jax.process_count() == 1:
        return list(items)
    data = _encoded(items)
    sizes = np.asarray(multihost_utils.process_allgather(np.int64(data.size)))
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [item for row, size in zip(gathered, sizes, strict=True)
            for item in json.loads(row[:size].tobytes().decode("ascii"))]


def broadcast_json(value):
    """Process 0's `value` on every process (what it read from a file only it may see)."""
    if jax.process_count() == 1:
        return value
    data = _encoded(value) if jax.process_index() == 0 else np.zeros(0, np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int64(data.size)))
    padded = np.zeros(size, np.uint8)
    padded[:data.size] = data
    return json.loads(np.asarray(multihost_utils.broadcast_one_to_all(padded)).tobytes().decode("ascii"))


def host_rows(array: jax.Array, mesh: jax.sharding.Mesh, spec: Sequence) -> np.ndarray:
    """This process's rows of a global array laid out by `spec` on `mesh` (its process-local data)."""
    local = multihost_utils.global_array_to_host_local_array(array, mesh, jax.sharding.PartitionSpec(*spec))
    return np.asarray(local)
