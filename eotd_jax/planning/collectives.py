"""The bytes one chip receives in a compiled program's collectives, read from its optimized HLO text.

`eotd_jax.aot` turns them into a communication time at the chip's interconnect
bandwidth, beside the FLOP time. XLA's cost analysis has no such count, and it
counts a loop body once: here a collective inside a scanned layer counts once
per layer (the while loop's trip count: XLA:GPU's `known_trip_count`, else read
from its condition and its counter's step).

Per chip, for a group of N chips (ring algorithms; what a chip must take in):
all-gather of a B-byte result, B (N-1)/N; reduce-scatter of a B-byte operand,
B (N-1)/N; all-reduce, 2 B (N-1)/N; all-to-all, B (N-1)/N;
collective-permute, B. libtpu prints a reduce-scatter as an all-reduce inside
an `all-reduce-scatter` fusion; it is counted as the reduce-scatter it runs.
An asynchronous collective counts once, in the computation that starts it.
With `across` (each partition's slice or node), only the collectives whose
groups span several of them count: those that run over the slower network.
libtpu compiles a multislice program per slice: what crosses slices is a host
transfer, a `recv` whose `_xla_megascale_transfer_type` names the collective;
its bytes count whole.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

import numpy as np

_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) ")
_INSTRUCTION = re.compile(r"^\s*(ROOT )?%([\w.\-]+) = (.+?) ([a-z][\w\-]*)\((.*)$")
_SHAPE = re.compile(r"\b(pred|[a-z]+\d+[a-z0-9]*)\[([\d,]*)\]")
_CALLEES = re.compile(r"\b(?:calls|to_apply|body|true_computation|false_computation)=%([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_OPERAND = re.compile(r"%([\w.\-]+)")
_ASYNC_START = 'custom_call_target="AsyncCollectiveStart"'
_KINDS = {"all-gather": 1.0, "reduce-scatter": 1.0, "all-reduce": 2.0, "all-to-all": 1.0}


def collective_bytes(hlo: str, devices: int, across: Sequence[int] | None = None) -> dict[str, float]:
    """Bytes one chip receives per run of the program by kind of collective, each loop body's collectives times its
    trip count. `devices`: the program's partitions, the group of a collective whose replica groups are empty.
    `across[i]`: the slice or node of partition i; given, only collectives whose groups span several count."""
    entry, computations = _split(hlo)
    runs = dict.fromkeys(computations, 0.0)
    runs[entry] = 1.0
    for name in reversed(computations):  # XLA prints callees before their callers
        for line in computations[name]:
            for callee, times in _calls(line, computations):
                if callee in runs:
                    runs[callee] += runs[name] * times
    collectives = [(name, line, *_received(name, line, devices, across))
                   for name, lines in computations.items() for line in lines]
    # libtpu splits an asynchronous collective over several computations, each with a copy of the instruction and
    # its channel: the start, the fusions that advance it beside other work (in a loop, maybe), the done.
    starts = {name for name, lines in computations.items() if any(_ASYNC_START in line for line in lines)}
    started = {_channel(line) for name, line, _, count in collectives if count and name in starts}
    received: dict[str, float] = {}
    for name, line, kind, count in collectives:
        if count and (name in starts or _channel(line) not in started):
            received[kind] = received.get(kind, 0.0) + runs[name] * count
    return received


def _channel(line: str) -> str | None:
    found = re.search(r"channel_id=(\d+)", line)
    return found.group(1) if found else None


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


def _trip_count(condition: list[str], body: list[str]) -> int:
    """A counted loop's condition is `counter < bound` on a tuple element; its body adds a step to it (libtpu
    unrolls some loops and steps by 2). The counter is taken to start at 0; 1 when the loop is not of this form."""
    tests, steps = _definitions(condition), _definitions(body)
    root = next((d for d in tests.values() if d.root), None)
    if root is None or root.op != "compare" or "direction=LT" not in root.line or len(root.operands) != 2:
        return 1
    counter, bound = (tests.get(name) for name in root.operands)
    if not (counter and bound and counter.op == "get-tuple-element" and bound.op == "constant"):
        return 1
    index = _index(counter.line)
    step = 1
    result = next((d for d in steps.values() if d.root and d.op == "tuple"), None)
    if result is not None and index < len(result.operands):
        update = steps.get(result.operands[index])
        if update is not None and update.op == "add":
            kinds = sorted((steps[name].op, name) for name in update.operands if name in steps)
            if [op for op, _ in kinds] == ["constant", "get-tuple-element"]:
                step = max(_constant(steps[kinds[0][1]].line), 1)
    return max(math.ceil(_constant(bound.line) / step), 1)


@dataclasses.dataclass
class _Instruction:
    root: bool
    name: str
    result: str  # the result's shape(s)
    op: str
    rest: str  # the operands and attributes after `op(`
    line: str

    @property
    def operands(self) -> list[str]:
        return _OPERAND.findall(self.rest.split(")", 1)[0])


def _parse(line: str) -> _Instruction | None:
    """One instruction line of HLO text; None for any other line."""
    match = _INSTRUCTION.match(line)
    if not match:
        return None
    root, name, result, op, rest = match.groups()
    return _Instruction(bool(root), name, result, op, rest, line)


def _definitions(lines: list[str]) -> dict[str, _Instruction]:
    """Each instruction of a computation by name."""
    return {instruction.name: instruction for instruction in map(_parse, lines) if instruction}


def _index(line: str) -> int:
    return int(re.search(r"index=(\d+)", line).group(1))


def _constant(line: str) -> int:
    return int(re.search(r"constant\((-?\d+)\)", line).group(1))


def _calls(line: str, computations: dict[str, list[str]]) -> list[tuple[str, float]]:
    """(computation, times it runs per run of this instruction) for each computation the instruction calls."""
    instruction = _parse(line)
    if not instruction:
        return []
    called = [(name, 1.0) for name in _CALLEES.findall(line)]
    branches = _BRANCHES.search(line)
    if branches:
        called += [(name.strip().lstrip("%"), 1.0) for name in branches.group(1).split(",")]
    if instruction.op == "while":  # only the body is among `called`
        condition = re.search(r"condition=%([\w.\-]+)", line).group(1)
        known = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)  # XLA:GPU states it
        called = [(body, float(known.group(1)) if known else float(_trip_count(computations[condition],
                                                                                computations[body])))
                  for body, _ in called]
    return called


def _received(computation: str, line: str, devices: int, across: Sequence[int] | None) -> tuple[str, float]:
    """(kind, bytes into one chip) of a collective instruction; ("", 0) for any other, and with `across`, for one
    whose groups stay within a slice or node."""
    instruction = _parse(line)
    if not instruction:
        return "", 0.0
    result, op, rest = instruction.result, instruction.op, instruction.rest
    megascale = re.search(r'_xla_megascale_transfer_type="(\w+)"', rest)
    if op == "recv" and megascale:  # libtpu's multislice: the data of a collective that comes from other slices
        kind = megascale.group(1).lower().replace("_", "-")
        return kind, sum(_bytes(dtype, dims) for dtype, dims in _SHAPE.findall(result) if dims)
    kind = op.removesuffix("-start")
    if kind not in _KINDS and kind != "collective-permute":
        return "", 0.0
    if kind == "all-reduce" and computation.startswith("all-reduce-scatter"):
        kind = "reduce-scatter"  # libtpu's fusion of an all-reduce and each chip's slice of it
    groups = _groups(rest, devices, kind)
    if across is not None and all(len({across[i] for i in group}) == 1 for group in groups):
        return "", 0.0
    shapes = [_bytes(dtype, dims) for dtype, dims in _SHAPE.findall(result) if dims]  # not the scalar contexts
    if op.endswith("-start") and kind != "all-reduce":  # the result is (operands, outputs[, contexts])
        half = len(shapes) // 2
        shapes = shapes[:half] if kind == "reduce-scatter" else shapes[half:]
    if kind == "collective-permute":
        return kind, sum(shapes)
    group = len(groups[0])
    return kind, _KINDS[kind] * sum(shapes) * (group - 1) / group


def _bytes(dtype: str, dims: str) -> int:
    width = 1 if dtype == "pred" else max(int(re.search(r"\d+", dtype).group()) // 8, 1)
    return width * math.prod(int(d) for d in dims.split(",") if d)


def _ints(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


def _iota(text: str) -> np.ndarray:
    """`[dims]` or `[dims]T(perm)`: 0..N-1 laid out in dims, then transposed by perm, flattened in that order."""
    dims, _, perm = text.partition("T")
    ids = np.arange(math.prod(_ints(dims.strip("[]")))).reshape(_ints(dims.strip("[]")))
    return (ids.transpose(_ints(perm.strip("()"))) if perm else ids).reshape(-1)


def _mesh_devices(text: str | None, count: int) -> np.ndarray:
    """The device at each position of a `mesh[...]` replica group's mesh, row-major: its `device_ids` (an iota, as
    XLA:GPU prints a mesh whose devices are not in order, or a list), else 0..count-1."""
    if text is None:
        return np.arange(count)
    return _iota(text) if text.startswith("[") else np.array(_ints(text))


def _groups(attributes: str, devices: int, kind: str) -> list[list[int]]:
    """The partitions of each group of a collective: `mesh[...][, device_ids=(...)] {'axis_0'}`,
    `[G,N]<=[dims]T(perm)` (iota), `{{0,1,..},..}`, or empty (all); a collective-permute's (source, target)
    pairs."""
    if kind == "collective-permute":
        pairs = re.search(r"source_target_pairs=\{((?:\{\d+,\d+\},?)*)\}", attributes)
        return [_ints(pair) for pair in re.findall(r"\{([\d,]+)\}", pairs.group(1))] if pairs else [[0]]
    mesh = re.search(r"replica_groups=mesh\[([^\]]*)\](?:,\s*device_ids=\((\[[\d,]+\](?:T\([\d,]+\))?|[\d,]+)\))?"
                     r"\s*\{([^}]*)\}", attributes)
    if mesh:
        axes = [(name, int(size)) for name, size in re.findall(r"'(\w+)'=(\d+)", mesh.group(1))]
        names, sizes = [name for name, _ in axes], [size for _, size in axes]
        grouped = [names.index(name) for name in re.findall(r"'(\w+)'", mesh.group(3))]
        order = [i for i in range(len(names)) if i not in grouped] + grouped
        ids = _mesh_devices(mesh.group(2), math.prod(sizes)).reshape(sizes).transpose(order)
        return ids.reshape(-1, math.prod(sizes[i] for i in grouped)).tolist()
    iota = re.search(r"replica_groups=\[([\d,]+)\]<=(\[[\d,]+\](?:T\([\d,]+\))?)", attributes)
    if iota:
        return _iota(iota.group(2)).reshape(_ints(iota.group(1))).tolist()
    listed = re.search(r"replica_groups=\{((?:\{[\d,]*\},?)+)\}", attributes)
    if listed:
        return [_ints(group) for group in re.findall(r"\{([\d,]*)\}", listed.group(1))]
    return [list(range(devices))]
