"""Accelerator slices by name (`v5e-16`, `v4-8`, raw `v5e:4x4`, `h100-8`): their chips' memory and peak, and devices.

The devices are compile-only: libtpu describes a TPU topology, and the CUDA
PJRT plugin describes H100s from a target config, so a CPU host can compile
programs for a slice it does not have (`eotd_jax.aot`). Names follow Cloud
TPU: v4 and v5p count TensorCores (v4-8 is 4 chips, each one JAX device in
megacore mode), v5e and v6e count chips; `h100-N` is N GPUs on one host.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re

GIB = 2**30


class SliceError(ValueError):
    """An unknown slice name, or no libtpu to describe it."""


@dataclasses.dataclass(frozen=True)
class Chip:
    generation: str
    hbm_bytes: int  # what libtpu offers a program ("available HBM" in its out-of-memory error), not the spec sheet
    peak_flops: float  # dense bf16 FLOP/s
    megacore: bool  # two TensorCores act as one device; slice names count cores
    interconnect_bytes_per_s: float  # into one chip from its neighbours: half the bidirectional ICI (NVLink) figure
    platform: str = "tpu"


# XLA:GPU's description of an H100 SXM (what `nvidia-smi` and the CUDA runtime report), for deviceless compiles.
H100_TARGET = """
gpu_device_info {
  threads_per_block_limit: 1024 threads_per_warp: 32 shared_memory_per_block: 49152
  shared_memory_per_core: 233472 threads_per_core_limit: 2048 core_count: 132 fpus_per_core: 128
  block_dim_limit_x: 2147483647 block_dim_limit_y: 65535 block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000 l2_cache_size: 52428800 clock_rate_ghz: 1.98
  device_memory_size: 84929347584 shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 } registers_per_core_limit: 65536 registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 7 }
runtime_version { major: 12 minor: 8 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""

CHIPS = {  # Cloud TPU and NVIDIA spec sheets
    "v4": Chip("v4", int(30.75 * GIB), 275e12, True, 300e9),  # 2,400 Gbps, older docs; the current page gives none
    "v5e": Chip("v5e", int(15.75 * GIB), 197e12, False, 200e9),  # ICI 400 GB/s bidirectional
    "v5p": Chip("v5p", int(95.74 * GIB), 459e12, True, 600e9),  # 1,200 GB/s
    "v6e": Chip("v6e", int(31.25 * GIB), 918e12, False, 400e9),  # 800 GB/s
    # JAX preallocates 75% of a GPU's memory (XLA_PYTHON_CLIENT_MEM_FRACTION); 989 TFLOP/s is the dense bf16 peak;
    # NVLink 4 is 900 GB/s bidirectional.
    "h100": Chip("h100", int(0.75 * 84929347584), 989e12, False, 450e9, platform="cuda"),
}

NAMED = {
    "v4-8": "v4:2x2x1", "v4-16": "v4:2x2x2", "v4-32": "v4:2x2x4", "v4-64": "v4:2x4x4",
    "v5p-8": "v5p:2x2x1", "v5p-16": "v5p:2x2x2", "v5p-32": "v5p:2x2x4", "v5p-64": "v5p:2x4x4",
    "v5e-1": "v5e:1x1", "v5e-4": "v5e:2x2", "v5e-8": "v5e:2x4", "v5e-16": "v5e:4x4", "v5e-32": "v5e:4x8",
    "v5e-64": "v5e:8x8", "v5e-256": "v5e:16x16",
    "v6e-1": "v6e:1x1", "v6e-4": "v6e:2x2", "v6e-8": "v6e:2x4", "v6e-16": "v6e:4x4", "v6e-32": "v6e:4x8",
}


@dataclasses.dataclass(frozen=True)
class Slice:
    name: str
    topology: str  # libtpu's name, e.g. v5e:4x4
    chip: Chip
    devices: tuple  # one jax device per chip, compile-only

    @property
    def chips(self) -> int:
        return len(self.devices)


def parse(name: str) -> tuple[str, Chip, tuple[int, ...]]:
    """(topology name, chip, chip grid) of a slice name; raises SliceError on an unknown one."""
    gpus = re.fullmatch(r"h100-([1-9]\d*)", name)
    if gpus:
        return f"1x1x{gpus.group(1)}", CHIPS["h100"], (int(gpus.group(1)),)
    topology = NAMED.get(name, name)
    generation, _, grid = topology.partition(":")
    valid_grid = re.fullmatch(r"[1-9]\d*(x[1-9]\d*){1,2}", grid)
    if generation not in CHIPS or CHIPS[generation].platform != "tpu" or not valid_grid:
        raise SliceError(f"unknown topology {name!r}: use one of {', '.join(NAMED)}, or <generation>:<AxB[xC]> "
                         f"with generation in v4, v5e, v5p, v6e (e.g. v5e:4x4, v4:2x2x2), or h100-<N>")
    return topology, CHIPS[generation], tuple(int(n) for n in grid.split("x"))


def load(name: str) -> Slice:
    """The slice's compile-only devices from libtpu or the CUDA plugin (no TPU or GPU needed)."""
    topology, chip, grid = parse(name)
    if chip.platform == "cuda":
        return _load_gpus(name, topology, chip)
    if importlib.util.find_spec("libtpu") is None:
        raise SliceError("libtpu is not installed, so TPU programs cannot be compiled here: "
                         "pip install -e '.[tpu]'")
    # libtpu takes a host-wide lock on load; any other JAX process on a host with libtpu may hold it.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    grid = grid + (1,) * (3 - len(grid))
    host_bounds = tuple(min(n, b) for n, b in zip(grid, (2, 2, 1), strict=True))  # 4 chips a host at most
    try:
        description = topologies.get_topology_desc(
            platform="tpu", topology_name=topology, chip_config_name="megacore" if chip.megacore else "default",
            chips_per_host_bounds=host_bounds, num_slices=1)
    except Exception as error:  # libtpu reports bad grids and load failures as runtime errors
        raise SliceError(f"libtpu cannot describe {topology}: {str(error).splitlines()[0]}") from None
    devices = tuple(description.devices)
    if len(devices) != math.prod(grid):
        raise SliceError(f"libtpu gave {len(devices)} devices for {topology}, expected {math.prod(grid)}")
    return Slice(name, topology, chip, devices)


def _load_gpus(name: str, topology: str, chip: Chip) -> Slice:
    if importlib.util.find_spec("jax_cuda12_plugin") is None:
        raise SliceError("the CUDA plugin is not installed, so GPU programs cannot be compiled here: "
                         "pip install -e '.[cuda12]' (or only jax-cuda12-plugin of your jax version; no GPU needed)")
    from jax.experimental import topologies

    try:
        description = topologies.get_topology_desc(platform="cuda", target_config=H100_TARGET, topology=topology)
    except Exception as error:  # the plugin reports its failures as runtime errors
        raise SliceError(f"the CUDA plugin cannot describe {name}: {str(error).splitlines()[0]}") from None
    return Slice(name, topology, chip, tuple(description.devices))
