"""The one table of accelerator chips (memory, peak FLOP/s, interconnect, JAX's device kinds), and slices by name.

`CHIPS` serves the planner and the trainer's MFU (`chip_of_kind`, keyed by the
`device_kind` JAX reports). Slices (`v5e-16`, `v4-8`, raw `v5e:4x4`, `h100-8`;
several slices or nodes: `2xv5e-16`, `h100-2x8`) come with compile-only devices:
libtpu describes a TPU topology, and the CUDA PJRT plugin describes H100s from a
target config, so a CPU host can compile programs for a slice it does not have
(`eotd_jax.aot`). Names follow Cloud TPU: v4 and v5p count TensorCores (v4-8 is 4
chips, each one JAX device in megacore mode), v5e and v6e count chips; `h100-N` is
N GPUs on one host, `h100-MxN` M hosts of N GPUs joined by InfiniBand.
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
    hbm_bytes: int  # what a program may use: libtpu's "available HBM"; a GPU's memory x GPU_MEMORY_FRACTION
    peak_flops: float  # dense bf16 FLOP/s
    megacore: bool  # two TensorCores act as one device; slice names count cores
    interconnect_bytes_per_s: float  # into one chip from its neighbours: half the bidirectional ICI (NVLink) figure
    dcn_bytes_per_s: float  # into one chip from other slices (DCN) or nodes (InfiniBand, a 400 Gb/s NIC a GPU)
    device_kinds: tuple[str, ...]  # jax.Device.device_kind of the chip
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

# The share of a GPU's memory JAX may take (XLA_PYTHON_CLIENT_MEM_FRACTION): the launch sets it from here
# (`python -m eotd_jax.gpu_flags`), and the planner checks a program against it.
GPU_MEMORY_FRACTION = 0.9
_TPU_DCN = 6.25e9  # a TPU host's data-center network shared by its chips, per chip

CHIPS = {  # Cloud TPU and NVIDIA spec sheets; ICI figures are bidirectional, halved here
    "v4": Chip("v4", int(30.75 * GIB), 275e12, True, 300e9, _TPU_DCN, ("TPU v4",)),  # 2,400 Gbps (older docs)
    "v5e": Chip("v5e", int(15.75 * GIB), 197e12, False, 200e9, _TPU_DCN, ("TPU v5 lite", "TPU v5e")),  # 400 GB/s
    "v5p": Chip("v5p", int(95.74 * GIB), 459e12, True, 600e9, _TPU_DCN, ("TPU v5", "TPU v5p")),  # 1,200 GB/s
    "v6e": Chip("v6e", int(31.25 * GIB), 918e12, False, 400e9, 2 * _TPU_DCN, ("TPU v6 lite", "TPU v6e")),  # 800 GB/s
    # Dense bf16 peaks; NVLink 4 (H100, H200) is 900 GB/s bidirectional, NVLink 3 (A100) 600 GB/s; a node's
    # InfiniBand is one 400 Gb/s NIC a GPU (HGX H100 / H200), 200 Gb/s on HGX A100. The CUDA target config
    # (H100_TARGET) describes only the H100 for compiling.
    "h100": Chip("h100", int(GPU_MEMORY_FRACTION * 84929347584), 989e12, False, 450e9, 50e9,
                 ("NVIDIA H100 80GB HBM3",), platform="cuda"),
    "h200": Chip("h200", int(GPU_MEMORY_FRACTION * 141e9), 989e12, False, 450e9, 50e9, ("NVIDIA H200",),
                 platform="cuda"),
    "a100-40gb": Chip("a100-40gb", int(GPU_MEMORY_FRACTION * 40 * GIB), 312e12, False, 300e9, 25e9,
                      ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"), platform="cuda"),
    "a100-80gb": Chip("a100-80gb", int(GPU_MEMORY_FRACTION * 80 * GIB), 312e12, False, 300e9, 25e9,
                      ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"), platform="cuda"),
}


def chip_of_kind(device_kind: str) -> Chip | None:
    """The chip JAX reports as `device_kind` (jax.devices()[0].device_kind); None for one not in CHIPS."""
    return next((chip for chip in CHIPS.values() if device_kind in chip.device_kinds), None)

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
    granules: int = 1  # TPU slices or GPU nodes, joined by the slower network; each device's `slice_index`

    @property
    def chips(self) -> int:
        return len(self.devices)

    @property
    def process_is_granule(self) -> bool:
        """Compile-only GPU devices have no slice index; each host (node) is a process."""
        return self.chip.platform == "cuda"

    def granule_of(self, device) -> int:
        """The slice or node of one of this slice's devices."""
        return device.process_index if self.process_is_granule else device.slice_index


def parse(name: str) -> tuple[str, Chip, tuple[int, ...], int]:
    """(topology name, chip, chip grid of one slice or node, slices or nodes) of a slice name; raises SliceError on
    an unknown one."""
    gpus = re.fullmatch(r"h100-(?:([1-9]\d*)x)?([1-9]\d*)", name)
    if gpus:
        nodes, per_node = int(gpus.group(1) or 1), int(gpus.group(2))
        return f"{nodes}x1x{per_node}", CHIPS["h100"], (per_node,), nodes
    several = re.fullmatch(r"([1-9]\d*)x(.+)", name)
    count, single = (int(several.group(1)), several.group(2)) if several else (1, name)
    topology = NAMED.get(single, single)
    generation, _, grid = topology.partition(":")
    valid_grid = re.fullmatch(r"[1-9]\d*(x[1-9]\d*){1,2}", grid)
    if generation not in CHIPS or CHIPS[generation].platform != "tpu" or not valid_grid:
        raise SliceError(f"unknown topology {name!r}: use one of {', '.join(NAMED)}, or <generation>:<AxB[xC]> "
                         f"with generation in v4, v5e, v5p, v6e (e.g. v5e:4x4, v4:2x2x2), N x a slice for N slices "
                         "(2xv5e-16), or h100-<N> / h100-<nodes>x<N>")
    return topology, CHIPS[generation], tuple(int(n) for n in grid.split("x")), count


def load(name: str) -> Slice:
    """The slice's compile-only devices from libtpu or the CUDA plugin (no TPU or GPU needed)."""
    topology, chip, grid, granules = parse(name)
    if chip.platform == "cuda":
        return _load_gpus(name, topology, chip, granules)
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
            chips_per_host_bounds=host_bounds, num_slices=granules)
    except Exception as error:  # libtpu reports bad grids and load failures as runtime errors
        raise SliceError(f"libtpu cannot describe {topology}: {str(error).splitlines()[0]}") from None
    devices = tuple(description.devices)
    if len(devices) != math.prod(grid) * granules:
        raise SliceError(f"libtpu gave {len(devices)} devices for {name}, expected {math.prod(grid) * granules}")
    return Slice(name, topology, chip, devices, granules)


def _load_gpus(name: str, topology: str, chip: Chip, nodes: int) -> Slice:
    if importlib.util.find_spec("jax_cuda12_plugin") is None:
        raise SliceError("the CUDA plugin is not installed, so GPU programs cannot be compiled here: "
                         "pip install -e '.[cuda12]' (or only jax-cuda12-plugin of your jax version; no GPU needed)")
    from jax.experimental import topologies

    try:
        description = topologies.get_topology_desc(platform="cuda", target_config=H100_TARGET, topology=topology)
    except Exception as error:  # the plugin reports its failures as runtime errors
        raise SliceError(f"the CUDA plugin cannot describe {name}: {str(error).splitlines()[0]}") from None
    return Slice(name, topology, chip, tuple(description.devices), nodes)
