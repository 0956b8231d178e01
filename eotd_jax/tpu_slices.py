"""TPU slices by name (`v5e-16`, `v4-8`, or raw `v5e:4x4`): their chips' HBM and peak, and their devices.

The devices come from libtpu's topology description, so a CPU host can compile
programs for a slice it does not have (`eotd_jax.aot`). Names follow Cloud
TPU: v4 and v5p count TensorCores (v4-8 is 4 chips, each one JAX device in
megacore mode), v5e and v6e count chips.
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


CHIPS = {
    "v4": Chip("v4", int(30.75 * GIB), 275e12, True),
    "v5e": Chip("v5e", int(15.75 * GIB), 197e12, False),
    "v5p": Chip("v5p", int(95.74 * GIB), 459e12, True),
    "v6e": Chip("v6e", int(31.25 * GIB), 918e12, False),
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
    """(libtpu topology name, chip, chip grid) of a slice name; raises SliceError on an unknown one."""
    topology = NAMED.get(name, name)
    generation, _, grid = topology.partition(":")
    if generation not in CHIPS or not re.fullmatch(r"[1-9]\d*(x[1-9]\d*){1,2}", grid):
        raise SliceError(f"unknown topology {name!r}: use one of {', '.join(NAMED)}, or <generation>:<AxB[xC]> "
                         f"with generation in {', '.join(CHIPS)} (e.g. v5e:4x4, v4:2x2x2)")
    return topology, CHIPS[generation], tuple(int(n) for n in grid.split("x"))


def load(name: str) -> Slice:
    """The slice's compile-only devices from libtpu (no TPU needed)."""
    topology, chip, grid = parse(name)
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
