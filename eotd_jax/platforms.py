"""Keeping libtpu quiet on hosts without TPU chips (libtpu comes with the `tpu` and `dev` extras).

JAX tries every backend it knows on first use, the TPU one included whenever libtpu is installed; on a host that
is not a Cloud TPU VM libtpu fails to find its workers and logs an `E0000 ... INVALID_ARGUMENT` line (and
`Failed to find host bounds ...`) before JAX falls back. Neither is a problem of the run, so:

- `skip_absent_tpu()`: a binary on a host with neither TPU chips nor GPUs starts JAX on the CPU alone;
- `describe_host_to_libtpu()`: before libtpu describes a slice for compiling only (`eotd_jax.aot`), this host
  is named its one worker, which is what it is.

Both leave alone what the environment already says, and hosts with TPU chips.
"""

from __future__ import annotations

import importlib.util
import os

import jax
from jax._src import hardware_utils  # JAX's own test for TPU chips and GPUs (PCI ids under /sys)


def _tpu_chips() -> int:
    return hardware_utils.num_available_tpu_chips_and_device_id()[0]


def skip_absent_tpu() -> None:
    """On a host with libtpu installed but no TPU chip and no GPU, JAX's platforms are `cpu` (unless
    `JAX_PLATFORMS` or `jax_platforms` already say which)."""
    if (os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms or importlib.util.find_spec("libtpu") is None
            or _tpu_chips() or hardware_utils.has_visible_nvidia_gpu() or hardware_utils.num_available_amd_gpus(1)):
        return
    jax.config.update("jax_platforms", "cpu")


def describe_host_to_libtpu() -> None:
    """On a host without TPU chips, tells libtpu (before it loads) that this host is its only worker, so
    describing a slice for ahead-of-time compiles logs no errors; the slice's topology is not changed by it."""
    if _tpu_chips():
        return
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_HOST_BOUNDS", "1,1,1")
