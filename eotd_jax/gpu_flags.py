"""The XLA settings a GPU job exports, chosen for the installed jaxlib: `eval "$(python -m eotd_jax.gpu_flags)"`.

Prints shell `export` lines: XLA_FLAGS (the caller's, then these) and XLA_PYTHON_CLIENT_MEM_FRACTION (the
planner's `slices.GPU_MEMORY_FRACTION` unless the caller set one). XLA aborts a process on a flag it does not
know, and flags come and go between versions (the `--xla_gpu_enable_pipelined_*` family is deprecated upstream),
so each flag is checked against the installed jaxlib's own parser first (`known`: one CPU process) and one it
does not know is left out and named on stderr.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from eotd_jax.planning.slices import GPU_MEMORY_FRACTION

# (flag, why). The scanned layers are a while loop: pipelining moves the next layer's FSDP weight gathers and this
# layer's gradient reductions into the previous / next iteration, and double buffering lets them overlap its compute.
FLAGS: tuple[tuple[str, str], ...] = (
    ("--xla_gpu_enable_latency_hiding_scheduler=true", "schedule collectives to overlap compute"),
    ("--xla_gpu_enable_highest_priority_async_stream=true", "collectives first on their stream"),
    ("--xla_gpu_enable_pipelined_all_gather=true", "the next layer's weights gathered during this one"),
    ("--xla_gpu_enable_pipelined_reduce_scatter=true", "a layer's gradients reduced during the next"),
    ("--xla_gpu_enable_pipelined_all_reduce=true", "the same for data-parallel gradients"),
    ("--xla_gpu_enable_while_loop_double_buffering=true", "two iterations of the scanned layers in flight"),
    ("--xla_gpu_all_gather_combine_threshold_bytes=134217728", "fewer, larger weight gathers"),
    ("--xla_gpu_reduce_scatter_combine_threshold_bytes=67108864", "fewer, larger gradient reductions"),
    ("--xla_gpu_all_reduce_combine_threshold_bytes=134217728", "fewer, larger all-reduces"),
    ("--xla_gpu_enable_triton_gemm=false", "cuBLAS GEMMs: Triton's autotuning costs compile time, no speed here"),
    ("--xla_gpu_enable_command_buffer=", "no CUDA graphs: their capture costs more than these steps' launches"),
)


def known(flags: list[str]) -> tuple[list[str], list[str]]:
    """(known, unknown) `flags` by the installed jaxlib's parser: a CPU process started with them all, which XLA
    aborts naming the unknown ones."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join(flags)}
    result = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env, capture_output=True,
                            text=True, timeout=300)
    if result.returncode == 0:
        return list(flags), []
    found = re.search(r"Unknown flags? in XLA_FLAGS: (.*)", result.stderr)
    if not found:
        raise RuntimeError(f"a CPU JAX process with these XLA flags failed: {result.stderr.strip()[-500:]}")
    unknown = found.group(1).split()
    return [flag for flag in flags if flag not in unknown], unknown


def exports(environ: dict[str, str]) -> str:
    """The shell lines that set this job's XLA settings on top of `environ`'s."""
    flags, unknown = known([flag for flag, _ in FLAGS])
    for flag in unknown:
        print(f"warning: the installed jaxlib does not know {flag}; left out", file=sys.stderr)
    xla_flags = " ".join(filter(None, [environ.get("XLA_FLAGS", "").strip(), *flags]))
    fraction = environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION") or str(GPU_MEMORY_FRACTION)
    return f"export XLA_FLAGS={shlex.quote(xla_flags)}\nexport XLA_PYTHON_CLIENT_MEM_FRACTION={shlex.quote(fraction)}"


if __name__ == "__main__":
    print(exports(dict(os.environ)))
