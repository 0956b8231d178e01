"""The bytes one chip receives in a compiled program's collectives, read from its optimized HLO text.

`eotd_jax.aot` turns them into a communication time at the chip's interconnect
bandwidth, beside the FLOP time. XLA's cost analysis has no such count, and it
counts a loop body once: here a collective inside a scanned layer counts once
per layer (the while loop's trip count, from its condition's bound).

Per chip, for a group of N chips (ring algorithms; what a chip must take in):
all-gather of a B-byte result, B (N-1)/N; reduce-scatter of a B-byte operand,
B (N-1)/N; all-reduce, 2 B (N-1)/N; all-to-all, B (N-1)/N;
collective-permute, B. libtpu prints a reduce-scatter as an all-reduce inside
an `all-reduce-scatter` fusion; it is counted as the reduce-scatter it runs.
"""

from __future__ import annotations

import math
import re

_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) ")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%[\w.\-]+ = (.+?) ([a-z][\w\-]*)\((.*)$")
_SHAPE = re.compile(r"\b(pred|[a-z]+\d+[a-z0-9]*)\[([\d,]*)\]")
_CALLEES = re.compile(r"\b(?:calls|to_apply|body|true_computation|false_computation)=%([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_CONSTANT = re.compile(r"%([\w.\-]+) = s32\[\]\S* constant\((\d+)\)")
_COMPARE = re.compile(r"ROOT .* compare\(%([\w.\-]+), %([\w.\-]+)\)")
_KINDS = {"all-gather": 1.0, "reduce-scatter": 1.0, "all-reduce": 2.0, "all-to-all": 1.0}


def collective_bytes(hlo: str, devices: int) -> dict[str, float]:
    """Bytes one chip receives per run of the program by kind of collective, each loop body's collectives times its
    trip count. `devices`: the program's partitions, the group of a collective whose replica groups are empty."""
    entry, computations = _split(hlo)
    bounds = {name: _loop_bound(lines) for name, lines in computations.items()}
    runs = dict.fromkeys(computations, 0.0)
    runs[entry] = 1.0
    for name in reversed(computations):  # XLA prints callees before their callers
        for line in computations[name]:
            for callee, times in _calls(line, bounds):
                if callee in runs:
                    runs[callee] += runs[name] * times
    received: dict[str, float] = {}
    for name, lines in computations.items():
        for line in lines:
            kind, count = _received(name, line, devices)
            if count:
                received[kind] = received.get(kind, 0.0) + runs[name] * count
    return received


def _split(hlo: str) -> tuple[str, dict[str, list[str]]]:
    """The entry computation's name, and each computation's instruction lines in the order printed."""
    computations: dict[str, list[str]] = {}
    entry = current = None
    for line in hlo.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            current = computations.setdefault(header.group(1), [])
            entry = header.group(1) if line.startswith("ENTRY ") else entry
        elif line.startswith("}"):
            current = None
        elif current is not None:
            current.append(line)
    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")
    return entry, computations


def _loop_bound(condition: list[str]) -> int:
    """A scan's condition compares its counter, from 0, with a constant: the trip count (1 if not found)."""
    constants = dict(match.groups() for line in condition for match in [_CONSTANT.search(line)] if match)
    compare = next((match for line in condition for match in [_COMPARE.search(line)] if match), None)
    bound = next((constants[name] for name in compare.groups() if name in constants), 1) if compare else 1
    return int(bound)


def _calls(line: str, bounds: dict[str, int]) -> list[tuple[str, float]]:
    """(computation, times it runs per run of this instruction) for each computation the instruction calls."""
    instruction = _INSTRUCTION.match(line)
    if not instruction:
        return []
    called = [(name, 1.0) for name in _CALLEES.findall(line)]
    branches = _BRANCHES.search(line)
    if branches:
        called += [(name.strip().lstrip("%"), 1.0) for name in branches.group(1).split(",")]
    if instruction.group(2) == "while":  # only the body is among `called`
        condition = re.search(r"condition=%([\w.\-]+)", line).group(1)
        called = [(name, float(bounds.get(condition, 1))) for name, _ in called]
    return called


def _received(computation: str, line: str, devices: int) -> tuple[str, float]:
    """(kind, bytes into one chip) of a collective instruction; ("", 0) for any other."""
    instruction = _INSTRUCTION.match(line)
    if not instruction:
        return "", 0.0
    result, op, rest = instruction.groups()
    kind = op.removesuffix("-start")
    if kind not in _KINDS and kind != "collective-permute":
        return "", 0.0
    if kind == "all-reduce" and computation.startswith("all-reduce-scatter"):
        kind = "reduce-scatter"  # libtpu's fusion of an all-reduce and each chip's slice of it
    shapes = [_bytes(dtype, dims) for dtype, dims in _SHAPE.findall(result)]
    if op.endswith("-start") and kind in ("all-gather", "collective-permute"):
        shapes = shapes[len(shapes) // 2:]  # the result is (operands, outputs): count the outputs
    if kind == "collective-permute":
        return kind, sum(shapes)
    group = _group_size(rest, devices)
    return kind, _KINDS[kind] * sum(shapes) * (group - 1) / group


def _bytes(dtype: str, dims: str) -> int:
    width = 1 if dtype == "pred" else max(int(re.search(r"\d+", dtype).group()) // 8, 1)
    return width * math.prod(int(d) for d in dims.split(",") if d)


def _group_size(attributes: str, devices: int) -> int:
    """The chips in one replica group: `mesh[...] {'axis_0'}`, `[G,N]<=[D]` (iota) or `{{0,1,..},..}`."""
    mesh = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", attributes)
    if mesh:
        sizes = {name: int(size) for name, size in re.findall(r"'(\w+)'=(\d+)", mesh.group(1))}
        return math.prod(sizes[name] for name in re.findall(r"'(\w+)'", mesh.group(2)))
    iota = re.search(r"replica_groups=\[([\d,]+)\]<=", attributes)
    if iota:
        return int(iota.group(1).split(",")[-1])
    listed = re.search(r"replica_groups=\{\{([\d,]*)\}", attributes)
    if listed:
        return len(listed.group(1).split(","))
    return devices
